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
