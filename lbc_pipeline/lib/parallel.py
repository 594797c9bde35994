"""Independent pieces of CPU-bound work on every available core, in forked processes.

`fork_map(func, items)` is `[func(x) for x in items]`, computed by a pool of processes forked
from this one (Linux): the children inherit `func`, `items` and everything already imported
or computed, so nothing but each result is pickled (back to the parent). Each piece must be
independent of the others and deterministic given its item (its own seeded generator, say):
then the results are the same, in the same order, as in one process, and a test can check it.

What the children run must not need a library's thread pool that was running at the fork
(polars' and DuckDB's threads do not exist in a forked child): numpy (single-threaded BLAS
for small matrices) and matplotlib are fine. An exception in a child is raised in the
parent. A child exits with its parent (`PR_SET_PDEATHSIG`), and the pool is closed and
joined before `fork_map` returns, so no process is left behind.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_TASK: tuple[Callable, Sequence] | None = None  # what forked children inherit


def default_workers() -> int:
    """Processes to use: the cores this process may run on; 1 where fork is unavailable or
    `LBC_WORKERS` says so."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if os.environ.get("LBC_WORKERS"):
        return max(1, int(os.environ["LBC_WORKERS"]))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def exit_with_parent(parent: int, code: int = 1) -> None:
    """Make this child process get SIGTERM when its parent dies (Linux), and exit with
    `code` now if the parent `parent` has already gone."""
    import signal

    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    """Pool initializer: default signal handlers (not the parent's, e.g. Dagster's interrupt
    handler), and SIGTERM when the parent dies (Linux)."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    exit_with_parent(parent, 1)


def _run_inherited(i: int):
    func, items = _TASK
    return func(items[i])


def fork_map(func: Callable[[T], R], items: Sequence[T], workers: int | None = None,
             order: Sequence[int] | None = None) -> list[R]:
    """`[func(x) for x in items]` on `workers` forked processes (default `default_workers()`;
    1: here, no process). `order`: the indices in the order to hand them out (largest first
    balances the load); the results are in the order of `items` whatever it is."""
    global _TASK
    workers = default_workers() if workers is None else workers
    workers = min(workers, len(items))
    if workers <= 1 or _TASK is not None:  # one worker, or already inside a fork_map: no nesting
        return [func(x) for x in items]
    order = list(range(len(items))) if order is None else list(order)
    assert sorted(order) == list(range(len(items))), "order must be a permutation of the items' indices"
    _TASK = (func, items)
    try:
        pool = multiprocessing.get_context("fork").Pool(workers, _die_with_parent, (os.getpid(),))
        try:
            results = pool.map(_run_inherited, order, chunksize=1)
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
    finally:
        _TASK = None
    out: list = [None] * len(items)
    for i, result in zip(order, results):
        out[i] = result
    return out
