"""fork_map is a list comprehension on several processes: same results, same order, the
children's exceptions raised, no process left behind."""

import os

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


def test_no_child_is_left_behind():
    def children() -> set[int]:
        path = f"/proc/{os.getpid()}/task/{os.getpid()}/children"
        return set(open(path).read().split()) if os.path.exists(path) else set()

    before = children()
    parallel.fork_map(_square_and_pid, list(range(4)), workers=2)
    assert children() == before
