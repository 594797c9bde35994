"""The warehouse lock: a run keeps the database open between its steps (`KeptWarehouse`) and
lets go whenever another process waits; outside a run each connection takes its turn."""

import fcntl
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
from dagster import asset, materialize

from lbc_pipeline.lib.io.warehouse import (KeptWarehouse, WarehouseLockTimeout, acquire_file_lock,
                                           exclusive_file_lock, lock_path, others_waiting)
from lbc_pipeline.resources import WarehouseResource


def kept(path: Path, timeout_s: float = 60.0, idle_s: float = 3600.0) -> KeptWarehouse:
    return KeptWarehouse(path, lambda: duckdb.connect(str(path)), timeout_s, idle_s)


def locked_elsewhere(lock: Path) -> bool:
    """Whether some descriptor holds the exclusive lock (probed from a fresh descriptor)."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


WAITER = textwrap.dedent("""
    import sys, time, duckdb
    from pathlib import Path
    from lbc_pipeline.lib.io.warehouse import exclusive_file_lock, lock_path
    path = Path(sys.argv[1])
    started = time.monotonic()
    with exclusive_file_lock(lock_path(path), float(sys.argv[2])):
        con = duckdb.connect(str(path))
        con.execute("insert into t values (2)")
        con.close()
    print(round(time.monotonic() - started, 3))
""")


def waiter(path: Path, timeout_s: float = 60.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WAITER, str(path), str(timeout_s)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_run_opens_the_database_once_and_holds_the_lock_between_blocks(tmp_path):
    path = tmp_path / "w.duckdb"
    hold = kept(path)
    with hold.connection() as con:
        con.execute("create table t (x integer)")
    assert hold.held and locked_elsewhere(lock_path(path))
    for x in range(5):
        with hold.connection() as con:
            con.execute("insert into t values (?)", [x])
    assert hold.opened == 1
    hold.close()
    assert not hold.held and not locked_elsewhere(lock_path(path))
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("select count(*) from t").fetchone() == (5,)


def test_an_idle_hold_lets_a_waiting_process_in_then_takes_its_turn_again(tmp_path):
    path = tmp_path / "w.duckdb"
    hold = kept(path)
    with hold.connection() as con:
        con.execute("create table t (x integer)")
        con.execute("insert into t values (1)")
    other = waiter(path)
    out, err = other.communicate(timeout=60)
    assert other.returncode == 0, err
    assert float(out) < 10  # the watcher let go within a few polls, not at the run's end
    assert not hold.held
    with hold.connection() as con:  # waits for its turn and opens the database again
        assert con.execute("select x from t order by x").fetchall() == [(1,), (2,)]
        con.execute("insert into t values (3)")
    assert hold.opened == 2
    hold.close()


def test_a_hold_in_use_is_kept_until_the_block_ends(tmp_path):
    path = tmp_path / "w.duckdb"
    hold = kept(path)
    with hold.connection() as con:
        con.execute("create table t (x integer)")
        other = waiter(path)
        deadline = time.monotonic() + 30
        while not others_waiting(lock_path(path)):  # the waiter has announced itself
            assert time.monotonic() < deadline, "the waiting process never announced itself"
            time.sleep(0.05)
        time.sleep(0.3)  # several polls of the watcher: the block is running, it must not let go
        assert hold.held and other.poll() is None
        con.execute("insert into t values (1)")
    out, err = other.communicate(timeout=60)  # let go at the end of the block
    assert other.returncode == 0, err
    assert not hold.held
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("select x from t order by x").fetchall() == [(1,), (2,)]


@pytest.mark.parametrize("idle_s", [0.2, 3600.0])
def test_a_hold_unused_for_its_idle_time_is_let_go(tmp_path, idle_s):
    path = tmp_path / "w.duckdb"
    hold = kept(path, idle_s=idle_s)
    with hold.connection() as con:
        con.execute("create table t (x integer)")
    time.sleep(1.0)  # a step computing without the warehouse
    if idle_s < 1:
        assert not hold.held and not locked_elsewhere(lock_path(path))
        with duckdb.connect(str(path), read_only=True) as outside:  # e.g. an analyst's notebook
            assert outside.execute("select count(*) from t").fetchone() == (0,)
    else:
        assert hold.held and locked_elsewhere(lock_path(path))
    with hold.connection() as con:
        con.execute("insert into t values (1)")
    assert hold.opened == (2 if idle_s < 1 else 1)
    hold.close()


def test_what_a_failed_block_left_uncommitted_is_rolled_back(tmp_path):
    path = tmp_path / "w.duckdb"
    hold = kept(path)
    with hold.connection() as con:
        con.execute("create table t (x integer)")
    with pytest.raises(RuntimeError):
        with hold.connection() as con:
            con.execute("begin")
            con.execute("insert into t values (1)")
            raise RuntimeError("the step failed")
    with hold.connection() as con:
        assert con.execute("select count(*) from t").fetchone() == (0,)
    hold.close()


def test_a_waiter_gives_up_after_its_timeout_and_leaves_no_sign_of_waiting(tmp_path):
    lock = tmp_path / "w.duckdb.lock"
    fd = acquire_file_lock(lock, 5)
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseLockTimeout):
            with exclusive_file_lock(lock, 0.3):
                pass
        assert time.monotonic() - started < 5
        assert not others_waiting(lock)
    finally:
        os.close(fd)
    assert not locked_elsewhere(lock)


def test_a_run_keeps_one_database_open_and_closes_it_at_its_end(tmp_path):
    path = tmp_path / "w.duckdb"
    opened = []

    class Counting(WarehouseResource):
        def _open(self, p):
            opened.append(p)
            return super()._open(p)

    @asset
    def first(duckdb: WarehouseResource) -> None:
        with duckdb.get_connection() as con:
            con.execute("create table t (x integer)")

    @asset(deps=[first])
    def second(duckdb: WarehouseResource) -> None:
        for x in range(3):
            with duckdb.get_connection() as con:
                con.execute("insert into t values (?)", [x])

    result = materialize([first, second], resources={"duckdb": Counting(database=str(path))})
    assert result.success
    assert opened == [path]
    assert not locked_elsewhere(lock_path(path))  # released at the end of the run
    with duckdb.connect(str(path), read_only=True) as con:  # in this very process too
        assert con.execute("select count(*) from t").fetchone() == (3,)


def test_outside_a_run_every_connection_opens_and_closes(tmp_path):
    path = tmp_path / "w.duckdb"
    resource = WarehouseResource(database=str(path))
    for _ in range(2):
        with resource.get_connection() as con:
            con.execute("create table if not exists t (x integer)")
        assert not locked_elsewhere(lock_path(path))


HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    from pathlib import Path
    from lbc_pipeline.lib.io.warehouse import KeptWarehouse
    path = Path(sys.argv[1])
    hold = KeptWarehouse(path, lambda: duckdb.connect(str(path)), 60, idle_s=3600)
    with hold.connection() as con:
        con.execute("create table t (x integer)")
        con.execute("insert into t values (1)")
    print("holding", flush=True)
    time.sleep(600)
""")


def test_a_killed_process_lets_go_of_its_hold_and_loses_no_commit(tmp_path):
    path = tmp_path / "w.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert locked_elsewhere(lock_path(path))  # kept between blocks
    finally:
        holder.kill()  # SIGKILL: no teardown, no close
        holder.wait(timeout=30)
    with exclusive_file_lock(lock_path(path), 5):  # the OS dropped the lock with the process
        with duckdb.connect(str(path)) as con:
            assert con.execute("select x from t").fetchall() == [(1,)]
