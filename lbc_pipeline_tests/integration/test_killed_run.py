"""kill -9 of `lbc run` at any moment: consumers see a whole wave or the previous complete
version, never a mix; the next `lbc run` marks the killed runs failed (the UI no longer shows
them running) and its outputs equal a clean run's byte for byte. About two minutes (eight
runs in subprocesses)."""

import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import threading

import duckdb
import pytest
from dagster import DagsterInstance, DagsterRunStatus

from lbc_pipeline.config import PROJECT_ROOT
from lbc_pipeline.lib.io.fingerprint import differences, file_digests, table_digests
from lbc_pipeline.lib.io.warehouse import exclusive_file_lock

REFERENCE = PROJECT_ROOT / "data" / "raw" / "2019"
CONSUMER_SCHEMAS = ("staging", "analysis", "marts")


def _env(tmp, name, key):
    data = tmp / name / "data"
    shutil.copytree(REFERENCE, data / "raw" / "2019")
    return data, {**os.environ, "LBC_DATA_DIR": str(data), "LBC_DUCKDB_PATH": str(data / "warehouse" / "lbc.duckdb"),
                  "LBC_PSEUDONYM_KEY_FILE": str(key), "DAGSTER_HOME": str(tmp / name / "dagster_home")}


def _redeliver(data):
    """A corrected delivery of the same wave: one answer of the first questionnaire changed."""
    path = data / "raw" / "2019" / "questionnaires.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    column = rows[0].index("dep1")
    rows[1][column] = "3" if rows[1][column] != "3" else "2"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")


def _lbc(env):
    return subprocess.run([sys.executable, "-m", "lbc_pipeline.cli", "run", "--wave", "2019"], env=env,
                          capture_output=True, text=True, timeout=600)


def _kill_at(env, marker):
    """Start `lbc run` and kill -9 it as soon as it prints `marker`."""
    process = subprocess.Popen([sys.executable, "-m", "lbc_pipeline.cli", "run", "--wave", "2019"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in process.stdout:
            if marker in line:
                os.kill(process.pid, signal.SIGKILL)
                break
    finally:
        process.wait(timeout=120)
    return process.returncode


def consumer_view(data) -> dict[str, str]:
    """What consumers see, as digests: the tables of the serving file and the published
    files, read between two publications (the publication lock: a publication renames the
    serving file, then points the file links)."""
    database = data / "warehouse" / "lbc.duckdb"
    (data / "warehouse" / ".releases").mkdir(parents=True, exist_ok=True)
    with exclusive_file_lock(data / "warehouse" / ".releases" / ".lock", 120):
        tables = table_digests(database) if database.exists() else {}
        out = {f"table {k}": v for k, v in tables.items() if k.split(".")[0] in CONSUMER_SCHEMAS}
        for kind in ("artifacts", "reports"):
            out.update({f"{kind}/{k}": v for k, v in file_digests(data / kind).items()})
    return out


def _rows_of_wave(data, wave) -> int:
    if not (data / "warehouse" / "lbc.duckdb").exists():
        return 0
    with duckdb.connect(str(data / "warehouse" / "lbc.duckdb"), read_only=True) as con:
        tables = con.execute("select schema_name, table_name from duckdb_tables() where schema_name in "
                             "('raw', 'staging', 'analysis', 'marts')").fetchall()
        return sum(con.execute(f'select count(*) from "{s}"."{t}" where wave = ?', [wave]).fetchall()[0][0]
                   for s, t in tables)


def test_consumers_see_a_whole_wave_or_the_previous_one_whatever_the_kill(tmp_path, monkeypatch):
    if not REFERENCE.exists():
        pytest.skip("the reference wave is not in data/raw/2019")
    key = tmp_path / "key"
    key.write_text("cd" * 32)
    data, env = _env(tmp_path, "killed", key)
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])

    # A first delivery killed in the middle: consumers see nothing of the wave.
    assert _kill_at(env, "materialised analysis/analytic_sample") == -signal.SIGKILL
    assert _rows_of_wave(data, "2019") == 0
    assert file_digests(data / "reports") == {} and file_digests(data / "artifacts") == {}
    with DagsterInstance.get() as instance:
        assert [r.status for r in instance.get_runs()] == [DagsterRunStatus.STARTED]  # what the UI showed forever before
    first = _lbc(env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "marked failed" in first.stdout
    version_1 = consumer_view(data)

    # The clean run of the corrected delivery, in a folder of its own.
    clean_data, clean_env = _env(tmp_path, "clean", key)
    _redeliver(clean_data)
    assert _lbc(clean_env).returncode == 0
    version_2 = consumer_view(clean_data)
    changed = differences(version_1, version_2)
    assert any(k.startswith("table marts.") for k in changed) and any(k.startswith("reports/") for k in changed)

    # The corrected delivery, killed at several moments: consumers keep seeing version 1 whole.
    _redeliver(data)
    for marker in ("materialised raw/read_notes", "materialised marts/model_coefficients", "materialised marts/report"):
        assert _kill_at(env, marker) == -signal.SIGKILL, marker
        assert differences(consumer_view(data), version_1) == [], marker

    # The rerun, watched by a consumer between steps: only version 1 or version 2, whole.
    seen, done = [], threading.Event()

    def watch():
        while not done.wait(0.3):  # the pause lets the pipeline take the lock in turn
            seen.append(consumer_view(data))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        rerun = _lbc(env)
    finally:
        done.set()
        watcher.join()
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert rerun.stdout.count("marked failed") == 1  # each lbc run marks the run killed before it
    assert len(seen) >= 3
    assert all(view in (version_1, version_2) for view in seen), [differences(v, version_1)[:3] for v in seen]
    assert differences(consumer_view(data), version_2) == []  # the rerun equals a clean run, byte for byte

    with DagsterInstance.get() as instance:
        runs = instance.get_runs()  # newest first
        killed = [r for r in runs if r.status == DagsterRunStatus.FAILURE]
        assert len(killed) == 4 and all(r.status == DagsterRunStatus.SUCCESS for r in runs if r not in killed)
    # no half-built file is left behind, and only the live version's files remain
    assert not list((data / "warehouse").rglob("*.tmp"))
    assert len(list((data / "reports" / ".versions" / "2019").iterdir())) == 1
