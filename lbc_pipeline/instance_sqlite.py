"""Cheaper event writes to a SQLite Dagster instance (the run history under DAGSTER_HOME).

Dagster's SQLite storage opens a new connection for every event it stores and closes it
afterwards. Every commit is synced to disk (SQLite's default `synchronous=FULL`), and the
closing connection, being the last one open on the file, checkpoints the write-ahead log into
the database and deletes it, with more syncs (a reference-wave run stores 247 events; the
docs/performance.md says how to measure what they cost).

`install()` changes two things for the SQLite connections this process opens (PostgreSQL
and every other database are left alone):

- `synchronous=NORMAL`. Dagster puts every one of its SQLite files in WAL mode, where NORMAL
  keeps the file consistent whatever happens to the process (kill -9 included); a power cut
  or an operating-system crash may lose the last events, never corrupt the file (SQLite's
  documentation of `PRAGMA synchronous`).
- One connection of its own stays open on each file written to, so that closing Dagster's
  connections no longer checkpoints each time: the log is checkpointed by SQLite's automatic
  checkpoint (every 1,000 pages) and when the process ends.

`LBC_SQLITE_SYNC=FULL` (or OFF) sets another level, without the kept connections for FULL.

It also spares Dagster's SQLite event storage (`SqliteEventLogStorage`, the default) work it
repeats at each call: it builds a new SQLAlchemy engine for every connection (some 1,600 per
reference-wave run) and looks up whether a table exists before every dynamic-partition
query (some 400, each with an engine of its own). `install()` keeps the engines of the files
last used (ENGINES_KEPT; each still opens and closes a connection per call, as before) and
remembers the tables found (tables are never dropped while a process runs; absent ones are
looked up again).

The run's outputs do not depend on any of this: only how Dagster's own history is written.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import threading

SYNC_ENV = "LBC_SQLITE_SYNC"
LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")

_lock = threading.Lock()
_kept: dict[str, sqlite3.Connection] = {}
_holding: set[str] = set()  # the kept connections that have read their file in WAL mode
_installed = False
_inherited: list[sqlite3.Connection] = []  # a forked child's copies of its parent's, never closed


def _forget_in_child() -> None:
    # a forked worker (lib/parallel.fork_map) must not close its parent's connections: set
    # them aside unclosed (SQLite's rule for connections carried across fork)
    global _lock
    _lock = threading.Lock()
    _inherited.extend(_kept.values())
    _kept.clear()
    _holding.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def level() -> str:
    """The synchronous level to set: NORMAL unless LBC_SQLITE_SYNC names another."""
    value = (os.environ.get(SYNC_ENV) or "NORMAL").strip().upper()
    if value not in LEVELS:
        raise ValueError(f"{SYNC_ENV}={value!r}: expected one of {', '.join(LEVELS)}")
    return value


def install() -> None:
    """Set the pragmas on every SQLite connection SQLAlchemy opens in this process (once)."""
    global _installed
    level()  # a wrong LBC_SQLITE_SYNC is refused here, not at the first event
    with _lock:
        if _installed:
            return
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "connect", _on_connect)
        atexit.register(close_kept)
        _spare_repeated_work()
        _installed = True


ENGINES_KEPT = 8  # the run's own file, the index shard, and a few more (a daemon serves many runs)


def _spare_repeated_work() -> None:
    """Keep the event storage's engines and remember the tables it has found (see above)."""
    from collections import OrderedDict
    from contextlib import contextmanager

    from dagster._core.storage.event_log.sqlite import sqlite_event_log as module
    from sqlalchemy.pool import NullPool

    storage = module.SqliteEventLogStorage
    if getattr(storage, "_lbc_spared", False):
        return
    has_table = storage.has_table

    def remembered_has_table(self, table_name: str) -> bool:
        found = self.__dict__.setdefault("_lbc_tables", set())
        if table_name in found:
            return True
        if has_table(self, table_name):
            found.add(table_name)
            return True
        return False

    @contextmanager
    def connect_with_kept_engine(self, shard: str):
        # Dagster's _connect (dagster 1.13), with the engine kept instead of built and disposed
        with self._db_lock:
            engines = self.__dict__.setdefault("_lbc_engines", OrderedDict())
            engine = engines.get(shard)
            if engine is None:
                engine = module.create_engine(self.conn_string_for_shard(shard), poolclass=NullPool,
                                              connect_args={"timeout": module.SQLITE_BUSY_TIMEOUT_SECONDS})
                if shard not in self._initialized_dbs:
                    self._initdb(engine)
                    self._initialized_dbs.add(shard)
                engines[shard] = engine
                while len(engines) > ENGINES_KEPT:
                    engines.popitem(last=False)[1].dispose()
            else:
                engines.move_to_end(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    storage.has_table = remembered_has_table
    storage._connect = connect_with_kept_engine
    storage._lbc_spared = True


def _on_connect(dbapi_connection, _record) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    chosen = level()
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA synchronous={chosen}")
        path = cursor.execute("PRAGMA database_list").fetchone()[2]
    finally:
        cursor.close()
    if chosen != "FULL" and path:
        keep_open(path)


def keep_open(path: str) -> None:
    """Hold a connection on `path` until the process ends. It counts for SQLite once it has
    read the file in WAL mode (a new file is switched to WAL by Dagster after its first
    connection opened), so it reads it again at each connection until then: a closing
    connection is then not the last one and does not checkpoint."""
    with _lock:
        if path in _holding:
            return
        keeper = _kept.get(path)
        if keeper is None:
            keeper = _kept[path] = sqlite3.connect(path, check_same_thread=False, timeout=0.1)
        try:
            keeper.execute("SELECT count(*) FROM sqlite_master").fetchall()  # reads the header
            if keeper.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                _holding.add(path)
        except sqlite3.OperationalError:  # busy being created by another process: next time
            pass


def kept() -> list[str]:
    """The files this process holds a connection on (that counts for SQLite)."""
    with _lock:
        return sorted(_holding)


def close_kept() -> None:
    """Close the kept connections (the last one on a file checkpoints its log)."""
    with _lock:
        _holding.clear()
        while _kept:
            _, keeper = _kept.popitem()
            keeper.close()
