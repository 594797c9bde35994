"""Several wave runs launched at once all succeed: DuckDB writers take turns.

DuckDB allows one writer per file, and a fresh SQLite DAGSTER_HOME used by two processes at
once can break its schema; so the instance is migrated first and the runs are real separate
processes, as when a lab launches waves from the UI or the sensor fires for several at once.
"""

import os
import subprocess
import sys

import duckdb
import pytest
from dagster import DagsterInstance

from lbc_pipeline_tests.rows import DISTRIBUTION, varied_rows, write_wave
from lbc_pipeline.config import PROJECT_ROOT


@pytest.mark.parametrize("n_runs", [4])  # four at once; two add nothing four do not show
def test_concurrent_wave_runs_all_succeed(data_env, n_runs):
    schools = [dict(s, distributed="80") for s in DISTRIBUTION]
    waves = [f"c{i}" for i in range(n_runs)]
    for i, wave in enumerate(waves):
        write_wave(data_env / "raw" / wave, varied_rows(200, seed=30 + i), wave=wave, distribution=schools)
    home = os.environ["DAGSTER_HOME"]
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, "dagster.yaml"), "w") as handle:
        handle.write((PROJECT_ROOT / "dagster.yaml").read_text())
    with DagsterInstance.get() as instance:
        instance.upgrade()  # migrate before several processes open the instance
    lbc = [sys.executable, "-m", "lbc_pipeline.cli", "run", "--wave"]
    processes = [subprocess.Popen([*lbc, wave], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for wave in waves]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    codes = [p.returncode for p in processes]
    assert codes == [0] * n_runs, "\n".join(o[-3000:] for o in outputs)
    with duckdb.connect(str(data_env / "warehouse" / "lbc.duckdb"), read_only=True) as con:
        analysed = dict(con.execute(
            "select wave, n_after from analysis.sample_flow where step = 'analysed'").fetchall())
        pooled = con.execute("select distinct waves from marts.pooled_fit").fetchall()
    assert analysed == {wave: 200 for wave in waves}
    assert pooled == [(",".join(waves),)]  # the last cross-wave run saw every wave
