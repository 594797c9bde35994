"""A wave is published as a unit and consumers never wait: each publication builds a new
serving file from the waves' releases and renames it over the old one. These tests build
small working databases by hand and publish them, as the publish step does."""

import datetime as dt
import os
import subprocess
import sys
import textwrap

import duckdb
import polars as pl
import pytest

from lbc_pipeline.config import duckdb_path, releases_dir, working_dir, working_path
from lbc_pipeline.lib.io import publish
from lbc_pipeline.lib.io.warehouse import replace_wave

REASONS = "analysis.sample_flow_reasons"
SPECIAL = "staging.codebook_special_codes"
AT = dt.datetime(2026, 1, 2, 3, 4, 5)


def _reasons(wave: str, n: int) -> pl.DataFrame:
    return pl.DataFrame({"wave": [wave], "step": ["analysed"], "reason": ["missing"], "reason_order": [1],
                         "n_primary": [n], "n_any": [n]})


def _codes(wave: str, label: str = "refused") -> pl.DataFrame:
    return pl.DataFrame({"wave": [wave], "code": [-9], "reason": ["refused"], "label_en": [label], "label_zh": ["拒答"]})


def working(wave: str, n: int = 1, label: str = "refused", names=("王小明",), rolls=("2015010101",)):
    """A working database of `wave` as a run leaves it: a raw layer with personal values,
    two public tables, a passed check, and a report file."""
    path = working_path(wave)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute("create schema if not exists raw")
    con.execute("create or replace table raw.questionnaires (wave varchar, student_name varchar, student_no varchar)")
    con.executemany("insert into raw.questionnaires values (?, ?, ?)", [(wave, a, b) for a, b in zip(names, rolls)])
    replace_wave(con, {REASONS: _reasons(wave, n), SPECIAL: _codes(wave, label)}, wave)
    (working_dir(wave) / "reports").mkdir(parents=True, exist_ok=True)
    (working_dir(wave) / "reports" / "report.html").write_text(f"report of {wave}, n={n}")
    return con


def serving_rows(table: str = REASONS) -> list:
    with duckdb.connect(str(duckdb_path()), read_only=True) as con:
        return con.sql(f"select wave, * exclude (wave) from {table} order by all").fetchall()


def serving_tables() -> list[str]:
    with duckdb.connect(str(duckdb_path()), read_only=True) as con:
        return sorted(f"{s}.{t}" for s, t in con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = current_database()").fetchall())


def test_a_publication_holds_the_public_layers_only(data_env):
    con = working("2019")
    publication = publish.publish_wave(con, "2019", "run-a", data_env, AT)
    assert publication.tables == {REASONS: 1, SPECIAL: 1}
    assert serving_tables() == [REASONS, "publish.wave_versions", SPECIAL]  # no raw table
    assert serving_rows("publish.wave_versions") == [("2019", "run-a", AT, 2, 2)]
    assert (data_env / "reports" / "2019" / "report.html").read_text() == "report of 2019, n=1"
    assert os.readlink(data_env / "reports" / "2019") == os.path.join(".versions", "2019", "run-a")
    assert publish.live_versions() == {"2019": ("run-a", AT)}
    # the contract's key and comments come along
    with duckdb.connect(str(duckdb_path()), read_only=True) as serving:
        kinds = serving.execute("select constraint_type from duckdb_constraints() where table_name = "
                                "'codebook_special_codes'").fetchall()
        comment = serving.execute("select comment from duckdb_tables() where table_name = 'codebook_special_codes'"
                                  ).fetchall()[0][0]
    assert ("PRIMARY KEY",) in kinds and comment
    con.close()


def test_each_wave_is_replaced_alone_and_its_history_kept(data_env):
    first = working("2019", n=1)
    publish.publish_wave(first, "2019", "run-a", data_env, AT)
    other = working("2021", n=7, names=("李华",), rolls=("2021000001",))
    publish.publish_wave(other, "2021", "run-b", data_env, AT)
    replace_wave(first, {REASONS: _reasons("2019", 2)}, "2019")
    publish.publish_wave(first, "2019", "run-c", data_env, AT + dt.timedelta(hours=1))
    assert serving_rows() == [("2019", "analysed", "missing", 1, 2, 2), ("2021", "analysed", "missing", 1, 7, 7)]
    assert [r[:2] for r in serving_rows("publish.wave_versions")] == [
        ("2019", "run-a"), ("2019", "run-c"), ("2021", "run-b")]
    assert not (data_env / "reports" / ".versions" / "2019" / "run-a").exists()  # superseded files deleted
    first.close()
    other.close()


def test_a_failed_blocking_check_publishes_nothing(data_env):
    con = working("2019")
    replace_wave(con, {"analysis.check_results": pl.DataFrame({
        "wave": ["2019"], "check_order": [1], "check_name": ["analytic_sample_expectations"],
        "asset": ["analysis.analytic_sample"], "severity": ["ERROR"], "passed": [False],
        "description": ["mother-away group has 9 children; the minimum is 20 (quality_config.min_group_size)"]})}, "2019")
    with pytest.raises(publish.PublicationRefused, match="mother-away group has 9 children; the minimum is 20"):
        publish.publish_wave(con, "2019", "run-a", data_env, AT)
    assert not duckdb_path().exists() and not (data_env / "reports" / "2019").exists()
    con.close()


@pytest.mark.parametrize("planted", [
    "王小明",  # a child's name of this wave
    "李华",  # a name from another wave's raw layer (saved at that wave's publication)
    "roll 2015010101 here",  # a roll number, as a whole number
])
def test_a_personal_value_stops_the_publication(data_env, planted):
    other = working("2021", names=("李华",), rolls=("2021000001",))
    publish.publish_wave(other, "2021", "run-b", data_env, AT)
    before = serving_rows()
    con = working("2019", label=planted)
    with pytest.raises(publish.PublicationRefused, match="personal value"):
        publish.publish_wave(con, "2019", "run-a", data_env, AT)
    assert serving_rows() == before  # the serving file is the previous publication
    assert not list(releases_dir().rglob("*.tmp")) and not list(duckdb_path().parent.glob(".*.tmp"))
    con.close()
    other.close()


def test_a_longer_number_is_no_roll_number(data_env):
    con = working("2019", label="code 20150101011")  # the roll number 2015010101 inside a longer number
    publish.publish_wave(con, "2019", "run-a", data_env, AT)
    con.close()


def test_readers_keep_their_snapshot_and_never_block_a_publication(data_env):
    con = working("2019", n=1)
    publish.publish_wave(con, "2019", "run-a", data_env, AT)
    reader = duckdb.connect(str(duckdb_path()), read_only=True)  # an analyst's notebook, left open
    replace_wave(con, {REASONS: _reasons("2019", 5)}, "2019")
    publish.publish_wave(con, "2019", "run-b", data_env, AT)
    assert reader.sql(f"select n_primary from {REASONS}").fetchall() == [(1,)]  # the old snapshot, whole
    # Another process's new connection sees the new publication. (Within one process DuckDB
    # hands a new connection the database it already has open: the old file, until the
    # process's last connection to it is closed.)
    seen = subprocess.run([sys.executable, "-c", "import duckdb, sys; print(duckdb.connect(sys.argv[1], "
                           f"read_only=True).sql('select n_primary from {REASONS}').fetchall())", str(duckdb_path())],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert seen == "[(5,)]"
    reader.close()
    assert serving_rows()[0][4] == 5  # and this process's, once its old connection is closed
    con.close()


# A publication killed at each of its moments leaves the serving file the old or the new
# publication, never another, and heal (the next publication or `lbc run`) completes it.
KILL = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import duckdb
    from lbc_pipeline.lib.io import publish
    from lbc_pipeline.lib.io.warehouse import replace_wave
    import polars as pl
    point, data = sys.argv[1], Path(sys.argv[2])
    real_rename, real_build = publish._commit_rename, publish.build_serving
    def rename(source, target):
        if point == "before-" + target.name:
            os.kill(os.getpid(), signal.SIGKILL)
        real_rename(source, target)
        if point == "after-" + target.name:
            os.kill(os.getpid(), signal.SIGKILL)
    def build(target, releases):
        if point == "building-serving":
            target.write_bytes(b"half a file")
            os.kill(os.getpid(), signal.SIGKILL)
        return real_build(target, releases)
    real_point = publish._point
    def point_link(link, target):
        if point == "linking" and "run-new" in str(target):
            os.kill(os.getpid(), signal.SIGKILL)
        real_point(link, target)
    publish._commit_rename, publish.build_serving, publish._point = rename, build, point_link
    con = duckdb.connect(str(Path(os.environ["LBC_RESTRICTED_DIR"]) / "waves" / "2019" / "work.duckdb"))
    replace_wave(con, {"analysis.sample_flow_reasons": pl.DataFrame({"wave": ["2019"], "step": ["analysed"],
        "reason": ["missing"], "reason_order": [1], "n_primary": [2], "n_any": [2]})}, "2019")
    publish.publish_wave(con, "2019", "run-new", data)
""")


@pytest.mark.parametrize("point, seen_before_heal", [
    ("building-serving", 1),  # while the new serving file is written
    ("before-2019.duckdb", 1),  # just before the commit point (the release's rename)
    ("after-2019.duckdb", 1),  # committed, the serving file not yet renamed
    ("after-lbc.duckdb", 2),  # during the publication's rename: the serving file is in place, its record not
    ("linking", 2),  # while the files' link is repointed
])
def test_a_killed_publication_leaves_the_old_or_the_new(data_env, point, seen_before_heal):
    con = working("2019", n=1)
    publish.publish_wave(con, "2019", "run-old", data_env, AT)
    con.close()
    env = {**os.environ, "LBC_RESTRICTED_DIR": str(data_env / "restricted")}
    done = subprocess.run([sys.executable, "-c", KILL, point, str(data_env)], env=env, capture_output=True, text=True)
    assert done.returncode == -9, done.stderr
    assert serving_rows()[0][4] == seen_before_heal  # old or new, whole: it opens and reads
    expect_new = point != "building-serving" and point != "before-2019.duckdb"
    with publish.publication_lock():
        publish.heal(data_env)
    assert serving_rows()[0][4] == (2 if expect_new else 1)
    run = "run-new" if expect_new else "run-old"
    assert publish.live_versions()["2019"][0] == run
    assert os.readlink(data_env / "reports" / "2019") == os.path.join(".versions", "2019", run)
    assert not list(releases_dir().rglob("*.tmp")) and not list(duckdb_path().parent.glob(".*.tmp"))
    assert sorted(p.name for p in (data_env / "reports" / ".versions" / "2019").iterdir()) == [run]


def test_the_working_state_starts_anew_once_per_run(data_env):
    con = working("2019")
    replace_wave(con, {"raw.rejected_files": pl.DataFrame({
        "wave": ["2019"], "file": ["f"], "source_row": [None], "column_name": [None], "reason": ["r"],
        "message": ["m"], "rejected_at": [AT]}, schema_overrides={"source_row": pl.Int64, "column_name": pl.String})},
        "2019")
    dropped = publish.start_working_state(con, "2019", "run-1")
    assert REASONS in dropped and "raw.rejected_files" not in dropped  # the history of refusals stays
    assert not (working_dir("2019") / "reports").exists()
    replace_wave(con, {REASONS: _reasons("2019", 3)}, "2019")
    assert publish.start_working_state(con, "2019", "run-1") == []  # a later step of the same run
    assert publish.start_working_state(con, "2019", "run-2") == [REASONS]  # the next run of the wave
    con.close()
