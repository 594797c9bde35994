"""Writing a wave's tables to its working database and reading them back.

Each wave is built in a working database of its own (`config.working_path`, in the
restricted tier): every layer of that one wave, raw included. Writing replaces the wave's
rows of a table and nothing else, and all the tables one step writes go in one transaction,
so a failure leaves the previous state intact (never a half-written table). Each frame is
validated against its pandera contract first, and the contract's descriptions become the
table's and columns' comments. What consumers read is built from these databases by the
publish step (`lbc_pipeline.lib.io.publish`); SQL that users read lives in `sql/` and is
loaded by name with `read_sql`.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from lbc_pipeline.config import SQL_DIR
from lbc_pipeline.lib.contracts import contract_docs, primary_key, validate

SCHEMAS = ("raw", "staging", "analysis", "marts")
PUBLIC_SCHEMAS = ("staging", "analysis", "marts")  # what a publication copies (never raw)


def read_sql(name: str) -> str:
    """The text of `sql/<name>.sql` (e.g. `analysis/sample_flow_summary`)."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def sql_files(folder: str) -> list[str]:
    """Names (for `read_sql`) of the .sql files in `sql/<folder>`, sorted."""
    return sorted(f"{folder}/{p.stem}" for p in (SQL_DIR / folder).glob("*.sql"))


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _split(table: str) -> tuple[str, str]:
    schema, name = table.split(".", 1)
    if schema not in SCHEMAS:
        raise ValueError(f"{table}: schema must be one of {SCHEMAS}")
    return schema, name


def _comment(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame,
              description: str | None, columns: Mapping[str, str]) -> None:
    _comment_columns(con, table, frame.columns, description, columns)


def _comment_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """The contract's descriptions as the comments of an existing table and its columns
    (only the comments that differ are written: publishing a wave touches every table)."""
    schema, name = _split(table)
    current = dict(con.execute("select column_name, comment from duckdb_columns() where schema_name = ? "
                               "and table_name = ? and database_name = current_database() order by column_index",
                               [schema, name]).fetchall())
    table_comment = con.execute("select comment from duckdb_tables() where schema_name = ? and table_name = ? "
                                "and database_name = current_database()", [schema, name]).fetchall()[0][0]
    _comment_columns(con, table, list(current), *contract_docs(table), current={None: table_comment, **current})


def _comment_columns(con: duckdb.DuckDBPyConnection, table: str, names: list[str],
                     description: str | None, columns: Mapping[str, str],
                     current: Mapping[str | None, str | None] | None = None) -> None:
    """Comment the table (`description`) and its columns; `current` (None: the table's own
    comment) lists comments already there, which are not written again. The statements go
    to DuckDB as one script (one call, not one per column)."""
    schema, name = _split(table)
    target = f"{_quote(schema)}.{_quote(name)}"
    current = current or {}
    statements = []
    if description and current.get(None) != description:
        statements.append(f"comment on table {target} is {_literal(description)}")
    for column in names:
        text = columns.get(column) or (
            "Extra column, not in the codebook: kept as delivered" if schema == "raw" else None)
        if text and current.get(column) != text:
            statements.append(f"comment on column {target}.{_quote(column)} is {_literal(text)}")
    if statements:
        con.execute(";\n".join(statements))


def _literal(text: str) -> str:
    # COMMENT ON takes a constant, not a parameter.
    return "'" + text.replace("'", "''") + "'"




@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Everything in the block is committed together or not at all."""
    con.execute("begin transaction")
    try:
        yield
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def _write(con: duckdb.DuckDBPyConnection, tables: Mapping[str, pl.DataFrame],
           write: Callable[[str, str, str, pl.DataFrame], None]) -> dict[str, int]:
    """Write several tables in one transaction; `write(target, schema, name, frame)` does the
    SQL for one table with the frame registered as `__frame`. Every frame is validated
    against its table's contract first (nothing is written if one fails), and the
    contract's grain and column descriptions become the table's comments."""
    tables = {table: validate(table, frame) for table, frame in tables.items()}
    with _transaction(con):
        for table, frame in tables.items():
            schema, name = _split(table)
            con.execute(f"create schema if not exists {_quote(schema)}")
            con.register("__frame", frame)
            try:
                write(f"{_quote(schema)}.{_quote(name)}", schema, name, frame)
            finally:
                con.unregister("__frame")
            _comment(con, table, frame, *contract_docs(table))
    return {table: frame.height for table, frame in tables.items()}


def replace_table(con: duckdb.DuckDBPyConnection, tables: Mapping[str, pl.DataFrame]) -> dict[str, int]:
    """Replace whole tables (every row, every wave) atomically: for cross-wave marts."""
    def write(target: str, schema: str, name: str, frame: pl.DataFrame) -> None:
        con.execute(f"drop table if exists {target}")
        _create_like(con, f"{schema}.{name}", "select * from __frame")
        con.execute(f"insert into {target} by name select * from __frame")

    return _write(con, tables, write)


def append_rows(con: duckdb.DuckDBPyConnection, tables: Mapping[str, pl.DataFrame]) -> dict[str, int]:
    """Append rows to tables that keep their history (e.g. `raw.rejected_files`), atomically."""
    def write(target: str, schema: str, name: str, frame: pl.DataFrame) -> None:
        _create_like(con, f"{schema}.{name}", "select * from __frame")
        _add_columns(con, schema, name, "__frame")
        con.execute(f"insert into {target} by name select * from __frame")

    return _write(con, tables, write)


def replace_wave(con: duckdb.DuckDBPyConnection, tables: Mapping[str, pl.DataFrame], wave: str) -> dict[str, int]:
    """Replace one wave's rows in several tables, atomically; returns rows written per table.

    A table that holds no other wave's rows (a working database holds one wave) is made
    anew from the frame, typed from it, with its contract's key; otherwise the wave's rows
    are deleted and the frame's inserted by column name (a column that a newer release adds
    is added to the table, null for the other waves).
    """
    missing_wave = [table for table, frame in tables.items() if "wave" not in frame.columns]
    if missing_wave:
        raise ValueError(f"{', '.join(missing_wave)}: every table carries a wave column")

    def write(target: str, schema: str, name: str, frame: pl.DataFrame) -> None:
        if _table_exists(con, schema, name):
            others = con.execute(f"select count(*) from (select 1 from {target} where wave is distinct from ? "
                                 "limit 1)", [wave]).fetchall()[0][0]
            if others:
                _add_columns(con, schema, name, "__frame")
                con.execute(f"delete from {target} where wave = ?", [wave])
                con.execute(f"insert into {target} by name select * from __frame")
                return
            con.execute(f"drop table {target}")
        _create_like(con, f"{schema}.{name}", "select * from __frame")
        con.execute(f"insert into {target} by name select * from __frame")

    return _write(con, tables, write)


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return con.execute("select count(*) from duckdb_tables() where schema_name = ? and table_name = ? "
                       "and database_name = current_database()", [schema, name]).fetchall()[0][0] > 0


def warehouse_tables(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...] = SCHEMAS) -> list[str]:
    """Every table (`schema.table`) of the connection's database in `schemas`, sorted."""
    listed = ", ".join(_literal(s) for s in schemas)
    return sorted(f"{s}.{t}" for s, t in con.execute(
        f"select schema_name, table_name from duckdb_tables() where schema_name in ({listed}) "
        "and database_name = current_database()").fetchall())


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether `table` (`schema.table`) exists in the connection's database."""
    schema, name = _split(table)
    return _table_exists(con, schema, name)


def _create_like(con: duckdb.DuckDBPyConnection, table: str, select_sql: str) -> None:
    """Create `table` typed like the rows of `select_sql`, if it does not exist, with the
    primary key its contract declares."""
    schema, name = _split(table)
    if _table_exists(con, schema, name):
        return
    con.execute(f"create schema if not exists {_quote(schema)}")
    target = f"{_quote(schema)}.{_quote(name)}"
    con.execute(f"create table {target} as {select_sql} limit 0")
    key = primary_key(table)
    if key:
        con.execute(f"alter table {target} add primary key ({', '.join(_quote(c) for c in key)})")


def _add_columns(con: duckdb.DuckDBPyConnection, schema: str, name: str, source: str,
                 skip: tuple[str, ...] = ()) -> None:
    """Add to `schema.name` the columns of the relation `source` that it lacks, typed as
    there: a column a newer release adds (older waves: null)."""
    existing = {c for (c,) in con.execute("select column_name from duckdb_columns() where schema_name = ? "
                                          "and table_name = ? and database_name = current_database()",
                                          [schema, name]).fetchall()}
    for column, column_type in zip(*_columns_of(con, source)):
        if column not in existing and column not in skip:
            con.execute(f"alter table {_quote(schema)}.{_quote(name)} add column {_quote(column)} {column_type}")


def _columns_of(con: duckdb.DuckDBPyConnection, source: str) -> tuple[list[str], list[str]]:
    relation = con.sql(f"select * from {source} limit 0")
    return relation.columns, [str(t) for t in relation.types]


def read_wave(con: duckdb.DuckDBPyConnection, table: str, wave: str) -> pl.DataFrame:
    """One wave's rows of a warehouse table as a polars frame."""
    schema, name = _split(table)
    return con.sql(
        f"select * from {_quote(schema)}.{_quote(name)} where wave = $wave",
        params={"wave": wave},
    ).pl()


def create_views(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...]) -> list[str]:
    """(Re)create the views users read over `schemas`, from `sql/views/<schema>_*.sql`
    (each file one `create or replace view`).

    A view whose tables do not exist yet (a run that built only some tables) is left for a
    later run; returns the views (re)created."""
    names = [n for n in sql_files("views") if n.split("/", 1)[1].split("_", 1)[0] in schemas]
    created = []
    for name in names:
        sql = read_sql(name)
        try:
            con.execute(sql)
        except duckdb.CatalogException:
            continue
        for source in re.findall(r"^-- columns from: (\S+)$", sql, flags=re.MULTILINE):
            _comment_view_columns(con, name, source)
        created.append(name)
    return created


def _comment_view_columns(con: duckdb.DuckDBPyConnection, name: str, source: str) -> None:
    """Give a view's columns without a comment the description of the same column in the
    contract of the table it selects from (named in a `-- columns from:` line)."""
    view = name.split("/", 1)[1].removesuffix(".sql").replace("_", ".", 1)
    schema, view_name = view.split(".", 1)
    descriptions = contract_docs(source)[1]
    for (column,) in con.execute(
            "select column_name from duckdb_columns() where schema_name = ? and table_name = ? and comment is null "
            "and database_name = current_database()",
            [schema, view_name]).fetchall():
        if column in descriptions:
            con.execute(f"comment on column {_quote(schema)}.{_quote(view_name)}.{_quote(column)} is "
                        f"{_literal(descriptions[column])}")


def connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse file (its folder created if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path), read_only=read_only)


class WarehouseLockTimeout(TimeoutError):
    """Another process held the warehouse for longer than the configured wait."""


LOCK_POLL_S = 0.05  # how often a waiting process retries the lock, and a kept hold looks for waiters
KEEP_IDLE_S = 1.0  # a kept hold unused this long is let go (a step computing, not connected)


def wait_path(lock: Path) -> Path:
    """The file on which processes waiting for `lock` hold a shared lock: how a run that keeps
    the warehouse open between its steps (`KeptWarehouse`) learns that someone is waiting."""
    return lock.with_name(lock.name + ".wait")


def acquire_file_lock(path: Path, timeout_s: float) -> int:
    """Take an exclusive OS lock on `path` (created if absent); the open descriptor, whose
    closing releases it. While it waits, the caller holds `wait_path(path)` shared, so that
    a holder that keeps the lock between steps lets it go (see `others_waiting`)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    waiting = None
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if waiting is None:
                    waiting = os.open(wait_path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                    fcntl.flock(waiting, fcntl.LOCK_SH)  # a holder's probe takes microseconds
                if time.monotonic() > deadline:
                    raise WarehouseLockTimeout(
                        f"{path}: another run held the warehouse for more than {timeout_s:.0f} s") from None
                time.sleep(LOCK_POLL_S)
    except BaseException:
        os.close(fd)
        raise
    finally:
        if waiting is not None:
            os.close(waiting)


def others_waiting(path: Path) -> bool:
    """Whether a process (or another descriptor of this one) is waiting in `acquire_file_lock`
    for the lock on `path`."""
    try:
        fd = os.open(wait_path(path), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the probe's lock
    return False


@contextmanager
def exclusive_file_lock(path: Path, timeout_s: float) -> Iterator[None]:
    """Hold an exclusive OS lock on `path` (created if absent) while the block runs.

    Waiting processes take the lock the moment it is released, in any executor and any
    number of concurrent runs; the lock goes with the process if it dies.
    """
    fd = acquire_file_lock(path, timeout_s)
    try:
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class KeptWarehouse:
    """One run's hold on the warehouse across its steps, let go whenever someone waits.

    Opening a DuckDB file costs tens of milliseconds (its catalogue is read, and closing the
    last connection checkpoints); a run of the main job connects about 60 times. A run that
    keeps the warehouse therefore opens it once: the first `connection()` takes the file
    lock (`acquire_file_lock`) and opens one idle connection that holds the database open;
    every `connection()` then yields a fresh connection of that database (`cursor()`: its own
    transaction and variables) and closes it after the block, as before.

    Concurrent runs still take turns step by step: after each block, and every LOCK_POLL_S
    while no block is running (a watcher thread), the hold is let go, the database closed
    and the lock released, if another process waits in `acquire_file_lock`; the next
    `connection()` waits for its turn and opens it again. The watcher also lets go when no
    block has run for `idle_s` (a long step computing without the warehouse), so that what
    does not take part in the lock (a DuckDB CLI or notebook opening the file) is kept out
    no more than a second longer than before. `close()` (the end of the run) lets go for
    good. A process that dies lets go with it (the OS drops the lock; DuckDB's write-ahead
    log has every commit).

    `connect`: opens the database (e.g. with retries); called with the lock held.
    """

    def __init__(self, path: Path, connect: Callable[[], duckdb.DuckDBPyConnection], timeout_s: float,
                 idle_s: float = KEEP_IDLE_S):
        self.path, self.lock = path, lock_path(path)
        self._connect, self._timeout_s, self._idle_s = connect, timeout_s, idle_s
        self._last_used = time.monotonic()
        self._mutex = threading.Lock()
        self._anchor: duckdb.DuckDBPyConnection | None = None
        self._fd: int | None = None
        self._in_use = 0
        self.opened = 0  # how many times the database was opened
        self.waited_s = 0.0  # how long this hold waited for other processes' holds, in all

    @property
    def held(self) -> bool:
        return self._anchor is not None

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._mutex:
            if self._anchor is None:
                self._open()
            self._in_use += 1
            con = self._anchor.cursor()
        try:
            yield con
        finally:
            try:
                con.close()  # rolls back what the block left uncommitted
            finally:
                with self._mutex:
                    self._in_use -= 1
                    self._last_used = time.monotonic()
                    if self._in_use == 0 and others_waiting(self.lock):
                        self._release()

    def close(self) -> None:
        with self._mutex:
            if self._anchor is not None:
                self._release()

    def _open(self) -> None:
        started = time.monotonic()
        fd = acquire_file_lock(self.lock, self._timeout_s)
        self.waited_s += time.monotonic() - started
        try:
            self._anchor = self._connect()
        except BaseException:
            os.close(fd)
            raise
        self._fd, self.opened = fd, self.opened + 1
        threading.Thread(target=self._watch, args=(self._anchor,), daemon=True, name="lbc-warehouse-hold").start()

    def _release(self) -> None:
        anchor, fd = self._anchor, self._fd
        self._anchor = self._fd = None
        try:
            anchor.close()  # the last connection: DuckDB checkpoints here
        finally:
            os.close(fd)

    def _watch(self, anchor: duckdb.DuckDBPyConnection) -> None:
        """Let go while no block uses the warehouse and someone waits, or it has not been used
        for `idle_s`; end with this hold."""
        while True:
            time.sleep(LOCK_POLL_S)
            with self._mutex:
                if self._anchor is not anchor:
                    return
                if self._in_use == 0 and (time.monotonic() - self._last_used > self._idle_s
                                          or others_waiting(self.lock)):
                    self._release()
                    return


def lock_path(database: Path) -> Path:
    """The lock file that serialises connections to a warehouse file."""
    return database.with_name(database.name + ".lock")


@contextmanager
def read_only(database: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to a file the pipeline never writes in place (the serving file,
    a release): no lock of the pipeline's is taken, none is needed."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        yield con
    finally:
        con.close()
