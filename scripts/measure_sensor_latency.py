"""Time from a wave landing in data/incoming to its marts being written, with the daemon.

Starts `dagster dev` (webserver + daemon) on 127.0.0.1 against a private data folder and
DAGSTER_HOME, processes the reference wave first, copies the synthetic 2021 follow-up into
data/incoming, and polls the instance until the wave's report and the cross-wave comparison
are materialised. Then copies the same files again and checks that no new run starts.

    .venv/bin/python scripts/measure_sensor_latency.py [--port 3123] [--timeout 900]
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def wait_for(predicate, timeout: float, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("gave up waiting")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=3123)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lbc-latency-"))
    data, home = tmp / "data", tmp / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    shutil.copytree(ROOT / "data" / "raw" / "2019", data / "raw" / "2019")
    (data / "incoming").mkdir(parents=True)
    (tmp / "key").write_text("ab" * 32)
    env = {"LBC_DATA_DIR": str(data), "LBC_DUCKDB_PATH": str(data / "warehouse" / "lbc.duckdb"),
           "LBC_PSEUDONYM_KEY_FILE": str(tmp / "key"), "DAGSTER_HOME": str(home)}
    os.environ.update(env)
    subprocess.run([BIN / "dagster", "instance", "migrate"], check=True, capture_output=True)
    subprocess.run([BIN / "lbc", "run"], check=True, capture_output=True)  # the reference wave first

    from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

    server = subprocess.Popen(
        [BIN / "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(args.port)],
        cwd=ROOT, stdout=open(tmp / "dagster_dev.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def serving() -> bool:
            if server.poll() is not None:
                sys.exit(f"dagster dev exited; see {tmp / 'dagster_dev.log'}")
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{args.port}/server_info", timeout=2).status == 200
            except OSError:
                return False

        wait_for(serving, 120, 2)
        instance = DagsterInstance.get()

        def materialised_after(key: list[str], since: float, partition: str | None = None):
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=AssetKey(key), asset_partitions=[partition] if partition else None), limit=1
            ).records
            return records[0].timestamp if records and records[0].timestamp > since else None

        landed = time.time()
        shutil.copytree(ROOT / "data" / "demo" / "2021", data / "incoming" / "2021")
        registered = wait_for(lambda: "2021" in instance.get_dynamic_partitions("wave") and time.time(), args.timeout)
        report = wait_for(lambda: materialised_after(["marts", "report"], landed, "2021"), args.timeout)
        comparison = wait_for(lambda: materialised_after(["marts", "wave_comparison"], report), args.timeout)
        runs_before = len(instance.get_run_records())
        shutil.rmtree(data / "incoming" / "2021")
        shutil.copytree(ROOT / "data" / "demo" / "2021", data / "incoming" / "2021")  # the same files again
        time.sleep(90)
        runs_after = len(instance.get_run_records())
        print(f"registered as a partition after {registered - landed:.0f} s")
        print(f"wave marts (report) written after {report - landed:.0f} s")
        print(f"cross-wave comparison written after {comparison - landed:.0f} s")
        print(f"re-copying the same files: {runs_after - runs_before} new runs in 90 s")
        return 0 if runs_after == runs_before else 1
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
