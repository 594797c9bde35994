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
joined before `fork_map` returns, so no process is left behind. `fork_imap` hands the results
over one at a time, so that this process works on each while the children compute the next.

A child keeps the memory it frees for its next allocations (`keep_freed_memory`): the
children are short-lived and allocate the same large arrays again and again.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_TASK: tuple[Callable, Sequence] | None = None  # what forked children inherit
# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


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


def keep_freed_memory() -> bool:
    """Make this process's allocator (glibc) serve every allocation from its heap and keep
    what is freed there, for the next allocation: no `mmap` per large block (M_MMAP_MAX 0) and
    no trimming below 2 GiB free (M_TRIM_THRESHOLD). By default glibc maps each block of 32 MB
    or more afresh and unmaps it when freed, so a worker that allocates a large array on
    every step faults in every page of it again: an imputation chain at a million rows spent
    1.8 to 4.7 s more in the kernel (scripts/bench_mi_chain.py, three pairs, alternately).
    For short-lived worker processes only: the peak is the same, but nothing is given back
    to the system until the process exits. False where the C library has no `mallopt`."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        return False


def _child_init(parent: int) -> None:
    """Pool initializer: default signal handlers (not the parent's, e.g. Dagster's interrupt
    handler), SIGTERM when the parent dies (Linux), freed memory kept for reuse."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    exit_with_parent(parent, 1)
    keep_freed_memory()


def _forks(workers: int | None, n_items: int) -> int:
    """How many processes to fork for `n_items` (0: compute here): `workers` (default
    `default_workers()`) but no more than the items, none for one, none inside a fork
    (no nesting)."""
    workers = min(default_workers() if workers is None else workers, n_items)
    return 0 if workers <= 1 or _TASK is not None else workers


def _run_inherited(i: int):
    func, items = _TASK
    return func(items[i])


@contextlib.contextmanager
def _forked_pool(func: Callable, items: Sequence, workers: int):
    """A pool of `workers` children forked now, inheriting (func, items); closed and joined
    on leaving (terminated first on an error, or when a generator using it is closed)."""
    global _TASK
    _TASK = (func, items)
    try:
        pool = multiprocessing.get_context("fork").Pool(workers, _child_init, (os.getpid(),))
        try:
            yield pool
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
    finally:
        _TASK = None


def fork_map(func: Callable[[T], R], items: Sequence[T], workers: int | None = None,
             order: Sequence[int] | None = None) -> list[R]:
    """`[func(x) for x in items]` on `workers` forked processes (default `default_workers()`;
    1: here, no process). `order`: the indices in the order to hand them out (largest first
    balances the load); the results are in the order of `items` whatever it is."""
    workers = _forks(workers, len(items))
    if not workers:
        return [func(x) for x in items]
    order = list(range(len(items))) if order is None else list(order)
    assert sorted(order) == list(range(len(items))), "order must be a permutation of the items' indices"
    with _forked_pool(func, items, workers) as pool:
        results = pool.map(_run_inherited, order, chunksize=1)
    out: list = [None] * len(items)
    for i, result in zip(order, results):
        out[i] = result
    return out


def fork_imap(func: Callable[[T], R], items: Sequence[T], workers: int | None = None) -> Iterator[R]:
    """`fork_map`'s results, yielded one at a time in the order of `items`, each as soon as it
    (and those before it) is done: the caller works on one while the children compute the
    next. The children are forked at the first `next()`; while the generator is open, a
    `fork_map` or `fork_imap` called in this process computes here (no nesting). Closing the
    generator early stops the children. 1 worker: computed here, one at a time."""
    workers = _forks(workers, len(items))
    if not workers:
        for x in items:
            yield func(x)
        return
    with _forked_pool(func, items, workers) as pool:
        yield from pool.imap(_run_inherited, range(len(items)), chunksize=1)
