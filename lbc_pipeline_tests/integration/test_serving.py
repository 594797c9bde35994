"""Analysts and runs never block each other: the serving file is only ever replaced by a
rename, so a notebook, a DuckDB shell or a dashboard may hold it open, read-only or not, at
any moment, while runs (launched by `lbc run` or by the sensor) publish new versions; every
view an analyst gets is one whole publication; and no personal value reaches it.

The DuckDB CLI of this DuckDB release (2.0.1) is not packaged for this machine (PyPI's
duckdb-cli stops at 1.5.6, which cannot open 2.0 files), so "a DuckDB CLI" is a second
process holding the file as the CLI does by default: read-write.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

from pathlib import Path

import duckdb
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from lbc_pipeline.config import PROJECT_ROOT
from lbc_pipeline_tests.rows import DISTRIBUTION, varied_rows, write_wave

SCHOOLS = [dict(s, distributed="120") for s in DISTRIBUTION]
LBC = [sys.executable, "-m", "lbc_pipeline.cli", "run", "--wave"]

# An analyst who opens the serving file every 0.5 s until told to stop, and checks that the
# view is one whole publication: per wave, the flow adds up, its analysed count is the
# analysis sample's and the models' N, and the publication history names the run of it.
POLLER = textwrap.dedent("""
    import json, os, sys, time
    import duckdb
    path, stop, out = sys.argv[1:4]
    seen = {"opens": 0, "failures": [], "inconsistent": [], "versions": []}
    while not os.path.exists(stop):
        try:
            with duckdb.connect(path, read_only=True) as con:
                seen["opens"] += 1
                broken = con.execute("select wave, step from analysis.sample_flow "
                                     "where n_before <> n_excluded + n_after").fetchall()
                rows = con.execute(
                    "select f.wave, f.n_after, (select count(*) from analysis.analytic_sample s where s.wave = f.wave), "
                    "(select max(n_obs) from marts.model_fit m where m.wave = f.wave and m.specification = 'as_published'), "
                    "(select arg_max(run_id, published_at) from publish.wave_versions v where v.wave = f.wave) "
                    "from analysis.sample_flow f where f.step = 'analysed' order by 1").fetchall()
            for wave, analysed, sample, n_obs, run in rows:
                if not (analysed == sample == n_obs) or broken:
                    seen["inconsistent"].append([wave, analysed, sample, n_obs, broken])
                if [wave, analysed, run] not in seen["versions"]:
                    seen["versions"].append([wave, analysed, run])
        except Exception as exc:
            seen["failures"].append(f"{type(exc).__name__}: {exc}")
        time.sleep(0.5)
    json.dump(seen, open(out, "w"))
""")

# A process that holds a connection to the serving file until told to stop.
HOLDER = textwrap.dedent("""
    import os, sys, time
    import duckdb
    path, stop, mode = sys.argv[1:4]
    con = duckdb.connect(path, read_only=mode == "read_only")
    con.execute("select count(*) from analysis.sample_flow").fetchall()
    print("holding", flush=True)
    while not os.path.exists(stop):
        time.sleep(0.1)
    con.close()
""")


def _instance_home(data):
    home = os.environ["DAGSTER_HOME"]
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, "dagster.yaml"), "w") as handle:
        handle.write((PROJECT_ROOT / "dagster.yaml").read_text())
    with DagsterInstance.get() as instance:
        instance.upgrade()


def _hold(path, stop, mode):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(stop), mode], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "holding"
    return holder


def _run(wave):
    done = subprocess.run([*LBC, wave], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_readers_never_block_a_run_and_see_whole_publications(data_env, tmp_path):
    stop = tmp_path / "stop"
    try:
        _readers_never_block(data_env, tmp_path, stop)
    finally:
        stop.touch()  # the helper processes end, whatever failed


def _readers_never_block(data_env, tmp_path, stop):
    _instance_home(data_env)
    serving = data_env / "warehouse" / "lbc.duckdb"
    write_wave(data_env / "raw" / "w1", varied_rows(300, seed=5), wave="w1", distribution=SCHOOLS)
    _run("w1")  # version 1 published
    analysed_v1 = duckdb.connect(str(serving), read_only=True).execute(
        "select n_after from analysis.sample_flow where wave = 'w1' and step = 'analysed'").fetchall()[0][0]

    # version 2 of the wave (more questionnaires), run while two processes hold the file
    # read-only (a notebook; a DuckDB shell opened with -readonly) and an analyst polls it
    write_wave(data_env / "raw" / "w1", varied_rows(360, seed=6), wave="w1", distribution=SCHOOLS)
    holders = [_hold(serving, stop, "read_only") for _ in range(2)]
    poller = subprocess.Popen([sys.executable, "-c", POLLER, str(serving), str(stop), str(tmp_path / "seen.json")])
    time.sleep(1.0)
    _run("w1")
    time.sleep(1.5)
    stop.touch()
    poller.wait(timeout=60)
    for holder in holders:
        holder.wait(timeout=60)
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["failures"] == [] and seen["opens"] >= 10
    assert seen["inconsistent"] == []
    analysed = [v[1] for v in seen["versions"]]
    assert analysed[0] == analysed_v1 and len(set(analysed)) == 2  # the old, then the new, nothing between

    # a run the sensor launches (the daemon, as in production), while a DuckDB shell holds
    # the file read-write (its default)
    stop.unlink()
    shell = _hold(serving, stop, "read_write")
    write_wave(data_env / "incoming" / "w2", varied_rows(300, seed=9), wave="w2", distribution=SCHOOLS)
    daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                              cwd=PROJECT_ROOT, stdout=open(tmp_path / "daemon.log", "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        with DagsterInstance.get() as instance:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                runs = instance.get_run_records(RunsFilter(job_name="lbc_main_job", tags={"dagster/partition": "w2"}))
                finished = [r for r in runs if r.dagster_run.is_finished]
                busy = instance.get_run_records(RunsFilter(statuses=[
                    DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                    DagsterRunStatus.STARTED]))
                if finished and not busy:
                    break
                time.sleep(2)
            assert finished, (tmp_path / "daemon.log").read_text()[-3000:]
            assert finished[0].dagster_run.status == DagsterRunStatus.SUCCESS
            assert "lbc/delivery" in finished[0].dagster_run.tags  # launched by the sensor
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    stop.touch()
    shell.wait(timeout=60)
    with duckdb.connect(str(serving), read_only=True) as con:
        waves = [w for (w,) in con.execute("select distinct wave from analysis.sample_flow order by 1").fetchall()]
    assert waves == ["w1", "w2"]
    _no_personal_value(data_env, waves)


def _no_personal_value(data_env, waves):
    """Searched independently of the privacy check's own code: every name and roll number of
    the raw layers of the working databases, in every text column of the serving file."""
    names, rolls = set(), set()
    for wave in waves:
        with duckdb.connect(str(data_env / "restricted" / "waves" / wave / "work.duckdb"), read_only=True) as work:
            names |= {n for (n,) in work.execute("select student_name from raw.questionnaires").fetchall() if n}
            rolls |= {n for (n,) in work.execute("select student_no from raw.questionnaires").fetchall() if n}
    assert names and rolls
    with duckdb.connect(str(data_env / "warehouse" / "lbc.duckdb"), read_only=True) as con:
        schemas = {s for (s,) in con.execute("select distinct schema_name from duckdb_tables()").fetchall()}
        assert "raw" not in schemas and schemas <= {"staging", "analysis", "marts", "publish"}
        texts = []
        for schema, table, column in con.execute(
                "select table_schema, table_name, column_name from information_schema.columns "
                "where data_type = 'VARCHAR' and table_catalog = current_database()").fetchall():
            texts += [v for (v,) in con.execute(f'select distinct "{column}" from "{schema}"."{table}"').fetchall() if v]
    text = "\n".join(texts)
    assert [n for n in names if n in text] == []
    assert [r for r in rolls if re.search(rf"(?<![0-9]){r}(?![0-9])", text)] == []
    restricted = data_env / "restricted"
    assert oct(restricted.stat().st_mode & 0o777) == "0o700"
