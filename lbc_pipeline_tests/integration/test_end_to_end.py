"""End to end: the main job materialises every asset and check into a temporary DuckDB.

The reference wave must give the paper's flow (1059 / 980 / 933 / 605) and groups
(368 / 29 / 123 / 85) with every check passing, and no name or roll number may appear
outside the raw layer.
"""

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import polars as pl
import pytest

from lbc_pipeline_tests.rows import DISTRIBUTION, valid_row, varied_rows, write_wave
from lbc_pipeline.cli import run_waves
from lbc_pipeline.config import PROJECT_ROOT

REFERENCE = PROJECT_ROOT / "data" / "raw" / "2019"


def connect(data: Path) -> duckdb.DuckDBPyConnection:
    """The serving file: what consumers read."""
    return duckdb.connect(str(data / "warehouse" / "lbc.duckdb"), read_only=True)


def working(data: Path, wave: str) -> duckdb.DuckDBPyConnection:
    """A wave's working database (restricted tier: raw layer, personal data)."""
    return duckdb.connect(str(data / "restricted" / "waves" / wave / "work.duckdb"), read_only=True)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One run of the main job on the reference wave, shared by the tests below."""
    if not REFERENCE.exists():
        pytest.skip("the reference wave is not in data/raw/2019")
    tmp = tmp_path_factory.mktemp("reference")
    data = tmp / "data"
    shutil.copytree(REFERENCE, data / "raw" / "2019")
    key = tmp / "key"
    key.write_text("cd" * 32)
    patch = pytest.MonkeyPatch()
    patch.setenv("LBC_DATA_DIR", str(data))
    patch.setenv("LBC_DUCKDB_PATH", str(data / "warehouse" / "lbc.duckdb"))
    patch.setenv("LBC_PSEUDONYM_KEY_FILE", str(key))
    patch.setenv("DAGSTER_HOME", str(tmp / "dagster_home"))
    summary = run_waves(["2019"])
    yield summary, data, tmp / "dagster_home"
    patch.undo()


def test_reference_flow(reference_run):
    summary, data, _ = reference_run
    assert summary.code == 0
    with connect(data) as con:
        flow = dict(con.execute(
            "select step, n_after from analysis.sample_flow where wave = '2019'").fetchall())
        groups = dict(con.execute(
            "select migration_group, count(*) from analysis.analytic_sample where wave = '2019' group by 1").fetchall())
    assert (flow["distributed"], flow["returned"], flow["valid"], flow["analysed"]) == (1059, 980, 933, 605)
    assert groups == {"none": 368, "mother": 29, "father": 123, "both": 85}


def test_every_check_passes_on_the_reference_wave(reference_run):
    checks = reference_run[0].checks["2019"]
    assert len(checks) == 9  # 6 of the survey strand, 3 of the interview strand
    assert {name: passed for name, (passed, _) in checks.items()} == {name: True for name in checks}


def test_no_personal_data_outside_raw(reference_run):
    _, data, _ = reference_run
    with working(data, "2019") as con:
        names = {r[0] for r in con.execute(
            "select student_name from raw.questionnaires where student_name is not null "
            "union select student_no from raw.questionnaires where student_no is not null").fetchall()}
    assert len(names) > 900
    with connect(data) as con:
        assert con.execute("select count(*) from duckdb_tables() where schema_name = 'raw'").fetchone()[0] == 0
        columns = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where table_schema <> 'raw' and data_type = 'VARCHAR' and table_catalog = current_database()").fetchall()
        leaks = []
        for schema, table, column in columns:
            assert "student" not in column, f"{schema}.{table}.{column}"
            values = {r[0] for r in con.execute(f'select distinct "{column}" from "{schema}"."{table}"').fetchall()}
            leaks += [f"{schema}.{table}.{column}" for v in values if v in names]
    assert leaks == []


def test_every_table_and_column_is_documented(reference_run):
    _, data, _ = reference_run
    for con in (connect(data), working(data, "2019")):
        _documented(con)


def _documented(con) -> None:
    with con:
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() where comment is null").fetchall()
        columns = con.execute(
            "select schema_name, table_name, column_name from duckdb_columns() "
            "where comment is null and schema_name in ('raw', 'staging', 'analysis', 'marts') "
            "and table_name in (select table_name from duckdb_tables())").fetchall()
        views = con.execute(
            "select schema_name, view_name from duckdb_views() where not internal and comment is null").fetchall()
        view_columns = con.execute(
            "select c.schema_name, c.table_name, c.column_name from duckdb_columns() c join duckdb_views() v "
            "on v.view_name = c.table_name and v.schema_name = c.schema_name where not v.internal and c.comment is null"
        ).fetchall()
    assert tables == [] and columns == []
    assert views == [] and view_columns == []


def test_a_small_wave_runs_end_to_end_and_bad_delivery_is_rejected(data_env):
    rows = varied_rows(300, seed=2) + [valid_row("X1", grade="6"), valid_row("X2", mother_edu="-8")]
    schools = [dict(school, distributed="120") for school in DISTRIBUTION]
    write_wave(data_env / "raw" / "small", rows, wave="small", distribution=schools)
    assert run_waves(["small"]).code == 0
    with connect(data_env) as con:
        flow = dict(con.execute("select step, n_after from analysis.sample_flow where wave = 'small'").fetchall())
    assert (flow["returned"], flow["valid"], flow["analysed"]) == (302, 301, 300)

    broken = write_wave(data_env / "raw" / "broken", rows, wave="broken", distribution=schools)
    (broken / "questionnaires.csv").write_text("qid,school_id\nQ1,S1\n")
    assert run_waves(["broken"]).code == 1
    with working(data_env, "broken") as con:
        rejected = con.execute("select wave, column_name, reason from raw.rejected_files").fetchall()
        raw_tables = con.execute("select table_name from duckdb_tables() where table_name = 'questionnaires'").fetchall()
    assert rejected[0][0] == "broken" and rejected[0][1] == "class_id"
    assert raw_tables == []  # nothing of the broken delivery was written
    with connect(data_env) as con:
        assert {r[0] for r in con.execute("select distinct wave from analysis.sample_flow").fetchall()} == {"small"}


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def test_html_report_renders_in_headless_chromium(reference_run, tmp_path):
    """The report a researcher opens: it must render its tables, marked synthetic."""
    _, data, _ = reference_run
    report = data / "reports" / "2019" / "report.html"
    assert report.exists()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([chromium(), *flags, "--dump-dom", report.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Uncaught" not in dom.stderr and "ERROR:CONSOLE" not in dom.stderr
    parser = TableCounter()
    parser.feed(dom.stdout)
    assert parser.tables >= 8, parser.tables  # flow, reliability, Tables 1-4, replication, hypotheses
    assert parser.rows > 100
    assert "SYNTHETIC" in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run([chromium(), *flags, f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


class TableCounter(HTMLParser):
    """Counts the tables and rows of the DOM Chromium rendered."""

    def __init__(self):
        super().__init__()
        self.tables = 0
        self.rows = 0

    def handle_starttag(self, tag, attrs):
        self.tables += tag == "table"
        self.rows += tag == "tr"


def test_reference_wave_replicates_the_paper(reference_run):
    """marts.replication: every Table 2-4 number within tolerance, all 93 stars; H1, H3 yes, H2 no."""
    _, data, _ = reference_run
    with connect(data) as con:
        coefficients = con.execute(
            "select count(*), sum(case when within_tolerance then 1 else 0 end), "
            "sum(case when stars_match then 1 else 0 end), max(abs(delta_in_se)), "
            "min(se_ratio), max(se_ratio) from marts.replication "
            "where wave = '2019' and term not in ('r_squared', 'n_obs')").fetchone()
        r_squared = con.execute(
            "select count(*), sum(case when within_tolerance then 1 else 0 end) from marts.replication "
            "where wave = '2019' and term = 'r_squared'").fetchone()
        verdicts = dict(con.execute(
            "select distinct hypothesis, supported from marts.hypotheses where wave = '2019'").fetchall())
    assert coefficients[:3] == (93, 93, 93)
    assert coefficients[3] <= 0.05 and 0.97 <= coefficients[4] and coefficients[5] <= 1.03
    assert r_squared == (14, 14)
    assert verdicts == {"H1": True, "H2": False, "H3": True}


def test_artifacts_and_publication_files_are_written(reference_run):
    _, data, _ = reference_run
    artifacts = sorted((data / "artifacts" / "2019").glob("*.json"))
    assert len(artifacts) == 28  # 14 models x 2 specifications
    record = json.loads(artifacts[0].read_text())
    assert len(record["sample_sha256"]) == 64 and record["n_obs"] == 605
    reports = data / "reports" / "2019"
    for stem in ("table_1", "table_2", "table_3", "table_4"):
        for ext in ("md", "html", "tex", "csv"):
            assert (reports / f"{stem}.{ext}").stat().st_size > 0, f"{stem}.{ext}"


def test_reference_interviews_are_triangulated_and_no_planted_name_leaves_raw(reference_run):
    """Acceptance of the interview strand: 41 = 18 + 13 + 7 + 3, H1 convergent, H2 convergent
    with the null finding, H3 complementary, and no planted name outside raw or in the report."""
    from lbc_pipeline.lib.io.warehouse import read_sql
    from lbc_pipeline.lib.qualitative.privacy import find_leaks, text_values
    from lbc_pipeline.synthetic.interviews import generate_demo_set

    _, data, _ = reference_run
    with connect(data) as con:
        registry = dict(con.execute("select grp, n_interviews from marts.interview_registry "
                                    "where wave = '2019' and dimension in ('total', 'role_group')").fetchall())
        labels = dict(con.execute("select hypothesis, agreement from marts.triangulation where wave = '2019'").fetchall())
        h2 = con.execute("select agreement_note from marts.triangulation where hypothesis = 'H2'").fetchall()[0][0]
        texts = text_values(con)
        joint = con.sql(read_sql("examples/05_interviews_joint_display")).pl()
    assert joint["hypothesis"].unique().sort().to_list() == ["H1", "H2", "H3"] and joint["excerpt"].null_count() == 0
    assert registry == {"all": 41, "child": 18, "teacher": 13, "parent": 7, "grandparent": 3}
    assert labels == {"H1": "convergent", "H2": "convergent", "H3": "complementary"}
    assert "null finding" in h2
    planted = generate_demo_set().planted
    people = planted.filter(planted["slot"] != "school")["value"].to_list()
    schools = planted.filter(planted["slot"] == "school")["value"].to_list()
    report = (data / "reports" / "2019" / "report.html").read_text(encoding="utf-8")
    assert find_leaks({**texts, "report.html": [report]}, people) == []
    # schools' names are published by the survey strand (staging.distribution), never by the interviews
    interview_texts = {k: v for k, v in texts.items() if k.split(".")[1].startswith(("interview", "triangulation"))}
    section = report[report.index("<!-- section:interviews -->"):]
    assert find_leaks({**interview_texts, "report#interviews": [section]}, schools) == []
    assert 'id="interviews"' in report and "<svg" in report


def test_sensitivity_marts_are_written_and_reproducible(reference_run, tmp_path):
    """Simple slopes, JN, clustering, missing data and the robustness matrix of the reference
    wave; recomputing them (and redrawing the figures) from the warehouse gives the same rows
    and byte-identical files."""
    from polars.testing import assert_frame_equal

    from lbc_pipeline.lib.marts import missing_data, moderation, robustness, sensitivity
    from lbc_pipeline.lib.render import figures

    _, data, _ = reference_run
    with connect(data) as con:
        read = {t: con.sql(f"select * from {t} where wave = '2019'").pl() for t in (
            "analysis.analytic_sample", "analysis.measures", "staging.questionnaires", "analysis.sample_flow",
            "analysis.sample_flow_reasons", "marts.model_coefficients", "marts.simple_slopes",
            "marts.johnson_neyman", "marts.cluster_sensitivity", "marts.multilevel_icc", "marts.mcar_test",
            "marts.mi_coefficients", "marts.robustness")}
    matrix = read["marts.robustness"]
    published = dict(matrix.filter(pl.col("analysis") == "as_published").select("hypothesis", "supported").iter_rows())
    assert published == {"main": True, "H1": True, "H2": False, "H3": True}  # as marts.hypotheses says
    assert matrix.height == 4 * 8 and read["marts.mcar_test"]["n_rows"][0] == 926
    assert read["marts.mi_coefficients"]["n_imputations"].unique().to_list() == [20]
    assert read["marts.cluster_sensitivity"]["analysis"].n_unique() == 5
    # every run the same: recompute from the stored inputs
    sample = read["analysis.analytic_sample"]
    slopes, jn = moderation.explain_moderation(sample, "2019")
    cluster, icc = sensitivity.clustering_sensitivity_of_wave(read["analysis.measures"], read["staging.questionnaires"], "2019")
    mcar, mi = missing_data.missing_data_sensitivity(read["analysis.measures"], read["staging.questionnaires"], "2019")
    for table, frame in (("marts.simple_slopes", slopes), ("marts.johnson_neyman", jn), ("marts.cluster_sensitivity", cluster),
                         ("marts.multilevel_icc", icc), ("marts.mcar_test", mcar), ("marts.mi_coefficients", mi),
                         ("marts.robustness", robustness.robustness_matrix(read["marts.model_coefficients"], cluster, mi, "2019"))):
        stored_rows = read[table].select(frame.columns)
        assert_frame_equal(frame.sort(frame.columns), stored_rows.sort(frame.columns), check_exact=True)
    stored = data / "reports" / "2019" / "figures"
    again = figures.draw_wave_figures(sample, read["marts.model_coefficients"], read["analysis.sample_flow"],
                                      read["analysis.sample_flow_reasons"], jn, tmp_path / "figures")
    assert len(again) == 17
    for f in again:
        assert (stored / f.png.name).read_bytes() == f.png.read_bytes(), f.stem
        assert (stored / f.svg.name).read_bytes() == f.svg.read_bytes(), f.stem


def test_report_figures_decode_in_headless_chromium(reference_run, tmp_path):
    from lbc_pipeline_tests.lib.render.test_figures import images_in_chromium

    _, data, _ = reference_run
    found = images_in_chromium(data / "reports" / "2019" / "report.html", tmp_path)
    assert len(found) == 17  # flow, depression, 6 interaction, 6 JN, 3 coefficient plots
    for image in found:
        assert image["complete"] and image["width"] > 300 and 0.01 < image["inked"] < 0.9, image


def test_the_report_and_lbc_replication_state_the_checks(reference_run, capsys):
    from lbc_pipeline.cli import print_replication

    _, data, _ = reference_run
    with connect(data) as con:
        results = con.execute("select check_name, severity, passed from analysis.check_results "
                              "where wave = '2019' order by check_order").fetchall()
        published = con.execute("select wave, table_count from publish.wave_versions").fetchall()
    assert [(n, s) for n, s, _ in results] == [
        ("sample_flow_conservation", "ERROR"), ("sample_flow_expected_counts", "ERROR"),
        ("analytic_sample_expectations", "ERROR"), ("fieldwork_window", "WARN"), ("exclusion_shares", "WARN"),
        ("differential_attrition", "WARN")]
    assert all(p for _, _, p in results)
    # one publication of the wave (its staging, analysis and marts tables) and one of the
    # cross-wave marts (pooled coefficients, pooled fit, wave comparison)
    assert sorted(w for w, _ in published) == ["2019", "cross_wave"]
    assert dict(published)["2019"] > 30 and dict(published)["cross_wave"] == 3
    page = (data / "reports" / "2019" / "report.html").read_text(encoding="utf-8")
    assert 'id="checks"' in page and "6 data-quality checks (3 ERROR, 3 WARN): 6 passed." in page
    assert print_replication(["2019"]) == 0
    out = capsys.readouterr().out
    assert "Checks: 6 data-quality checks (3 ERROR, 3 WARN): 6 passed." in out
    assert "analytic_sample_expectations   ERROR passed: great-expectations suite passed" in out
