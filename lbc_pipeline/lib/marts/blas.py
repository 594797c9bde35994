"""One BLAS thread for the many small matrix products of the sensitivity analyses.

The sensitivity marts fit thousands of small least-squares problems (926 rows, ~40
columns). OpenBLAS spreads each product over its threads; on a busy machine those threads
wait for each other, and the multiple imputation of the reference wave took 65 s with the
default threads against 4.6 s with one (measured with the load average at 8 on 2 cores).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from threadpoolctl import threadpool_limits

F = TypeVar("F", bound=Callable)


def single_blas_thread(function: F) -> F:
    """Decorate a function so that BLAS uses one thread while it runs (restored after)."""
    return threadpool_limits.wrap(limits=1, user_api="blas")(function)
