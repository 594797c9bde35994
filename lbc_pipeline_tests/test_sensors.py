"""The incoming-waves sensor and the nightly refresh.

Users drop a wave into data/incoming and expect it processed once: the same files again must
not trigger a run, changed files must, and a broken delivery must be skipped with its reason
without registering anything or touching the files.
"""

import datetime
import json
import shutil

import duckdb
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    SensorResult,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)

from lbc_pipeline_tests.rows import DISTRIBUTION, valid_row, varied_rows, write_wave
from lbc_pipeline.config import PROJECT_ROOT
from lbc_pipeline.definitions import defs

NIGHT = datetime.datetime(2026, 12, 1, 2, 0, tzinfo=datetime.timezone.utc)
from lbc_pipeline.sensors import DELIVERY_TAG, incoming_waves, nightly_refresh


@pytest.fixture
def incoming(data_env, monkeypatch):
    folder = data_env / "incoming"
    folder.mkdir()
    monkeypatch.setenv("LBC_INCOMING_DIR", str(folder))
    return folder


def evaluate(instance, cursor=None):
    context = build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return incoming_waves(context)


def delivery(folder, n=40, seed=1, wave="2031"):
    schools = [dict(s, distributed="100") for s in DISTRIBUTION]
    return write_wave(folder / wave, varied_rows(n, seed=seed), wave=wave, distribution=schools)


def test_new_delivery_is_registered_and_run_once(incoming):
    delivery(incoming)
    with DagsterInstance.ephemeral() as instance:
        first = evaluate(instance)
        assert isinstance(first, SensorResult)
        assert [r.partition_key for r in first.run_requests] == ["2031"]
        assert first.run_requests[0].tags[DELIVERY_TAG] == "new delivery"
        assert first.dynamic_partitions_requests[0].partition_keys == ["2031"]
        again = evaluate(instance, first.cursor)  # the same files: nothing to do
        assert isinstance(again, SkipReason)


def test_changed_files_request_a_new_run_that_records_the_change(incoming):
    folder = delivery(incoming)
    with DagsterInstance.ephemeral() as instance:
        first = evaluate(instance)
        instance.add_dynamic_partitions("wave", ["2031"])
        delivery(incoming, n=41)  # one more questionnaire keyed
        second = evaluate(instance, first.cursor)
        assert isinstance(second, SensorResult)
        assert second.run_requests[0].run_key != first.run_requests[0].run_key
        assert second.run_requests[0].tags[DELIVERY_TAG].startswith("questionnaires.csv ")
        assert second.dynamic_partitions_requests == []  # already registered
        assert json.loads(second.cursor)["2031"]["questionnaires.csv"] != json.loads(first.cursor)["2031"]["questionnaires.csv"]
    assert (folder / "questionnaires.csv").exists()


def test_broken_delivery_is_skipped_with_its_reason_and_untouched(incoming, data_env):
    folder = delivery(incoming)
    (folder / "questionnaires.csv").write_text("qid,school_id\nQ1,S1\n")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with DagsterInstance.ephemeral() as instance:
        result = evaluate(instance)
        assert isinstance(result, SensorResult) and result.run_requests == []
        assert "2031: questionnaires.csv, column 'class_id': required column(s) missing" in result.skip_reason.skip_message
        assert instance.get_dynamic_partitions("wave") == []
        again = evaluate(instance, result.cursor)  # refused once: not validated nor recorded again
        assert isinstance(again, SkipReason) and "refused before, files unchanged" in again.skip_message
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    # recorded in the wave's working database (restricted tier), not in the serving file
    assert not (data_env / "warehouse" / "lbc.duckdb").exists()
    with duckdb.connect(str(data_env / "restricted" / "waves" / "2031" / "work.duckdb"), read_only=True) as con:
        assert con.execute("select wave, column_name from raw.rejected_files").fetchall() == [("2031", "class_id")]


def test_sensor_to_run_to_marts(incoming):
    """Follow a delivery from the sensor's request to the marts in the warehouse."""
    delivery(incoming, n=260, seed=4)
    with DagsterInstance.ephemeral() as instance:
        result = evaluate(instance)
        instance.add_dynamic_partitions("wave", [r.partition_key for r in result.run_requests])
        job = defs.resolve_job_def("lbc_main_job")
        run = job.execute_in_process(instance=instance, partition_key="2031", raise_on_error=False,
                                     run_config={"resources": {"quality_config": {"config": {"min_group_size": 5}}}})
        assert run.success
        materialised = {e.asset_key.path[-1] for e in run.get_asset_materialization_events()
                        for e in [e.event_specific_data.materialization]}
        assert {"analytic_sample", "model_coefficients", "replication", "hypotheses", "report"} <= materialised


def test_nightly_refresh_runs_only_stale_waves(incoming, data_env):
    folder = delivery(incoming, n=260, seed=4)
    with instance_for_test() as instance:  # schedules need an instance with a ref
        instance.add_dynamic_partitions("wave", ["2031"])
        context = build_schedule_context(instance=instance, scheduled_execution_time=NIGHT)
        stale = nightly_refresh(context)
        assert [r.partition_key for r in stale] == ["2031"]  # never loaded
        job = defs.resolve_job_def("lbc_main_job")
        job.execute_in_process(instance=instance, partition_key="2031", raise_on_error=False,
                               asset_selection=[AssetKey(["raw", t]) for t in ("questionnaires", "distribution", "load_log", "read_notes")])
        assert isinstance(nightly_refresh(build_schedule_context(instance=instance, scheduled_execution_time=NIGHT)), SkipReason)
        shutil.copy(folder / "questionnaires.csv", folder / "q.bak")
        (folder / "questionnaires.csv").write_text((folder / "q.bak").read_text() + ",".join(valid_row("Z9").values()) + "\n")
        (folder / "q.bak").unlink()
        refreshed = nightly_refresh(build_schedule_context(instance=instance, scheduled_execution_time=NIGHT))
        assert [r.tags[DELIVERY_TAG] for r in refreshed] == ["files changed since the last load"]


def test_follow_up_wave_from_incoming_to_pooled_marts(incoming, data_env):
    """The synthetic 2021 follow-up dropped into data/incoming: sensor -> run -> marts,
    then the pooled models and the wave-over-wave comparison with the reference wave."""
    shutil.copytree(PROJECT_ROOT / "data" / "raw" / "2019", data_env / "raw" / "2019")
    shutil.copytree(PROJECT_ROOT / "data" / "demo" / "2021", incoming / "2021")
    with DagsterInstance.ephemeral() as instance:
        result = evaluate(instance)
        assert [r.partition_key for r in result.run_requests] == ["2021"]
        assert result.dynamic_partitions_requests[0].partition_keys == ["2021"]
        instance.add_dynamic_partitions("wave", ["2019", "2021"])
        job = defs.resolve_job_def("lbc_main_job")
        for wave in ("2019", "2021"):
            run = job.execute_in_process(instance=instance, partition_key=wave, raise_on_error=False)
            assert run.success, wave
            checks = {e.event_specific_data.asset_check_key.name: e.event_specific_data.passed
                      for e in run.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
            assert all(checks.values()), (wave, checks)
        cross = defs.resolve_job_def("lbc_cross_wave_job").execute_in_process(instance=instance)
        drift = [e.event_specific_data for e in cross.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        assert len(drift) == 1 and not drift[0].passed  # the mother-away group grew by two thirds
        assert "group_size mother" in drift[0].description
    with duckdb.connect(str(data_env / "warehouse" / "lbc.duckdb"), read_only=True) as con:
        pooled = con.execute("select distinct waves from marts.pooled_fit").fetchall()
        compared = con.execute(
            "select value, previous_value from marts.wave_comparison "
            "where wave = '2021' and kind = 'group_size' and measure = 'mother'").fetchall()
        terms = {r[0] for r in con.execute("select distinct term from marts.pooled_coefficients").fetchall()}
    assert pooled == [("2019,2021",)]
    assert compared == [(48.0, 29.0)]
    assert "wave_2021" in terms
