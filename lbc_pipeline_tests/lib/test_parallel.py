"""fork_map is a list comprehension on several processes: same results, same order, the
children's exceptions raised, no process left behind. fork_imap hands them over one at a
time. The children keep the memory they free."""

import ctypes
import os
import time

import numpy as np
import pytest

from lbc_pipeline.lib import parallel


def _square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def test_results_are_in_the_order_of_the_items_whatever_the_hand_out_order():
    items = list(range(9))
    out = parallel.fork_map(_square_and_pid, items, workers=3, order=list(reversed(items)))
    assert [v for v, _ in out] == [x * x for x in items]
    assert os.getpid() not in {pid for _, pid in out}  # computed in the children


def test_one_worker_computes_here():
    out = parallel.fork_map(_square_and_pid, [1, 2], workers=1)
    assert out == [(1, os.getpid()), (4, os.getpid())]


def test_an_exception_in_a_child_is_raised_in_the_parent():
    def boom(x):
        if x == 3:
            raise ValueError("three")
        return x

    with pytest.raises(ValueError, match="three"):
        parallel.fork_map(boom, list(range(6)), workers=2)


def _children() -> set[str]:
    path = f"/proc/{os.getpid()}/task/{os.getpid()}/children"
    return set(open(path).read().split()) if os.path.exists(path) else set()


def test_no_child_is_left_behind():
    before = _children()
    parallel.fork_map(_square_and_pid, list(range(4)), workers=2)
    assert _children() == before


def test_fork_imap_yields_each_result_in_order_while_the_next_are_computed(tmp_path):
    """Item 1's child waits until the caller has received item 0: with all results handed
    over at the end (fork_map) it would time out."""
    signal = tmp_path / "got-the-first"

    def work(x: int) -> tuple[int, str, int]:
        if x == 0:
            return 0, "first", os.getpid()
        deadline = time.monotonic() + 20
        while not signal.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return x, "saw the caller" if signal.exists() else "timed out", os.getpid()

    out = []
    for result in parallel.fork_imap(work, [0, 1], workers=2):
        out.append(result)
        signal.touch()
    assert [(x, what) for x, what, _ in out] == [(0, "first"), (1, "saw the caller")]
    assert os.getpid() not in {pid for *_, pid in out}


def test_fork_imap_with_one_worker_computes_here_one_at_a_time():
    computed = []

    def work(x):
        computed.append(x)
        return x * x

    results = parallel.fork_imap(work, [1, 2, 3], workers=1)
    assert next(results) == 1 and computed == [1]  # lazily: the second is not computed yet
    assert list(results) == [4, 9]


def test_fork_imap_raises_a_childs_exception_and_leaves_no_child():
    def boom(x):
        if x == 2:
            raise ValueError("two")
        return x

    before = _children()
    with pytest.raises(ValueError, match="two"):
        list(parallel.fork_imap(boom, list(range(5)), workers=2))
    assert _children() == before


def test_closing_fork_imap_early_stops_its_children():
    before = _children()
    results = parallel.fork_imap(lambda x: (time.sleep(0.05), x)[1], list(range(40)), workers=2)
    assert next(results) == 0
    assert _children() - before  # the children are running
    results.close()
    assert _children() == before
    assert parallel.fork_map(_square_and_pid, [3], workers=1)[0][0] == 9  # and the module is usable again
    assert parallel._TASK is None


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mapped_blocks_after_a_large_allocation(_=None) -> int:
    """How many more blocks glibc has allocated by mmap while a 64 MB array is alive."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    before = libc.mallinfo2().hblks
    block = np.ones(8 * 1024 * 1024)
    mapped = libc.mallinfo2().hblks - before
    del block
    return int(mapped)


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="glibc only")
def test_children_keep_freed_memory_instead_of_mapping_each_large_array():
    assert _mapped_blocks_after_a_large_allocation() == 1  # this process: glibc's default, a mapping
    in_children = parallel.fork_map(_mapped_blocks_after_a_large_allocation, [0, 1], workers=2)
    assert in_children == [0, 0]
