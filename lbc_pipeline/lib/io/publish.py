"""Publishing a wave as a unit: consumers see all of one run's output for a wave, or the
previous complete version, never a mix and never a run that died half-way.

A run that materialises a whole wave (the main job) writes its tables as *pending* rows
(`<schema>_pending.<table>`, see `warehouse.set_pending_run`) and its files into a version
folder of its own (`data/artifacts/.versions/<wave>/<run>/`, the same under `data/reports/`).
Its last step, after every check that blocks has passed, calls `publish_wave`:

1. one DuckDB transaction replaces the wave's rows in every published table with the run's
   pending rows, removes them from the pending tables and appends a row to
   `publish.wave_versions` (the commit point: a kill before it leaves the previous version,
   a kill after it leaves the new one);
2. `data/artifacts/<wave>` and `data/reports/<wave>` are symbolic links to the live version
   folder; each is repointed with one atomic rename, and superseded versions are deleted.
   Step 2 is redone from `publish.wave_versions` by `sync_files` (called by the next run and
   by `lbc run` on start), so a kill between 1 and 2 heals on the next run.

A failed or killed run's pending rows and version folder stay for inspection until the wave
is next run (`discard_stale`); nothing of them is visible in the consumer schemas.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import duckdb

from lbc_pipeline.config import VERSIONS_DIR
from lbc_pipeline.lib.io.warehouse import (
    PENDING_RUN, REGISTRY, SCHEMAS, _add_columns, _comment_table, _create_like, _literal, _table_exists,
    _transaction,
    create_views, pending_table, replace_rows,
)

VERSIONS = "wave_versions"
FILE_KINDS = ("artifacts", "reports")



def _ensure_versions(con: duckdb.DuckDBPyConnection) -> None:
    if _table_exists(con, "publish", VERSIONS):
        return
    con.execute("create schema if not exists publish")
    con.execute(f"create table if not exists publish.{VERSIONS} (wave varchar not null, run_id varchar not null, "
                "published_at timestamp not null, table_count integer not null, row_count bigint not null, "
                "primary key (wave, run_id))")
    docs = {
        None: "Every publication of a wave: the run whose output consumers see for that wave is the latest row "
              "(by published_at). One row per wave and publishing run.",
        "wave": "Survey wave",
        "run_id": "Dagster run whose tables and files were published",
        "published_at": "When the run's rows became visible to consumers (UTC)",
        "table_count": "Tables the run wrote for the wave",
        "row_count": "Rows the run wrote for the wave, over all its tables",
    }
    for column, text in docs.items():
        target = f"publish.{VERSIONS}" + (f".{column}" if column else "")
        kind = "column" if column else "table"
        con.execute(f"comment on {kind} {target} is {_literal(text)}")


def pending_tables(con: duckdb.DuckDBPyConnection, wave: str, run: str) -> dict[str, int]:
    """The tables (and their row counts) that `run` has written pending for `wave`."""
    try:
        rows = con.execute(f"select table_name, row_count from {REGISTRY} where run_id = ? and wave = ? order by 1",
                           [run, wave]).fetchall()
    except duckdb.CatalogException:
        return {}
    return dict(rows)


def publish_wave(con: duckdb.DuckDBPyConnection, wave: str, run: str, data_dir: Path,
                 published_at: dt.datetime | None = None) -> dict[str, int]:
    """Make `run`'s pending rows and files of `wave` the published version, atomically.
    Returns the rows published per table. Raises if the run has written nothing."""
    tables = pending_tables(con, wave, run)
    if not tables:
        raise ValueError(f"wave {wave}: run {run} has no pending tables to publish")
    published_at = published_at or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with _transaction(con):
        _ensure_versions(con)
        for table in tables:
            schema, name = table.split(".", 1)
            pending = pending_table(table)
            _create_like(con, table, f"select * exclude ({PENDING_RUN}) from {pending}")
            _add_columns(con, schema, name, pending, skip=(PENDING_RUN,))
            replace_rows(con, schema, name, f"select * exclude ({PENDING_RUN}) from {pending} "
                         f"where wave = ? and {PENDING_RUN} = ?", [wave, run], wave)
            _comment_table(con, table)
            con.execute(f"delete from {pending} where wave = ? and {PENDING_RUN} = ?", [wave, run])
        con.execute(f"delete from {REGISTRY} where run_id = ? and wave = ?", [run, wave])
        _drop_unused(con, tables)
        con.execute(f"insert into publish.{VERSIONS} values (?, ?, ?, ?, ?)",
                    [wave, run, published_at, len(tables), sum(tables.values())])
    create_views(con, SCHEMAS)
    sync_files(con, data_dir)
    return tables


def _drop_unused(con: duckdb.DuckDBPyConnection, tables) -> None:
    """Drop the pending tables among `tables` that hold no row and that no unpublished run
    has written (another run's empty frame is a write too: its table must stay)."""
    for table in tables:
        pending = pending_table(table)
        rows = con.execute(f"select count(*) from {pending}").fetchall()[0][0]
        users = con.execute(f"select count(*) from {REGISTRY} where table_name = ?", [table]).fetchall()[0][0]
        if rows == 0 and users == 0:
            con.execute(f"drop table {pending}")


def live_versions(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """wave -> the run whose version consumers see (the latest publication)."""
    try:
        rows = con.execute(f"select wave, arg_max(run_id, published_at) from publish.{VERSIONS} group by wave").fetchall()
    except duckdb.CatalogException:
        return {}
    return dict(rows)


def version_dir(data_dir: Path, kind: str, wave: str, run: str) -> Path:
    """Where `run` writes its `kind` files (artifacts, reports) of `wave`."""
    return data_dir / kind / VERSIONS_DIR / wave / run


def _point(link: Path, target: Path) -> None:
    """Make `link` a symbolic link to `target` in one rename, and delete the version folder
    it pointed to before (superseded). A legacy real folder is moved aside first."""
    relative = os.path.relpath(target, link.parent)
    previous = None
    if link.is_symlink():
        if os.readlink(link) == relative:
            return
        previous = Path(os.path.realpath(link))
    elif link.exists():  # a folder written before versions existed
        previous = link.parent / VERSIONS_DIR / link.name / "unversioned"
        previous.parent.mkdir(parents=True, exist_ok=True)
        if previous.exists():
            shutil.rmtree(previous)
        link.rename(previous)
    temporary = link.with_name(f".{link.name}.link-{os.getpid()}")
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    os.symlink(relative, temporary)
    os.replace(temporary, link)
    if previous is not None and previous.is_dir() and previous != Path(os.path.realpath(target)):
        shutil.rmtree(previous, ignore_errors=True)


def sync_files(con: duckdb.DuckDBPyConnection, data_dir: Path) -> None:
    """Point each wave's artifacts and reports links at its live version, redoing a publish
    step that died between its commit and its rename (the superseded version is deleted)."""
    for wave, run in live_versions(con).items():
        for kind in FILE_KINDS:
            target = data_dir / kind / VERSIONS_DIR / wave / run
            if target.is_dir():
                _point(data_dir / kind / wave, target)


def discard_stale(con: duckdb.DuckDBPyConnection, data_dir: Path, wave: str, keep_runs: Iterable[str]) -> list[str]:
    """Delete the pending rows and version folders of `wave` written by runs not in
    `keep_runs` (the runs in progress): what its failed or killed runs left, kept for
    inspection until the wave is run again. Returns the runs discarded."""
    keep = set(keep_runs)
    try:
        written = {r for (r,) in con.execute(f"select distinct run_id from {REGISTRY} where wave = ?", [wave]).fetchall()}
    except duckdb.CatalogException:
        written = set()
    folders = {p.name for kind in FILE_KINDS for p in (data_dir / kind / VERSIONS_DIR / wave).glob("*")
               if p.is_dir() and not p.is_symlink()}
    live = live_versions(con).get(wave)
    stale = sorted((written | folders) - keep - {live, "unversioned"})
    if written - keep:
        listed = ", ".join(_literal(r) for r in sorted(written - keep))
        with _transaction(con):
            tables = [t for (t,) in con.execute(f"select distinct table_name from {REGISTRY} "
                                                f"where wave = ? and run_id in ({listed})", [wave]).fetchall()]
            for table in tables:
                con.execute(f"delete from {pending_table(table)} where wave = ? and {PENDING_RUN} in ({listed})", [wave])
            con.execute(f"delete from {REGISTRY} where wave = ? and run_id in ({listed})", [wave])
            _drop_unused(con, tables)
    for kind in FILE_KINDS:
        for run in stale:
            folder = data_dir / kind / VERSIONS_DIR / wave / run
            if folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder, ignore_errors=True)
    sync_files(con, data_dir)
    return stale
