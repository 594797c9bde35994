"""Speed and memory of the generator and the pipeline, measured (not asserted).

Each case runs in a fresh process; wall time is measured around it and peak memory is the
child's own maximum resident set size (os.wait4). Results print as a Markdown table and, with
--json PATH, as JSON.

    .venv/bin/python scripts/benchmark.py                 # every case
    .venv/bin/python scripts/benchmark.py --only generate_1m
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def measure(name: str, argv: list[str], env: dict[str, str]) -> dict:
    """Run `argv` in a child process; return its wall time, peak RSS and exit code."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    return {"case": name, "wall_s": round(wall, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 0),
            "exit_code": code, **({"stderr_tail": stderr[-800:]} if code else {})}


def pipeline_env(tmp: Path) -> dict[str, str]:
    data = tmp / "data"
    (tmp / "key").write_text("ef" * 32)
    home = tmp / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    return {"LBC_DATA_DIR": str(data), "LBC_DUCKDB_PATH": str(data / "warehouse" / "lbc.duckdb"),
            "LBC_PSEUDONYM_KEY_FILE": str(tmp / "key"), "DAGSTER_HOME": str(home)}


def case_generate_1m(tmp: Path) -> dict:
    out = tmp / "scale1m"
    return measure("generate 1,000,000 questionnaires (parquet)",
                   [PY, "-m", "lbc_pipeline.synthetic.cli", "--n", "1000000", "--format", "parquet",
                    "--seed", "7", "--out", str(out)], {})


def case_main_job_reference(tmp: Path) -> dict:
    env = pipeline_env(tmp)
    raw = Path(env["LBC_DATA_DIR"]) / "raw"
    shutil.copytree(ROOT / "data" / "raw" / "2019", raw / "2019")
    return measure("main job, reference wave 2019 (980 questionnaires, every asset and check)",
                   [PY, "-m", "lbc_pipeline.cli", "run"], env)


def case_main_job_scaled(tmp: Path, n: int) -> dict:
    env = pipeline_env(tmp)
    raw = Path(env["LBC_DATA_DIR"]) / "raw"
    subprocess.run([PY, "-m", "lbc_pipeline.synthetic.cli", "--n", str(n), "--seed", "11",
                    "--wave", f"scaled-{n}", "--out", str(raw / f"scaled-{n}")], check=True,
                   stdout=subprocess.DEVNULL)
    return measure(f"main job, scaled wave ({n:,} questionnaires, csv)", [PY, "-m", "lbc_pipeline.cli", "run"], env)


CASES = {
    "generate_1m": case_generate_1m,
    "main_job_reference": case_main_job_reference,
    "main_job_100k": lambda tmp: case_main_job_scaled(tmp, 100_000),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=sorted(CASES))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    for name in args.only or CASES:
        with tempfile.TemporaryDirectory(prefix=f"lbc-bench-{name}-") as tmp:
            result = CASES[name](Path(tmp))
            results.append(result)
            print(json.dumps(result), flush=True)
    print(f"\nmachine: {os.cpu_count()} cores; python {sys.version.split()[0]}\n")
    print("| case | wall (s) | peak RSS (MB) | exit |\n|---|---:|---:|---:|")
    for r in results:
        print(f"| {r['case']} | {r['wall_s']} | {r['peak_rss_mb']:.0f} | {r['exit_code']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if all(r["exit_code"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
