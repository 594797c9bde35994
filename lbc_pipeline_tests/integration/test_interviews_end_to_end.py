"""The interview strand inside the main job: a wave without interviews runs cleanly, a
registry that misses an interview blocks the joint display (ERROR), and a hostile interview
file fails the interview strand alone: the survey strand's results are computed exactly as
without interviews.

Interviews are an optional, separately delivered part of a wave: whatever happens to them
must not change the survey's results. A wave is published as a unit (lib/io/publish.py), so
a run whose interview strand failed is not published: the survey results it computed stay in
the wave's working database and consumers keep the previous version (here: nothing), until
the interviews are fixed or removed and the wave is run again.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import duckdb
import polars as pl
from polars.testing import assert_frame_equal

from lbc_pipeline.cli import run_waves
from lbc_pipeline.lib.io.warehouse import read_sql
from lbc_pipeline_tests.lib.qualitative.conftest import DEMO, copy_demo
from lbc_pipeline_tests.rows import DISTRIBUTION, FIELDWORK, varied_rows, write_wave

SCHOOLS = [dict(s, distributed="120") for s in DISTRIBUTION] + [
    {"school_id": "S4", "school_name": "第四中学", "school_type": "2", "school_level": "2", "distributed": "10"}]
EXPECTED = {"total": 41, "child": 18, "teacher": 13, "parent": 7, "grandparent": 3}
SURVEY_TABLES = ("analysis.sample_flow", "marts.model_coefficients", "marts.hypotheses")


def _wave(data: Path, wave: str, interviews: bool) -> Path:
    manifest = {"wave": wave, "fieldwork": FIELDWORK}
    if interviews:
        manifest["interviews"] = {"expected": EXPECTED}
    return write_wave(data / "raw" / wave, varied_rows(300, seed=2), wave=wave, distribution=SCHOOLS, manifest=manifest)


def _rows(con, table: str, wave: str) -> pl.DataFrame:
    frame = con.sql(f"select * from {table} where wave = $w", params={"w": wave}).pl()
    frame = frame.drop("wave", *[c for c in ("t_value", "p_value") if c in frame.columns])
    keys = [c for c, dtype in frame.schema.items() if not dtype.is_float()]
    return frame.sort(keys)


def _hostile_qdpx(path: Path) -> None:
    """The demo project with an external entity that would read /etc/passwd."""
    with zipfile.ZipFile(DEMO / "interviews.qdpx") as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "project.qde":
                end = data.index(b"?>") + 2
                data = (data[:end] + b'\n<!DOCTYPE Project [<!ENTITY leak SYSTEM "file:///etc/passwd">]>'
                        + data[end:]).replace(b"<Description>SYNTHETIC", b"<Description>&leak;", 1)
            target.writestr(info, data)


def _no_consent_column(folder: Path) -> None:
    copy_demo(folder)
    pl.read_csv(folder / "interviews.csv", infer_schema=False).drop("consent").write_csv(folder / "interviews.csv")


def _unknown_code(folder: Path) -> None:
    copy_demo(folder)
    segments = pl.read_csv(folder / "segments.csv", infer_schema=False)
    segments.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("peers.gossip")).otherwise(pl.col("code"))
                          .alias("code")).write_csv(folder / "segments.csv")


def _broken_zip(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "interviews.qdpx").write_bytes((DEMO / "interviews.qdpx").read_bytes()[:3000])


def _xxe(folder: Path) -> None:
    folder.mkdir(parents=True)
    _hostile_qdpx(folder / "interviews.qdpx")


# wave -> (how its interviews are spoiled, what raw.rejected_files says, or None: quarantined)
HOSTILE = {
    "noconsent": (_no_consent_column, "required column(s) of the interviews table missing: consent"),
    "brokenzip": (_broken_zip, "a .qdpx is a zip archive"),
    "xxe": (_xxe, "external entity"),
    "unknowncode": (_unknown_code, None),
}


def test_no_interviews_and_hostile_interviews_leave_the_survey_as_it_is(data_env):
    _wave(data_env, "plain", interviews=False)
    for wave, (spoil, _) in HOSTILE.items():
        spoil(_wave(data_env, wave, interviews=False) / "interviews")
    summary = run_waves(["plain", *HOSTILE])
    assert summary.code == 1  # three waves' interview strands failed

    # the wave without interviews: the interview checks pass, empty interview tables, a note in the report
    plain_checks = summary.checks["plain"]
    assert plain_checks["interview_registry_matches_design"] == (True, "ERROR")
    assert plain_checks["no_raw_names_outside_raw"] == (True, "ERROR")
    assert plain_checks["interview_rows_pass_the_rules"] == (True, "WARN")
    report = (data_env / "reports" / "plain" / "report.html").read_text(encoding="utf-8")
    assert "delivered no interviews" in report
    survey_checks = {k: v for k, v in plain_checks.items() if not k.startswith(("interview_", "no_raw_names"))}
    def working(wave):
        return duckdb.connect(str(data_env / "restricted" / "waves" / wave / "work.duckdb"), read_only=True)

    with duckdb.connect(str(data_env / "warehouse" / "lbc.duckdb"), read_only=True) as con:
        rejected = {}
        for wave in HOSTILE:
            with working(wave) as work:
                if work.execute("select count(*) from duckdb_tables() where table_name = 'rejected_files'").fetchone()[0]:
                    rejected.update({w: (f, r) for w, f, r in work.execute(
                        "select wave, file, reason from raw.rejected_files").fetchall()})
        assert set(rejected) == {w for w, (_, message) in HOSTILE.items() if message}
        for wave, (_, message) in HOSTILE.items():
            # the survey's checks ran with the plain wave's outcomes
            assert {k: v for k, v in summary.checks[wave].items() if k in survey_checks} == survey_checks, wave
            # the survey strand's results are those of the same questionnaires without interviews:
            # published for the quarantine case, in the wave's working database (computed, not
            # published) when the interview strand failed
            source = con if not message else working(wave)
            for table in SURVEY_TABLES:
                assert_frame_equal(_rows(source, table, wave), _rows(con, table, "plain"), abs_tol=1e-9)
            if message:  # a clear error naming the file; nothing of the interviews written
                assert message in rejected[wave][1], wave
                assert "interview_registry_matches_design" not in summary.checks[wave]
                for table in ("raw.interviews", "staging.interviews", "marts.triangulation"):
                    if source.execute("select count(*) from duckdb_tables() where schema_name || '.' || table_name = ?",
                                      [table]).fetchall()[0][0]:
                        assert source.execute(f"select count(*) from {table} where wave = ?", [wave]).fetchall()[0][0] == 0
                source.close()
                # not published: consumers see nothing of the wave
                assert con.execute("select count(*) from analysis.sample_flow where wave = ?", [wave]).fetchall()[0][0] == 0
                assert not (data_env / "reports" / wave).exists()
        # the unknown code: one segment quarantined, the rest of the strand built
        quarantine = con.execute("select rule, column_name, raw_value from staging.interview_quarantine "
                                 "where wave = 'unknowncode'").fetchall()
        assert quarantine == [("unknown_code", "code", "peers.gossip")]
        assert con.execute("select count(*) from marts.triangulation where wave = 'unknowncode'").fetchall()[0][0] == 3
        assert summary.checks["unknowncode"]["no_raw_names_outside_raw"] == (True, "ERROR")
        assert summary.checks["unknowncode"]["interview_rows_pass_the_rules"] == (False, "WARN")
        for example in ("examples/05_interviews_joint_display", "examples/06_interview_quarantine"):
            assert con.sql(read_sql(example)).fetchall()  # the users' queries run
    for report in (data_env / "restricted" / "waves" / "xxe" / "reports").glob("report.html"):  # unpublished
        assert "root:" not in report.read_text(encoding="utf-8")


def test_a_missing_interview_fails_the_registry_check_and_blocks_the_joint_display(data_env):
    folder = _wave(data_env, "short", interviews=True) / "interviews"
    folder.mkdir()
    for name in ("segments.csv", "codebook.csv"):
        shutil.copy(DEMO / name, folder / name)
    registry = pl.read_csv(DEMO / "interviews.csv", infer_schema=False)
    first_grandparent = registry.with_row_index().filter(pl.col("role") == "grandparent")["index"][0]
    registry.filter(pl.int_range(pl.len()) != first_grandparent).write_csv(folder / "interviews.csv")

    summary = run_waves(["short"])
    assert summary.code == 1
    assert summary.checks["short"]["interview_registry_matches_design"] == (False, "ERROR")
    # the run is not published: what it computed is in the wave's working database and files
    assert not (data_env / "warehouse" / "lbc.duckdb").exists()  # the only wave: nothing published
    with duckdb.connect(str(data_env / "restricted" / "waves" / "short" / "work.duckdb"), read_only=True) as con:
        registry_rows = dict(con.execute(
            "select grp, n_interviews from marts.interview_registry where wave = 'short' "
            "and dimension = 'role_group'").fetchall())
        assert registry_rows["grandparent"] == 2
        tables = {r[0] for r in con.execute("select table_name from duckdb_tables() where schema_name = 'marts'").fetchall()}
        assert "triangulation" not in tables  # blocked: never built
        assert con.execute("select count(*) from marts.hypotheses where wave = 'short'").fetchall()[0][0] == 6
        quarantined = con.execute(
            "select distinct rule from staging.interview_quarantine where wave = 'short'").fetchall()
        assert quarantined == [("unknown_interview",)]  # the removed interview's segments
    report = data_env / "restricted" / "waves" / "short" / "reports" / "report.html"
    assert "section:interviews" not in report.read_text(encoding="utf-8")
    assert not (data_env / "reports" / "short").exists()
