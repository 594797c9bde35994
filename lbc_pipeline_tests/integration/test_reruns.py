"""Exact reruns: two `lbc run`s of the reference wave, each in its own data folder and
DAGSTER_HOME with the same pseudonym key, give byte-identical warehouse tables (run-time
columns aside), model artifacts and reports. Takes about 35 s (two runs in subprocesses)."""

import os
import shutil
import subprocess
import sys

import pytest

from lbc_pipeline.config import PROJECT_ROOT
from lbc_pipeline.lib.io.fingerprint import differences, run_outputs

REFERENCE = PROJECT_ROOT / "data" / "raw" / "2019"


def _run(tmp, name, key):
    data = tmp / name / "data"
    shutil.copytree(REFERENCE, data / "raw" / "2019")
    env = {**os.environ, "LBC_DATA_DIR": str(data), "LBC_DUCKDB_PATH": str(data / "warehouse" / "lbc.duckdb"),
           "LBC_PSEUDONYM_KEY_FILE": str(key), "DAGSTER_HOME": str(tmp / name / "dagster_home")}
    done = subprocess.run([sys.executable, "-m", "lbc_pipeline.cli", "run", "--wave", "2019"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return data


def test_two_runs_give_byte_identical_outputs(tmp_path):
    if not REFERENCE.exists():
        pytest.skip("the reference wave is not in data/raw/2019")
    key = tmp_path / "key"
    key.write_text("cd" * 32)
    first = run_outputs(_run(tmp_path, "first", key))
    second = run_outputs(_run(tmp_path, "second", key))
    assert any(k.startswith("table marts.") for k in first)
    assert any(k.startswith("artifacts/") for k in first) and any(k.startswith("reports/") for k in first)
    assert differences(first, second) == []
