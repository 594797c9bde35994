"""Several waves on one machine: in parallel processes vs one after another, measured.

Generates `--waves` scaled waves (`lbc generate --n N --seed 100+i`, untimed), then runs
each wave's main job as its own process (`lbc run --wave <id>`), first one after another,
then all at once, each time into a fresh private warehouse and DAGSTER_HOME (migrated
before the processes start: a fresh SQLite instance opened by several processes at once can
break). Each wave is built in its own working database, so runs of different waves share no
lock; they meet only at publication (the pool `lbc_publish` and the publication lock). The
lock waits each publish step reports (`lock_wait_s/working_database`,
`lock_wait_s/publication`) are printed per wave. Every child runs under an address-space
limit (`--as-limit`).

    .venv/bin/python scripts/parallel_waves.py --waves 4 --n 20000
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def environment(tmp: Path, waves: dict[str, Path]) -> dict[str, str]:
    data = tmp / "data"
    (data / "raw").mkdir(parents=True)
    for wave, folder in waves.items():
        (data / "raw" / wave).symlink_to(folder, target_is_directory=True)
    (tmp / "key").write_text("ef" * 32)
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "LBC_DATA_DIR": str(data), "LBC_DUCKDB_PATH": str(data / "warehouse" / "lbc.duckdb"),
           "LBC_PSEUDONYM_KEY_FILE": str(tmp / "key"), "DAGSTER_HOME": str(home)}
    subprocess.run([str(BIN / "dagster"), "instance", "migrate"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return env


def launch(wave: str, env: dict[str, str], as_limit: int | None) -> subprocess.Popen:
    def limit() -> None:
        if as_limit:
            resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))

    return subprocess.Popen([str(BIN / "lbc"), "run", "--wave", wave], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=limit, cwd=ROOT)


def finish(process: subprocess.Popen) -> tuple[int, float, float]:
    """Exit code, CPU seconds and peak RSS (MB) of a finished child."""
    _, status, usage = os.wait4(process.pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def lock_waits(env: dict[str, str], waves: list[str]) -> dict[str, tuple[float, float, float]]:
    """wave -> (lock waits the publish step reported, the publish step's own duration
    including any wait for the pool's slot), read from the runs' instance."""
    code = (
        "import json, sys\n"
        "from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance\n"
        "out = {}\n"
        "with DagsterInstance.get() as instance:\n"
        "    for wave in sys.argv[1:]:\n"
        "        record = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(['publish', "
        "'wave_versions']), asset_partitions=[wave]), limit=1).records[0]\n"
        "        meta = record.asset_materialization.metadata\n"
        "        steps = {e.dagster_event.event_type: e.timestamp for e in instance.all_logs(record.run_id, of_type="
        "{DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}) if e.step_key == 'publish__wave_versions'}\n"
        "        out[wave] = [meta['lock_wait_s/working_database'].value, meta['lock_wait_s/publication'].value,"
        " steps[DagsterEventType.STEP_SUCCESS] - steps[DagsterEventType.STEP_START]]\n"
        "print(json.dumps(out))\n")
    import json

    done = subprocess.run([sys.executable, "-c", code, *waves], env=env, capture_output=True, text=True, check=True)
    return {wave: tuple(values) for wave, values in json.loads(done.stdout).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waves", type=int, default=4)
    parser.add_argument("--n", type=int, default=20_000, help="questionnaires per wave")
    parser.add_argument("--as-limit", type=int, default=12_000_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lbc-parallel-") as scratch:
        tmp = Path(scratch)
        waves = {}
        for i in range(args.waves):
            wave = f"p{i + 1}"
            subprocess.run([str(BIN / "lbc"), "generate", "--n", str(args.n), "--seed", str(100 + i), "--wave", wave,
                            "--out", str(tmp / "waves" / wave)], check=True, stdout=subprocess.DEVNULL)
            waves[wave] = tmp / "waves" / wave
        rows, waits = [], {}
        for mode in ("sequence", "parallel"):
            env = environment(tmp / mode, waves)
            load = os.getloadavg()[0]
            started = time.perf_counter()
            results = []
            if mode == "sequence":
                for wave in waves:
                    results.append(finish(launch(wave, env, args.as_limit)))
            else:
                processes = [launch(wave, env, args.as_limit) for wave in waves]
                results = [finish(p) for p in processes]
            wall = time.perf_counter() - started
            rows.append((mode, wall, sum(r[1] for r in results), max(r[2] for r in results),
                         [r[0] for r in results], load, os.getloadavg()[0]))
            waits[mode] = lock_waits(env, list(waves))
    print(f"\n{args.waves} waves of {args.n:,} questionnaires; machine: {os.cpu_count()} cores\n")
    print("| mode | wall (s) | CPU, all processes (s) | largest peak RSS (MB) | exit codes | load before -> after |")
    print("|---|---:|---:|---:|---|---|")
    for mode, wall, cpu, rss, codes, before, after in rows:
        print(f"| {mode} | {wall:.1f} | {cpu:.1f} | {rss:.0f} | {codes} | {before:.2f} -> {after:.2f} |")
    print(f"\nparallel / sequence wall time: {rows[1][1] / rows[0][1]:.2f}")
    print("\n| mode | wave | waited for the working database (s) | waited for the publication lock (s) | publish step (s) |")
    print("|---|---|---:|---:|---:|")
    for mode, found in waits.items():
        for wave, (working, publication, step) in found.items():
            print(f"| {mode} | {wave} | {working:.2f} | {publication:.2f} | {step:.2f} |")
    return 0 if all(c == 0 for row in rows for c in row[4]) else 1


if __name__ == "__main__":
    sys.exit(main())
