"""An ERROR check that fails stops everything downstream of what it guards.

The README promises that the marts, model artifacts, publication tables and report are never
built from a wave whose sample flow or analysis sample fails its checks. Each ERROR check is
made to fail here and the test looks for anything written downstream.
"""

import duckdb
import pytest
from dagster import DagsterInstance

from lbc_pipeline.definitions import defs
from lbc_pipeline.lib.quality import rules
from lbc_pipeline_tests.rows import DISTRIBUTION, FIELDWORK, varied_rows, write_wave

WAVE = "blk"
SCHOOLS = [dict(school, distributed="120") for school in DISTRIBUTION]


def run(data, manifest=None, run_config=None):
    """Write a 300-questionnaire wave and run the main job on it in process."""
    write_wave(data / "raw" / WAVE, varied_rows(300, seed=5), wave=WAVE, distribution=SCHOOLS,
               manifest=manifest or {"wave": WAVE, "fieldwork": FIELDWORK})
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("wave", [WAVE])
    result = defs.resolve_job_def("lbc_main_job").execute_in_process(
        instance=instance, partition_key=WAVE, raise_on_error=False, run_config=run_config or {})
    checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
              for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    return result, checks


def downstream_written(data, schemas=("marts",)) -> list[str]:
    """Everything downstream of the analysis layer that holds this wave: rows of `schemas`
    in the serving file (what consumers see) or in the wave's working database (what the
    run built), and files, published or in the wave's working folder."""
    found = []
    for name, path in (("serving", data / "warehouse" / "lbc.duckdb"),
                       ("working", data / "restricted" / "waves" / WAVE / "work.duckdb")):
        if not path.exists():
            continue
        with duckdb.connect(str(path), read_only=True) as con:
            for schema, table in con.execute(
                    "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE' "
                    f"and table_schema in ({', '.join(repr(s) for s in schemas)})").fetchall():
                if con.execute(f'select count(*) from "{schema}"."{table}" where wave = ?', [WAVE]).fetchone()[0]:
                    found.append(f"{name} {schema}.{table}")
    for kind in ("artifacts", "reports"):
        folders = [data / kind / WAVE, *(data / kind / ".versions" / WAVE).glob("*"),
                   data / "restricted" / "waves" / WAVE / kind]
        found += [str(p) for p in folders if p.exists() and any(p.iterdir())]
    return found


def test_a_clean_wave_passes_every_check_and_reaches_the_marts(data_env):
    # The negative case: the same wave with nothing wrong builds every mart.
    result, checks = run(data_env)
    assert result.success
    assert checks["sample_flow_conservation"] and checks["analytic_sample_expectations"]
    assert "serving marts.model_coefficients" in downstream_written(data_env)


@pytest.mark.parametrize(
    "case",
    [
        # the manifest expects another number of analysed children: sample_flow_expected_counts fails
        "expected_counts",
        # the rule that guards conservation reports a broken flow
        "conservation",
        # a group-size floor no migration group reaches: the great-expectations suite fails
        "expectations",
    ],
)
def test_a_failing_error_check_blocks_everything_downstream(data_env, monkeypatch, case):
    manifest = run_config = None
    failing = {"expected_counts": "sample_flow_expected_counts", "conservation": "sample_flow_conservation",
               "expectations": "analytic_sample_expectations"}[case]
    if case == "expected_counts":
        manifest = {"wave": WAVE, "fieldwork": FIELDWORK, "expected": {"analysed": 9999}}
    elif case == "conservation":
        broken = rules.Outcome(False, rules.ERROR, "a step loses questionnaires (test)")
        monkeypatch.setattr(rules, "check_conservation", lambda flow, status: broken)
    else:
        run_config = {"resources": {"quality_config": {"config": {"min_group_size": 100000}}}}
    result, checks = run(data_env, manifest, run_config)
    assert not result.success
    assert checks[failing] is False
    assert downstream_written(data_env) == []
    assert not (data_env / "warehouse" / "lbc.duckdb").exists()  # nothing of the wave published


def test_a_blocked_wave_is_not_shown_as_healthy_and_says_why(data_env, capsys):
    """The blocked wave of the issue: its analysis tables are not materialised (the partition
    shows the step failed), the failure, the check result, the pages of analytic_sample,
    model_coefficients and report, `lbc status` and `lbc flow` say why in words, and `lbc
    run --wave` runs it again."""
    from dagster import AssetKey, AssetRecordsFilter

    from lbc_pipeline import cli

    run_config = {"resources": {"quality_config": {"config": {"min_group_size": 200}}}}
    write_wave(data_env / "raw" / WAVE, varied_rows(300, seed=5), wave=WAVE, distribution=SCHOOLS,
               manifest={"wave": WAVE, "fieldwork": FIELDWORK})
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("wave", [WAVE])
    result = defs.resolve_job_def("lbc_main_job").execute_in_process(
        instance=instance, partition_key=WAVE, raise_on_error=False, run_config=run_config)
    assert not result.success
    words = "the minimum is 200 (quality_config.min_group_size)"
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "build_analysis"
    message = failure.event_specific_data.error.message
    assert f"wave {WAVE} is not published" in message and words in message
    assert "children" in message and "group has" in message
    # no analysis table shows a materialisation of this run; the Partitions tab (the
    # instance's status per partition) shows the wave failed, not materialised
    materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert not any(key.startswith("analysis/") for key in materialised)
    from lbc_pipeline.assets import wave_partitions

    for page in (["analysis", "analytic_sample"], ["marts", "model_coefficients"], ["publish", "wave_versions"]):
        status = instance.get_status_by_partition(AssetKey(page), [WAVE], wave_partitions)
        assert status[WAVE] is None or status[WAVE].value == "FAILED", (page, status)
    assert instance.get_status_by_partition(AssetKey(["analysis", "analytic_sample"]), [WAVE],
                                            wave_partitions)[WAVE].value == "FAILED"
    # the check result names the wave's partition and the reason in words
    evaluation = next(e.asset_check_evaluation_data for e in result.all_events
                      if e.event_type_value == "ASSET_CHECK_EVALUATION"
                      and e.asset_check_evaluation_data.check_name == "analytic_sample_expectations")
    assert not evaluation.passed and words in evaluation.description
    assert evaluation.partition == WAVE
    # the pages a user opens: an observation "NOT PUBLISHED: <why>" for this partition
    for page in (["analysis", "analytic_sample"], ["marts", "model_coefficients"], ["marts", "report"]):
        records = instance.fetch_observations(AssetRecordsFilter(asset_key=AssetKey(page), asset_partitions=[WAVE]),
                                              limit=1).records
        observed = records[0].event_log_entry.asset_observation
        assert observed.metadata["published"].value is False and words in observed.metadata["reason"].value
    # the CLI: status and flow say it in words; nothing reached the serving file
    assert cli.main(["status", "--wave", WAVE]) == 0
    out = capsys.readouterr().out
    assert f"wave {WAVE}: NOT PUBLISHED" in out and words in out and f"lbc run --wave {WAVE}" in out
    assert cli.main(["flow", "--wave", WAVE]) == 2
    assert words in capsys.readouterr().err
    # rerun by id with a threshold it meets: published
    result = defs.resolve_job_def("lbc_main_job").execute_in_process(instance=instance, partition_key=WAVE)
    assert result.success
    assert cli.main(["status", "--wave", WAVE]) == 0
    assert f"wave {WAVE}: published (run {result.run_id}" in capsys.readouterr().out
    status = instance.get_status_by_partition(AssetKey(["analysis", "analytic_sample"]), [WAVE], wave_partitions)
    assert status[WAVE].value == "MATERIALIZED"


def test_one_analysis_table_can_be_materialised_alone(data_env):
    # Multi-assets are subsettable: a researcher can rebuild analysis/sample_flow by itself.
    from dagster import AssetKey

    write_wave(data_env / "raw" / WAVE, varied_rows(120, seed=3), wave=WAVE, distribution=SCHOOLS)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("wave", [WAVE])
    job = defs.resolve_job_def("lbc_main_job")
    upstream = [AssetKey([s, t]) for s, t in (("raw", "questionnaires"), ("raw", "distribution"), ("raw", "load_log"),
                                               ("staging", "questionnaires"), ("staging", "distribution"),
                                               ("staging", "missing_values"))]
    assert job.execute_in_process(instance=instance, partition_key=WAVE, asset_selection=upstream).success
    result = job.execute_in_process(instance=instance, partition_key=WAVE,
                                    asset_selection=[AssetKey(["analysis", "sample_flow"])])
    assert result.success
    written = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert written == {"analysis/sample_flow"}
    with duckdb.connect(str(data_env / "restricted" / "waves" / WAVE / "work.duckdb"), read_only=True) as con:
        tables = {t for (t,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'analysis'").fetchall()}
    assert "sample_flow" in tables and "analytic_sample" not in tables
    assert not (data_env / "warehouse" / "lbc.duckdb").exists()  # a run without the publish step publishes nothing


def test_a_raw_name_outside_raw_blocks_the_publication(data_env, monkeypatch):
    """The privacy check runs after the report is written: when it fails, the wave is not
    published, so consumers see nothing of it (the run's tables and report stay in its
    working folder for inspection)."""
    from lbc_pipeline.lib.qualitative import privacy

    monkeypatch.setattr(privacy, "find_leaks", lambda texts, names: [("report.html", "a name")])
    result, checks = run(data_env)
    assert not result.success
    assert checks["no_raw_names_outside_raw"] is False
    assert not (data_env / "warehouse" / "lbc.duckdb").exists()  # nothing published
    assert not (data_env / "reports" / WAVE).exists()
    assert (data_env / "restricted" / "waves" / WAVE / "reports" / "report.html").exists()  # for inspection
    assert "working marts.model_coefficients" in downstream_written(data_env)
