"""Publication: what consumers read is a serving file built anew for every publication and
renamed over the old one; the pipeline never opens it for writing.

Each wave is built in its own working database (restricted tier, raw layer included). When
its run has passed every blocking check, `publish_wave`:

1. writes the wave's personal values (names, roll numbers) to the restricted tier, for the
   privacy check;
2. copies the working database's public schemas (staging, analysis, marts; never raw) into a
   new *release* of the wave (`releases_dir()/waves/<wave>.duckdb.<run>.tmp`) with its
   publication history, and the working files into `data/{artifacts,reports}/.versions/
   <wave>/<run>/`;
3. builds a new serving file from every wave's release (this one's new one) and the
   cross-wave marts' release, and searches it for every personal value of every wave;
4. renames the release into place (the commit point), then the serving file over
   `data/warehouse/lbc.duckdb`, then points `data/{artifacts,reports}/<wave>` at the new
   version folder.

A kill before 4 leaves everything as it was (the temporary files are removed by the next
publication); a kill within 4 leaves a committed release that `heal` (every publication and
every `lbc run` start) carries into the serving file and the links. Readers are never
refused and never see a half-built file: on Linux an open reader keeps the file it opened.
Publications are serialised by Dagster's pool `lbc_publish` (one slot across every run of
the instance, on any machine) and, on one host, by an OS lock (`publication_lock`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from lbc_pipeline.config import VERSIONS_DIR, duckdb_path, releases_dir, restricted_dir, working_dir
from lbc_pipeline.lib.contracts import primary_key
from lbc_pipeline.lib.io.warehouse import (
    PUBLIC_SCHEMAS, SCHEMAS, _comment_table, _literal, _table_exists, _quote, _transaction, create_views, has_table,
    warehouse_tables,
)

VERSIONS = "wave_versions"  # publish.wave_versions: every publication of every wave
FILE_KINDS = ("artifacts", "reports")
CROSS_WAVE = "cross_wave"  # the release of the cross-wave marts
LOCK_TIMEOUT_S = 1800.0
PERSONAL_FILE = "personal_values.parquet"

_VERSIONS_DOCS = {
    None: "Every publication of a wave (and of the cross-wave marts, wave 'cross_wave'): the run whose output "
          "consumers see for a wave is its latest row (by published_at). One row per wave and publishing run.",
    "wave": "Survey wave ('cross_wave' for the pooled models and the wave comparison)",
    "run_id": "Dagster run whose tables and files were published",
    "published_at": "When the run's release was committed (UTC)",
    "table_count": "Tables the run published for the wave",
    "row_count": "Rows the run published for the wave, over all its tables",
}


class PublicationRefused(RuntimeError):
    """A wave that may not be published (a blocking check failed, nothing was built, a
    personal value would reach the serving file). Nothing was changed."""


@dataclass(frozen=True)
class Publication:
    """What one publication made visible."""

    wave: str
    run_id: str
    published_at: dt.datetime
    tables: dict[str, int]
    lock_wait_s: float = 0.0  # how long it waited for another publication on this host


def release_path(wave: str) -> Path:
    """The published part of one wave (`CROSS_WAVE`: of the cross-wave marts)."""
    if wave == CROSS_WAVE:
        return releases_dir() / f"{CROSS_WAVE}.duckdb"
    return releases_dir() / "waves" / f"{wave}.duckdb"


def _releases() -> dict[str, Path]:
    """wave -> release file, for every committed release (the cross-wave marts' last)."""
    found = {p.name.removesuffix(".duckdb"): p for p in sorted((releases_dir() / "waves").glob("*.duckdb"))}
    cross = release_path(CROSS_WAVE)
    if cross.exists():
        found[CROSS_WAVE] = cross
    return found


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit_rename(source: Path, target: Path) -> None:
    """Rename `source` over `target` durably: the file's bytes, then the rename, are on disk."""
    _fsync(source)
    os.replace(source, target)
    _fsync(target.parent)


def ensure_restricted() -> Path:
    """The restricted tier's folder, created with mode 0700 (owner only)."""
    folder = restricted_dir()
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


@contextmanager
def publication_lock(timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """One publication at a time on this host (the pool `lbc_publish` serialises them across
    hosts; this lock also holds where no pool is configured, e.g. an ephemeral instance)."""
    from lbc_pipeline.lib.io.warehouse import exclusive_file_lock

    releases_dir().mkdir(parents=True, exist_ok=True)
    with exclusive_file_lock(releases_dir() / ".lock", timeout_s):
        yield


# --- what a working database may publish -------------------------------------------------

def blocking_failures(con: duckdb.DuckDBPyConnection, wave: str) -> list[str]:
    """'check: message' for every blocking (ERROR) check of the wave that failed, from the
    working database's `analysis.check_results`."""
    if not has_table(con, "analysis.check_results"):
        return []
    rows = con.execute("select check_name, description from analysis.check_results where wave = ? and "
                       "severity = 'ERROR' and not passed order by check_order", [wave]).fetchall()
    return [f"{name}: {description}" for name, description in rows]


def personal_values(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every personal value the working database's raw layer holds, one row per (kind, value):
    `name` (children's names on the rolls, interview informants' and interviewers' names) and
    `roll_number` (school roll numbers)."""
    from lbc_pipeline.lib.qualitative.privacy import raw_person_names, raw_roll_numbers

    rows = [("name", n) for n in sorted(raw_person_names(con))]
    rows += [("roll_number", n) for n in sorted(raw_roll_numbers(con))]
    return pl.DataFrame(rows, schema={"kind": pl.String, "value": pl.String}, orient="row")


def write_personal_values(con: duckdb.DuckDBPyConnection, wave: str) -> Path:
    """Save the wave's personal values in its restricted folder (replaced atomically)."""
    ensure_restricted()
    path = working_dir(wave) / PERSONAL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    personal_values(con).write_parquet(temporary)
    os.chmod(temporary, 0o600)
    _commit_rename(temporary, path)
    return path


def every_personal_value() -> tuple[set[str], set[str]]:
    """(names, roll numbers) of every wave whose personal values were saved."""
    names, rolls = set(), set()
    for path in sorted((restricted_dir() / "waves").glob(f"*/{PERSONAL_FILE}")):
        frame = pl.read_parquet(path)
        names |= set(frame.filter(pl.col("kind") == "name")["value"].to_list())
        rolls |= set(frame.filter(pl.col("kind") == "roll_number")["value"].to_list())
    return names, rolls


WORKING_RUN = "lbc_working.run"  # the run of the whole wave that the working state belongs to


def start_working_state(con: duckdb.DuckDBPyConnection, wave: str, run: str,
                        keep: tuple[str, ...] = ("raw.rejected_files",)) -> list[str]:
    """Start the wave's working state anew for `run`, a run of the whole wave, unless it
    already belongs to that run (an earlier step of it, in any process): every table of the
    working database but the histories in `keep` is dropped, and the working files are
    deleted. What a failed or blocked run left stays until then, for inspection. Returns
    the tables dropped."""
    if _table_exists(con, "lbc_working", "run"):
        owner = con.execute(f"select run_id from {WORKING_RUN}").fetchall()
        if owner and owner[0][0] == run:
            return []
    dropped = [t for t in warehouse_tables(con) + warehouse_tables(con, ("publish",)) if t not in keep]
    with _transaction(con):
        for table in dropped:
            schema, name = table.split(".", 1)
            con.execute(f"drop table {_quote(schema)}.{_quote(name)} cascade")
        con.execute("create schema if not exists lbc_working")
        con.execute(f"create or replace table {WORKING_RUN} (run_id varchar not null, started_at timestamp not null)")
        con.execute(f"insert into {WORKING_RUN} values (?, ?)",
                    [run, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)])
        con.execute(f"comment on table {WORKING_RUN} is 'The run of the whole wave that this working state belongs "
                    "to (one row): the next such run starts the working state anew'")
        con.execute(f"comment on column {WORKING_RUN}.run_id is 'Dagster run id'")
        con.execute(f"comment on column {WORKING_RUN}.started_at is 'When the run started the working state (UTC)'")
    for kind in FILE_KINDS:
        shutil.rmtree(working_dir(wave) / kind, ignore_errors=True)
    return dropped


# --- building releases and serving files --------------------------------------------------

def _history(previous: Path | None, wave: str) -> list[tuple]:
    """The publication rows of `wave` in its previous release (none without one)."""
    if previous is None or not previous.exists():
        return []
    with duckdb.connect(str(previous), read_only=True) as con:
        if not _table_exists(con, "publish", VERSIONS):
            return []
        return con.execute(f"select wave, run_id, published_at, table_count, row_count from publish.{VERSIONS} "
                           "where wave = ? order by published_at, run_id", [wave]).fetchall()


def _create_versions(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    con.execute("create schema if not exists publish")
    con.execute(f"create table publish.{VERSIONS} (wave varchar not null, run_id varchar not null, "
                "published_at timestamp not null, table_count integer not null, row_count bigint not null, "
                "primary key (wave, run_id))")
    if rows:
        con.executemany(f"insert into publish.{VERSIONS} values (?, ?, ?, ?, ?)", rows)


def _comment_versions(con: duckdb.DuckDBPyConnection) -> None:
    for column, text in _VERSIONS_DOCS.items():
        target = f"publish.{VERSIONS}" + (f".{column}" if column else "")
        con.execute(f"comment on {'column' if column else 'table'} {target} is {_literal(text)}")


def _key_and_comments(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """The contract's primary key and descriptions on a copied table."""
    schema, name = table.split(".", 1)
    target = f"{_quote(schema)}.{_quote(name)}"
    key = primary_key(table)
    if key:
        con.execute(f"alter table {target} add primary key ({', '.join(_quote(c) for c in key)})")
    _comment_table(con, table)


def build_release(work: duckdb.DuckDBPyConnection, wave: str, run: str, target: Path,
                  published_at: dt.datetime, schemas: tuple[str, ...] = PUBLIC_SCHEMAS) -> dict[str, int]:
    """Copy the tables of `schemas` of the working database (`work`) into the new file
    `target`, with the wave's publication history (its previous release's rows and one row
    for this run). Returns the rows copied per table. A release holds rows only: keys and
    comments are the serving file's (`build_serving`)."""
    tables = warehouse_tables(work, schemas)
    if not tables:
        raise PublicationRefused(f"wave {wave}: its working database holds no table to publish; "
                                 "materialise the whole wave (lbc run, or lbc_main_job)")
    counts = {t: work.execute(f"select count(*) from {_quote(t.split('.')[0])}.{_quote(t.split('.')[1])}")
              .fetchall()[0][0] for t in tables}
    history = _history(release_path(wave), wave)
    history.append((wave, run, published_at, len(tables), sum(counts.values())))
    if target.exists():
        target.unlink()
    home = work.execute("select current_database()").fetchall()[0][0]
    alias = "lbc_release"
    work.execute(f"attach {_literal(str(target))} as {alias}")
    try:
        work.execute(f"use {alias}")
        try:
            with _transaction(work):  # one commit for the file, not one per statement
                for table in tables:
                    schema, name = table.split(".", 1)
                    work.execute(f"create schema if not exists {_quote(schema)}")
                    work.execute(f"create table {_quote(schema)}.{_quote(name)} as "
                                 f"select * from {_quote(home)}.{_quote(schema)}.{_quote(name)}")
                    # a release is read by the serving build only: the serving file gets the
                    # contract's key (which checks the rows again) and comments
                _create_versions(work, history)
        finally:
            work.execute(f"use {_quote(home)}")
    finally:
        work.execute(f"detach {alias}")
    return counts


def build_serving(target: Path, releases: Mapping[str, Path]) -> dict[str, int]:
    """A new serving file at `target`: every table of every release (wave order: by id, the
    cross-wave marts last), their publication history, the views of `sql/views`. Returns
    the rows per table."""
    if target.exists():
        target.unlink()
    order = sorted((w for w in releases if w != CROSS_WAVE)) + ([CROSS_WAVE] if CROSS_WAVE in releases else [])
    con = duckdb.connect(str(target))
    try:
        aliases = {}
        for i, wave in enumerate(order):
            aliases[wave] = f"lbc_r{i}"
            con.execute(f"attach {_literal(str(releases[wave]))} as {aliases[wave]} (read_only)")
        sources: dict[str, list[str]] = {}
        for wave in order:
            for schema, name in con.execute(
                    "select schema_name, table_name from duckdb_tables() where database_name = ? "
                    "order by schema_name, table_name", [aliases[wave]]).fetchall():
                sources.setdefault(f"{schema}.{name}", []).append(aliases[wave])
        with _transaction(con):
            for table in sorted(sources):
                schema, name = table.split(".", 1)
                con.execute(f"create schema if not exists {_quote(schema)}")
                union = " union all by name ".join(
                    f"select * from {alias}.{_quote(schema)}.{_quote(name)}" for alias in sources[table])
                con.execute(f"create table {_quote(schema)}.{_quote(name)} as {union}")
        for alias in aliases.values():
            con.execute(f"detach {alias}")
        with _transaction(con):
            rows = {}
            for table in sorted(sources):
                schema, name = table.split(".", 1)
                rows[table] = con.execute(f"select count(*) from {_quote(schema)}.{_quote(name)}").fetchall()[0][0]
                if table == f"publish.{VERSIONS}":
                    con.execute(f"alter table publish.{VERSIONS} add primary key (wave, run_id)")
                    _comment_versions(con)
                else:
                    _key_and_comments(con, table)
        create_views(con, SCHEMAS)
        con.execute("checkpoint")
    finally:
        con.close()
    return rows


def check_serving_privacy(target: Path, tables: set[str] | None = None) -> tuple[int, int, int]:
    """Search every text column of the file `target` (of `tables` only, when given) for every
    personal value of every wave (names as words, roll numbers as whole numbers). Returns
    (text columns, names, roll numbers) searched; raises `PublicationRefused` naming where a
    value was found."""
    from lbc_pipeline.lib.qualitative.privacy import find_leaks, text_values

    names, rolls = every_personal_value()
    with duckdb.connect(str(target), read_only=True) as con:
        texts = text_values(con)
    if tables is not None:
        texts = {where: values for where, values in texts.items() if where.rsplit(".", 1)[0] in tables}
    leaks = find_leaks(texts, names | rolls)
    if leaks:
        where = sorted({w for w, _ in leaks})
        raise PublicationRefused(f"{len(leaks)} personal value(s) would reach the serving file, in: "
                                 f"{', '.join(where[:10])}; nothing was published")
    return len(texts), len(names), len(rolls)


# --- publishing ----------------------------------------------------------------------------

def _temporary(path: Path, run: str) -> Path:
    return path.with_name(f".{path.name}.{run}.tmp")


def _remove_temporaries(older_than_s: float = 0.0) -> None:
    """What killed publications left half-built (never read by anyone); with `older_than_s`,
    only files not written for that long (a caller outside the pool `lbc_publish` must not
    remove another host's publication in progress)."""
    now = time.time()
    for folder in (releases_dir(), releases_dir() / "waves", duckdb_path().parent):
        for path in folder.glob(".*.tmp*"):
            try:
                if path.is_file() and now - path.stat().st_mtime >= older_than_s:
                    path.unlink(missing_ok=True)
            except FileNotFoundError:
                pass


def _copy_files(wave: str, run: str, data_dir: Path) -> None:
    """The working files of the wave into this publication's version folders."""
    for kind in FILE_KINDS:
        source = working_dir(wave) / kind
        target = data_dir / kind / VERSIONS_DIR / wave / run
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.mkdir()


def _publish(build, wave: str, run: str, data_dir: Path, search_release_only: bool = False) -> None:
    """Build a release with `build(target)` (which returns its tables' row counts), the
    serving file with it, check it (the release's tables only, with `search_release_only`),
    commit."""
    _remove_temporaries()
    (releases_dir() / "waves").mkdir(parents=True, exist_ok=True)
    release = release_path(wave)
    new_release = _temporary(release, run)
    serving = duckdb_path()
    new_serving = _temporary(serving, run)
    try:
        built = build(new_release)
        releases = {**_releases(), wave: new_release}
        sources = _runs_of(releases)  # what the serving file is built from, recorded below
        build_serving(new_serving, releases)
        check_serving_privacy(new_serving, set(built) if search_release_only else None)
        _commit_rename(new_release, release)  # the commit point
    except BaseException:
        new_release.unlink(missing_ok=True)
        new_serving.unlink(missing_ok=True)
        raise
    serving.parent.mkdir(parents=True, exist_ok=True)
    _commit_rename(new_serving, serving)
    _record_serving(sources)
    sync_files(data_dir)


def publish_wave(work: duckdb.DuckDBPyConnection, wave: str, run: str, data_dir: Path,
                 published_at: dt.datetime | None = None) -> Publication:
    """Make the working database of `wave` (connection `work`) and its working files the
    published version, as `run`'s publication. Raises `PublicationRefused`, changing nothing,
    when a blocking check of the wave failed or a personal value would be published."""
    failures = blocking_failures(work, wave)
    if failures:
        raise PublicationRefused(f"wave {wave} is not published: blocking check " + "; ".join(failures))
    published_at = published_at or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    write_personal_values(work, wave)
    counts: dict[str, int] = {}
    started = time.monotonic()
    with publication_lock():
        waited = time.monotonic() - started
        heal(data_dir)
        _copy_files(wave, run, data_dir)

        def build(target: Path) -> dict[str, int]:
            counts.update(build_release(work, wave, run, target, published_at))
            return counts

        _publish(build, wave, run, data_dir)
    return Publication(wave, run, published_at, counts, waited)


def publish_cross_wave(work: duckdb.DuckDBPyConnection, run: str, data_dir: Path,
                       published_at: dt.datetime | None = None) -> Publication:
    """Publish the cross-wave marts of the working database `work` (pooled models, wave
    comparison) the same way as a wave."""
    published_at = published_at or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    counts: dict[str, int] = {}
    with publication_lock():
        heal(data_dir)

        def build(target: Path) -> dict[str, int]:
            counts.update(build_release(work, CROSS_WAVE, run, target, published_at, schemas=("marts",)))
            return counts

        # The personal values are those every wave's publication searched the whole serving
        # file for: only the new release's tables need the search.
        _publish(build, CROSS_WAVE, run, data_dir, search_release_only=True)
    return Publication(CROSS_WAVE, run, published_at, counts)


# --- what is published, and healing -------------------------------------------------------

_RUNS_READ: dict[tuple, list] = {}  # release file identity -> its publications (a release never changes)


def release_runs(path: Path) -> list[tuple[str, str, dt.datetime]]:
    """(wave, run, published_at) of every publication a release records, oldest first. A
    release is never changed in place (each is a new file), so what was read of a file is
    kept by its identity (device, inode, size, modification time)."""
    info = path.stat()
    identity = (str(path), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    if identity not in _RUNS_READ:
        with duckdb.connect(str(path), read_only=True) as con:
            runs = con.execute(f"select wave, run_id, published_at from publish.{VERSIONS} order by published_at, "
                               "run_id").fetchall() if _table_exists(con, "publish", VERSIONS) else []
        _RUNS_READ[identity] = runs
    return list(_RUNS_READ[identity])


def _runs_of(releases: Mapping[str, Path]) -> dict[str, str]:
    """wave -> the run of the latest publication each release file records."""
    live = {}
    for wave, path in releases.items():
        runs = release_runs(path)
        if runs:
            live[wave] = runs[-1][1]
    return live


def _live_runs() -> dict[str, str]:
    """wave -> the run of its committed release."""
    return _runs_of(_releases())


def live_versions() -> dict[str, tuple[str, dt.datetime]]:
    """wave -> (run, published_at) of what consumers see (the committed releases)."""
    out = {}
    for wave, path in _releases().items():
        runs = release_runs(path)
        if runs:
            out[wave] = (runs[-1][1], runs[-1][2])
    return out


def _built_record() -> Path:
    return releases_dir() / "serving.json"


def _record_serving(live: dict[str, str]) -> None:
    """Remember which release of each wave the serving file was built from."""
    record = _built_record()
    temporary = record.with_name(f".{record.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"serving": str(duckdb_path()), "releases": live}, sort_keys=True, indent=1))
    _commit_rename(temporary, record)


def serving_is_current() -> bool:
    """Whether the serving file was built from the committed releases."""
    try:
        record = json.loads(_built_record().read_text())
    except (FileNotFoundError, ValueError):
        return not _releases()
    return duckdb_path().exists() and record.get("releases") == _live_runs()


def heal(data_dir: Path, temporaries_older_than_s: float = 0.0) -> bool:
    """Finish what a killed publication committed: the serving file rebuilt from the releases
    when it is not theirs, the links pointed at the live version folders, half-built files
    removed (those not written for `temporaries_older_than_s`). Call with the publication
    lock held. Returns whether the serving file was rebuilt."""
    _remove_temporaries(temporaries_older_than_s)
    rebuilt = False
    if _releases() and not serving_is_current():
        serving = duckdb_path()
        new_serving = _temporary(serving, f"heal-{os.getpid()}")
        releases = _releases()
        sources = _runs_of(releases)
        try:
            build_serving(new_serving, releases)
            check_serving_privacy(new_serving)
        except BaseException:
            new_serving.unlink(missing_ok=True)
            raise
        serving.parent.mkdir(parents=True, exist_ok=True)
        _commit_rename(new_serving, serving)
        _record_serving(sources)
        rebuilt = True
    sync_files(data_dir)
    return rebuilt


def _point(link: Path, target: Path) -> None:
    """Make `link` a symbolic link to `target` in one rename, and delete the version folder
    it pointed to before (superseded). A real folder in its place is moved aside first."""
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


def sync_files(data_dir: Path) -> None:
    """Point each wave's artifacts and reports links at its live version folder and delete
    the version folders no release uses (what superseded or killed publications left)."""
    live = _live_runs()
    for wave, run in live.items():
        if wave == CROSS_WAVE:
            continue
        for kind in FILE_KINDS:
            target = data_dir / kind / VERSIONS_DIR / wave / run
            if target.is_dir():
                _point(data_dir / kind / wave, target)
    for kind in FILE_KINDS:
        for folder in (data_dir / kind / VERSIONS_DIR).glob("*/*"):
            wave, run = folder.parent.name, folder.name
            if folder.is_dir() and not folder.is_symlink() and live.get(wave) != run:
                shutil.rmtree(folder, ignore_errors=True)


def read_published(table: str) -> pl.DataFrame:
    """Every published wave's rows of `table` (from the waves' releases, in wave order; an
    empty frame when no release holds it)."""
    schema, name = table.split(".", 1)
    frames = []
    for wave, path in _releases().items():
        if wave == CROSS_WAVE:
            continue
        with duckdb.connect(str(path), read_only=True) as con:
            if _table_exists(con, schema, name):
                frames.append(con.sql(f"select * from {_quote(schema)}.{_quote(name)}").pl())
    if not frames:
        from lbc_pipeline.lib.contracts import empty_frame

        return empty_frame(table)
    return pl.concat(frames, how="diagonal_relaxed")
