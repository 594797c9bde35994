"""kill -9 of `lbc run` in the middle of a wave: the next `lbc run` marks the orphaned run
failed (the UI no longer shows it running) and its outputs equal a clean run's byte for byte.
Takes about a minute (three runs in subprocesses)."""

import os
import shutil
import signal
import subprocess
import sys

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from lbc_pipeline.config import PROJECT_ROOT
from lbc_pipeline.lib.io.fingerprint import differences, run_outputs

REFERENCE = PROJECT_ROOT / "data" / "raw" / "2019"


def _env(tmp, name, key):
    data = tmp / name / "data"
    shutil.copytree(REFERENCE, data / "raw" / "2019")
    return data, {**os.environ, "LBC_DATA_DIR": str(data), "LBC_DUCKDB_PATH": str(data / "warehouse" / "lbc.duckdb"),
                  "LBC_PSEUDONYM_KEY_FILE": str(key), "DAGSTER_HOME": str(tmp / name / "dagster_home")}


def _lbc(env, *args):
    return subprocess.run([sys.executable, "-m", "lbc_pipeline.cli", "run", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_a_killed_run_is_marked_failed_and_the_rerun_equals_a_clean_run(tmp_path, monkeypatch):
    if not REFERENCE.exists():
        pytest.skip("the reference wave is not in data/raw/2019")
    key = tmp_path / "key"
    key.write_text("cd" * 32)
    data, env = _env(tmp_path, "killed", key)
    process = subprocess.Popen([sys.executable, "-m", "lbc_pipeline.cli", "run", "--wave", "2019"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in process.stdout:  # kill once the raw layer is written, before staging
            if "materialised raw/read_notes" in line:
                os.kill(process.pid, signal.SIGKILL)
                break
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with DagsterInstance.get() as instance:
        statuses = [r.status for r in instance.get_runs()]
    assert statuses == [DagsterRunStatus.STARTED]  # what the UI showed forever before
    rerun = _lbc(env, "--wave", "2019")
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert "was left unfinished by a killed lbc run: marked failed" in rerun.stdout
    with DagsterInstance.get() as instance:
        runs = instance.get_runs()  # newest first: cross-wave, the rerun, the killed run
        assert [r.status for r in runs][-1] == DagsterRunStatus.FAILURE
        assert all(r.status == DagsterRunStatus.SUCCESS for r in runs[:-1])
    clean_data, clean_env = _env(tmp_path, "clean", key)
    assert _lbc(clean_env, "--wave", "2019").returncode == 0
    assert differences(run_outputs(data), run_outputs(clean_data)) == []
