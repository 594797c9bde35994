"""Writing a wave's tables to DuckDB and reading them back.

A table holds every wave; writing a wave replaces that wave's rows and nothing else, and
all the tables one step writes go in one transaction, so a failure leaves the previous
state intact (never a half-written table). Each frame is validated against its pandera
contract first, and the contract's descriptions become the table's and columns' comments.
SQL that users read lives in `sql/` and is loaded by name with `read_sql`.

A run that materialises a whole wave writes *pending* rows instead (see `lbc_pipeline.lib.io.
publish`): with `set_pending_run(con, run_id)` on the connection, `replace_wave` writes to
`<schema>_pending.<table>` (the same columns plus `pending_run`) and `read_wave` reads what this
run has written there, falling back to the published table for what it has not; consumers
see the new version only when the run's publish step moves it all in one transaction.
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
PENDING_RUN = "pending_run"  # the extra column of a pending table: the run that wrote the row
REGISTRY = "publish.pending_writes"  # which tables each unpublished run has written, per wave


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
                               "and table_name = ? order by column_index", [schema, name]).fetchall())
    table_comment = con.execute("select comment from duckdb_tables() where schema_name = ? and table_name = ?",
                                [schema, name]).fetchall()[0][0]
    _comment_columns(con, table, list(current), *contract_docs(table), current={None: table_comment, **current})


def _comment_columns(con: duckdb.DuckDBPyConnection, table: str, names: list[str],
                     description: str | None, columns: Mapping[str, str],
                     current: Mapping[str | None, str | None] | None = None) -> None:
    """Comment the table (`description`) and its columns; `current` (None: the table's own
    comment) lists comments already there, which are not written again."""
    schema, name = _split(table)
    target = f"{_quote(schema)}.{_quote(name)}"
    current = current or {}
    if description and current.get(None) != description:
        con.execute(f"comment on table {target} is {_literal(description)}")
    for column in names:
        text = columns.get(column) or (
            "Extra column, not in the codebook: kept as delivered" if schema == "raw" else None)
        if text and current.get(column) != text:
            con.execute(f"comment on column {target}.{_quote(column)} is {_literal(text)}")


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
           write: Callable[[str, str, str, pl.DataFrame], None], pending: bool = False) -> dict[str, int]:
    """Write several tables in one transaction; `write(target, schema, name, frame)` does the
    SQL for one table with the frame registered as `__frame`. Every frame is validated
    against its table's contract first (nothing is written if one fails), and the
    contract's grain and column descriptions become the table's comments. With `pending`,
    `target` is the table's pending twin (`<schema>_pending.<name>`), commented as such."""
    tables = {table: validate(table, frame) for table, frame in tables.items()}
    with _transaction(con):
        for table, frame in tables.items():
            schema, name = _split(table)
            home = schema + "_pending" if pending else schema
            con.execute(f"create schema if not exists {_quote(home)}")
            con.register("__frame", frame)
            try:
                write(f"{_quote(home)}.{_quote(name)}", home, name, frame)
            finally:
                con.unregister("__frame")
            if pending:
                note = (f"Pending rows of {table} written by runs not yet published (column {PENDING_RUN}); "
                        "consumers read the published table.")
                con.execute(f"comment on table {_quote(home)}.{_quote(name)} is {_literal(note)}")
            else:
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

    Tables are created on first write (typed from the frame); later writes insert by column
    name, and a column that a newer release adds is added to the table (null for older waves).
    """
    missing_wave = [table for table, frame in tables.items() if "wave" not in frame.columns]
    if missing_wave:
        raise ValueError(f"{', '.join(missing_wave)}: every table carries a wave column")

    run = pending_run(con)
    if run:
        return _write_pending(con, tables, wave, run)

    def write(target: str, schema: str, name: str, frame: pl.DataFrame) -> None:
        _create_like(con, f"{schema}.{name}", "select * from __frame")
        _add_columns(con, schema, name, "__frame")
        replace_rows(con, schema, name, "select * from __frame", [], wave)

    return _write(con, tables, write)


def replace_rows(con: duckdb.DuckDBPyConnection, schema: str, name: str, source_sql: str, params: list,
                 wave: str) -> None:
    """Make the rows of `wave` in `schema.name` those of `source_sql` (a select of that wave's
    rows, with `params`), in the caller's transaction: the other waves' rows in their order,
    then the source's rows in the source's order (a column the source lacks is null).

    That is a delete and an insert, unless the table already holds rows of the wave and has a
    primary key: deleting a wave's rows and inserting rows of the same keys in one
    transaction costs DuckDB's key index far more at commit (a million-questionnaire wave
    published again: 153 s in the publish step, the run's peak 4.2 GB). Such a table is rebuilt
    instead (`_rebuild_with`): the same rows in the same order, the key, comments and name
    kept, at a cost that grows with the whole table rather than with the wave."""
    target = f"{_quote(schema)}.{_quote(name)}"
    key = _rebuildable_key(con, schema, name)
    if key:
        held = con.execute(f"select count(*) from (select 1 from {target} where wave = ? limit 1)", [wave]).fetchall()
        if held[0][0]:
            _rebuild_with(con, schema, name, key, source_sql, params, wave)
            return
    con.execute(f"delete from {target} where wave = ?", [wave])
    con.execute(f"insert into {target} by name {source_sql}", params)


def _rebuildable_key(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> list[str]:
    """The table's primary key, if a copy made by `create table ... as select` and given that
    key again is the same table (no other constraint than the key and its columns' NOT NULL,
    no column default); else none."""
    constraints = con.execute("select constraint_type, constraint_column_names from duckdb_constraints() "
                              "where schema_name = ? and table_name = ? and database_name = current_database()",
                              [schema, name]).fetchall()
    key = next((list(columns) for kind, columns in constraints if kind == "PRIMARY KEY"), [])
    if not key or any(kind not in ("PRIMARY KEY", "NOT NULL") or not set(columns) <= set(key)
                      for kind, columns in constraints):
        return []
    defaults = con.execute("select count(*) from duckdb_columns() where schema_name = ? and table_name = ? and "
                           "column_default is not null and database_name = current_database()",
                           [schema, name]).fetchall()[0][0]
    return key if defaults == 0 else []


def _rebuild_with(con: duckdb.DuckDBPyConnection, schema: str, name: str, key: list[str], source_sql: str,
                  params: list, wave: str) -> None:
    """`replace_rows` by a new table: the other waves' rows, then the source's, the key added,
    the old table dropped and the new one renamed in its place, with the old one's comments.
    A key the source holds twice is refused first, as an insert into the table would (DuckDB
    checks a key added in the same transaction only at commit)."""
    target = f"{_quote(schema)}.{_quote(name)}"
    columns = ", ".join(_quote(c) for c in key)
    twice = con.execute(f"select {columns} from ({source_sql}) group by all having count(*) > 1 limit 1",
                        params).fetchall()
    if twice:
        raise duckdb.ConstraintException(f"{schema}.{name}: the new rows of wave {wave} hold the key "
                                         f"({', '.join(key)}) = {twice[0]} more than once")
    new = f"{_quote(schema)}.{_quote(name + '__replacing')}"
    table_comment = con.execute("select comment from duckdb_tables() where schema_name = ? and table_name = ? "
                                "and database_name = current_database()", [schema, name]).fetchall()[0][0]
    column_comments = con.execute("select column_name, comment from duckdb_columns() where schema_name = ? and "
                                  "table_name = ? and comment is not null and database_name = current_database()",
                                  [schema, name]).fetchall()
    con.execute(f"drop table if exists {new}")
    con.execute(f"create table {new} as select * from {target} where wave is distinct from ?", [wave])
    con.execute(f"insert into {new} by name {source_sql}", params)
    con.execute(f"alter table {new} add primary key ({columns})")
    con.execute(f"drop table {target}")
    con.execute(f"alter table {new} rename to {_quote(name)}")
    if table_comment:
        con.execute(f"comment on table {target} is {_literal(table_comment)}")
    for column, comment in column_comments:
        con.execute(f"comment on column {target}.{_quote(column)} is {_literal(comment)}")


# --- pending rows of a whole-wave run ------------------------------------------------------

def set_pending_run(con: duckdb.DuckDBPyConnection, run_id: str | None) -> None:
    """Make this connection's wave writes pending rows of `run_id` (None: write in place)."""
    if run_id:
        con.execute("set variable lbc_pending_run = ?", [run_id])
    else:
        con.execute("reset variable lbc_pending_run")


def pending_run(con: duckdb.DuckDBPyConnection) -> str | None:
    """The run whose pending rows this connection writes and reads, if any."""
    return con.execute("select getvariable('lbc_pending_run')").fetchall()[0][0]


def pending_table(table: str) -> str:
    """`staging.questionnaires` -> `staging_pending.questionnaires` (quoted)."""
    schema, name = _split(table)
    return f"{_quote(schema + '_pending')}.{_quote(name)}"


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return con.execute("select count(*) from duckdb_tables() where schema_name = ? and table_name = ?",
                       [schema, name]).fetchall()[0][0] > 0


def _ensure_registry(con: duckdb.DuckDBPyConnection) -> None:
    if _table_exists(con, "publish", REGISTRY.split(".")[1]):
        return
    con.execute("create schema if not exists publish")
    con.execute(f"create table if not exists {REGISTRY} (run_id varchar not null, wave varchar not null, "
                "table_name varchar not null, row_count bigint not null, primary key (run_id, wave, table_name))")
    note = ("Tables written by runs not yet published (one row per run, wave and table); the rows are in "
            "<schema>_pending.<table>. Internal bookkeeping of the publish step, not for analysis.")
    con.execute(f"comment on table {REGISTRY} is {_literal(note)}")


def _write_pending(con: duckdb.DuckDBPyConnection, tables: Mapping[str, pl.DataFrame], wave: str,
                   run: str) -> dict[str, int]:
    """`replace_wave` for a run that publishes later: the rows go to the pending twins, and
    the registry records which tables the run has written for the wave."""
    def write(target: str, schema: str, name: str, frame: pl.DataFrame) -> None:
        con.execute(f"create table if not exists {target} as select *, ''::varchar as {PENDING_RUN} from __frame limit 0")
        _add_columns(con, schema, name, "__frame")
        con.execute(f"delete from {target} where wave = ? and {PENDING_RUN} = ?", [wave, run])
        con.execute(f"insert into {target} by name select *, ?::varchar as {PENDING_RUN} from __frame", [run])
        con.execute(f"insert or replace into {REGISTRY} values (?, ?, ?, ?)",
                    [run, wave, f"{schema.removesuffix('_pending')}.{name}", frame.height])

    _ensure_registry(con)
    return _write(con, tables, write, pending=True)


def _pending_written(con: duckdb.DuckDBPyConnection, run: str, wave: str, table: str) -> bool:
    try:
        return con.execute(f"select count(*) from {REGISTRY} where run_id = ? and wave = ? and table_name = ?",
                           [run, wave, table]).fetchall()[0][0] > 0
    except duckdb.CatalogException:
        return False


def table_relation(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """SQL for `table` as this connection's run sees it: the published rows, with the waves
    that the run has written pending replaced by its pending rows. Use in FROM clauses."""
    schema, name = _split(table)
    published = f"{_quote(schema)}.{_quote(name)}"
    run = pending_run(con)
    waves = []
    if run:
        try:
            waves = [w for (w,) in con.execute(f"select wave from {REGISTRY} where run_id = ? and table_name = ?",
                                               [run, table]).fetchall()]
        except duckdb.CatalogException:
            waves = []
    if not waves:
        return published
    listed = ", ".join(_literal(w) for w in waves)
    pending = (f"(select * exclude ({PENDING_RUN}) from {pending_table(table)} "
               f"where {PENDING_RUN} = {_literal(run)} and wave in ({listed}))")
    if not has_table(con, table, published_only=True):
        return pending
    return f"(select * from {published} where wave not in ({listed}) union all by name select * from {pending})"


def visible_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every warehouse table (`schema.table`, schemas of SCHEMAS) as this connection's run sees
    it: the published ones and those only its pending rows hold; read each with
    `table_relation`."""
    listed = ", ".join(_literal(s) for s in SCHEMAS)
    tables = {f"{s}.{t}" for s, t in con.execute(
        f"select schema_name, table_name from duckdb_tables() where schema_name in ({listed})").fetchall()}
    run = pending_run(con)
    if run:
        try:
            tables |= {t for (t,) in con.execute(f"select distinct table_name from {REGISTRY} where run_id = ?",
                                                 [run]).fetchall()}
        except duckdb.CatalogException:
            pass
    return sorted(tables)


def has_table(con: duckdb.DuckDBPyConnection, table: str, published_only: bool = False) -> bool:
    """Whether `table` exists for this connection's run (published, or written pending by it)."""
    schema, name = _split(table)
    exists = _table_exists(con, schema, name)
    if exists or published_only:
        return exists
    run = pending_run(con)
    if not run:
        return False
    try:
        return con.execute(f"select count(*) from {REGISTRY} where run_id = ? and table_name = ?",
                           [run, table]).fetchall()[0][0] > 0
    except duckdb.CatalogException:
        return False


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
                                          "and table_name = ?", [schema, name]).fetchall()}
    for column, column_type in zip(*_columns_of(con, source)):
        if column not in existing and column not in skip:
            con.execute(f"alter table {_quote(schema)}.{_quote(name)} add column {_quote(column)} {column_type}")


def _columns_of(con: duckdb.DuckDBPyConnection, source: str) -> tuple[list[str], list[str]]:
    relation = con.sql(f"select * from {source} limit 0")
    return relation.columns, [str(t) for t in relation.types]


def read_wave(con: duckdb.DuckDBPyConnection, table: str, wave: str) -> pl.DataFrame:
    """One wave's rows of a warehouse table as a polars frame (this run's pending rows, when
    the connection has a pending run that has written them)."""
    schema, name = _split(table)
    run = pending_run(con)
    if run and _pending_written(con, run, wave, table):
        return con.sql(
            f"select * exclude ({PENDING_RUN}) from {pending_table(table)} where wave = $wave and {PENDING_RUN} = $run",
            params={"wave": wave, "run": run},
        ).pl()
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
            "select column_name from duckdb_columns() where schema_name = ? and table_name = ? and comment is null",
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
        fd = acquire_file_lock(self.lock, self._timeout_s)
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
def read_only(database: Path, timeout_s: float = 600.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection taken in turn with the pipeline's writers."""
    with exclusive_file_lock(lock_path(database), timeout_s):
        con = duckdb.connect(str(database), read_only=True)
        try:
            yield con
        finally:
            con.close()
