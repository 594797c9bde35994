"""A wave runs through a PostgreSQL-backed Dagster instance (the production profile).

`.ci/run` starts a private PostgreSQL on 127.0.0.1 and sets DAGSTER_PG_*; without them the
test is skipped locally (and fails in CI, where the server must be there).
"""

import os
import shutil

import psycopg2
import pytest
from dagster import DagsterInstance

from lbc_pipeline_tests.rows import DISTRIBUTION, varied_rows, write_wave
from lbc_pipeline.cli import run_waves
from lbc_pipeline.config import PROJECT_ROOT


@pytest.fixture
def postgres_home(data_env, tmp_path, monkeypatch):
    if "DAGSTER_PG_PORT" not in os.environ:
        if os.environ.get("CI"):
            pytest.fail("CI must start PostgreSQL (.ci/run) and set DAGSTER_PG_*")
        pytest.skip("no PostgreSQL: start one with scripts/postgres_local.sh and set DAGSTER_PG_*")
    home = tmp_path / "pg_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def count_runs() -> int:
    with psycopg2.connect(host=os.environ["DAGSTER_PG_HOST"], port=os.environ["DAGSTER_PG_PORT"],
                          user=os.environ["DAGSTER_PG_USERNAME"], password=os.environ.get("DAGSTER_PG_PASSWORD", ""),
                          dbname=os.environ["DAGSTER_PG_DB"]) as con, con.cursor() as cur:
        cur.execute("select count(*) from runs")
        return cur.fetchone()[0]


def test_a_wave_runs_through_a_postgres_instance(postgres_home, data_env):
    with DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        instance.upgrade()  # `dagster instance migrate`, before any run process starts
    before = count_runs()
    schools = [dict(s, distributed="150") for s in DISTRIBUTION]
    write_wave(data_env / "raw" / "pg", varied_rows(300, seed=9), wave="pg", distribution=schools)
    summary = run_waves(["pg"])
    assert summary.code == 0
    assert all(passed or severity == "WARN" for passed, severity in summary.checks["pg"].values())
    assert count_runs() == before + 2  # the wave's run and the cross-wave run are stored in PostgreSQL


# An analyst polling the serving file while two machines publish: here two processes on one
# PostgreSQL instance and one data folder.
WATCHER = """
import json, os, sys, time
import duckdb
path, stop, out = sys.argv[1:4]
seen = {"opens": 0, "failures": [], "waves": []}
while not os.path.exists(stop):
    if os.path.exists(path):
        try:
            with duckdb.connect(path, read_only=True) as con:
                seen["opens"] += 1
                waves = [w for (w,) in con.execute("select distinct wave from analysis.sample_flow order by 1").fetchall()]
                published = [w for (w,) in con.execute("select distinct wave from publish.wave_versions "
                                                       "where wave <> 'cross_wave' order by 1").fetchall()]
                assert waves == published, (waves, published)
                if waves not in seen["waves"]:
                    seen["waves"].append(waves)
        except Exception as exc:
            seen["failures"].append(f"{type(exc).__name__}: {exc}")
    time.sleep(0.2)
json.dump(seen, open(out, "w"))
"""


def test_two_processes_on_one_instance_publish_in_turn(postgres_home, data_env, tmp_path):
    import json
    import subprocess
    import sys

    from dagster import DagsterEventType, EventRecordsFilter, RunsFilter

    with DagsterInstance.get() as instance:
        instance.upgrade()
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    schools = [dict(s, distributed="150") for s in DISTRIBUTION]
    waves = ["pga", "pgb"]
    for i, wave in enumerate(waves):
        write_wave(data_env / "raw" / wave, varied_rows(300, seed=20 + i), wave=wave, distribution=schools)
    serving = data_env / "warehouse" / "lbc.duckdb"
    stop = tmp_path / "stop"
    watcher = subprocess.Popen([sys.executable, "-c", WATCHER, str(serving), str(stop), str(tmp_path / "seen.json")])
    runs = [subprocess.Popen([sys.executable, "-m", "lbc_pipeline.cli", "run", "--wave", wave],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for wave in waves]
    outputs = [p.communicate(timeout=900)[0] for p in runs]
    stop.touch()
    watcher.wait(timeout=60)
    assert [p.returncode for p in runs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["failures"] == [] and seen["opens"] > 0
    assert seen["waves"][-1] == waves  # both published; every view was whole (the assertion above)
    # in turn: the two publish steps' intervals, from the instance's event log, do not overlap
    with DagsterInstance.get() as instance:
        intervals = []
        records = [r for p in runs for r in instance.get_run_records(
            RunsFilter(job_name="lbc_main_job", tags={"lbc/pid": str(p.pid)}))]  # this test's runs only
        assert len(records) == 2
        for record in records:
            times = {}
            for kind in (DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS):
                for event in instance.get_records_for_run(record.dagster_run.run_id, of_type=kind).records:
                    if event.event_log_entry.step_key == "publish__wave_versions":
                        times[kind] = event.event_log_entry.timestamp
            intervals.append((times[DagsterEventType.STEP_START], times[DagsterEventType.STEP_SUCCESS]))
    (a_start, a_end), (b_start, b_end) = sorted(intervals)
    assert a_end <= b_start, intervals
