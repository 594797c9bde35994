"""The pipeline against the plain-script baseline, measured (not asserted).

For each case the two sides run alternately in fresh processes (A B A B ..., `--pairs`
pairs, at least 3 by default): A is the pipeline, B the baseline. Each run's wall time,
CPU time (user + system) and peak resident set size (the child's own maximum RSS, from
os.wait4) are recorded; the table reports the medians, the ratio of the medians and the
ratio within each pair (pairs cancel out slow drifts of a shared machine), and the load
average before each case.

Cases (`--only`, repeatable; default: every case):
  definitions     `python -c "import lbc_pipeline.definitions"` vs `python -c "import dagster"`
  reference       `lbc run --wave 2019` on data/raw/2019 vs scripts/baseline_plain.py
  100k-csv, 100k-parquet, 1m-csv, 1m-parquet
                  the same on a scaled wave made by `lbc generate --n N --seed 11`
                  (generated once per case, untimed; `--data DIR` keeps it for later runs)
  generate-1m     `lbc generate --n 1000000 --seed 11 --format parquet` (A only)

The pipeline runs in a private data folder, warehouse, pseudonym key and DAGSTER_HOME that
persist across the pairs of a case (so pair 1 creates the warehouse, later pairs replace the
wave in it). Every child runs under an address-space limit (`--as-limit`, default 12 GB).

    .venv/bin/python scripts/benchmark.py --only reference --only definitions
    .venv/bin/python scripts/benchmark.py --only 100k-csv --pairs 3 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = Path(PY).parent
BASELINE = ROOT / "scripts" / "baseline_plain.py"


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    exit_code: int
    stderr_tail: str


def measure(argv: list[str], env: dict[str, str], as_limit: int | None) -> Run:
    """Run `argv` in a child process; its wall time, CPU time, peak RSS and exit code."""
    def limit() -> None:
        if as_limit:
            resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))

    started = time.perf_counter()
    child = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, preexec_fn=limit, cwd=ROOT)
    # stderr is read after exit: keep it small (the pipeline logs at WARNING)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    return Run(round(wall, 2), round(usage.ru_utime + usage.ru_stime, 2), round(usage.ru_maxrss / 1024),
               code, stderr[-600:] if code else "")


def pipeline_env(tmp: Path) -> dict[str, str]:
    """A private data folder, warehouse, key and DAGSTER_HOME."""
    data = tmp / "data"
    (data / "raw").mkdir(parents=True, exist_ok=True)
    (tmp / "key").write_text("ef" * 32)
    home = tmp / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    return {"LBC_DATA_DIR": str(data), "LBC_DUCKDB_PATH": str(data / "warehouse" / "lbc.duckdb"),
            "LBC_PSEUDONYM_KEY_FILE": str(tmp / "key"), "DAGSTER_HOME": str(home)}


def generate(n: int, fmt: str, out: Path) -> Path:
    """A scaled wave of `n` questionnaires (seed 11), generated once and reused."""
    if not (out / "wave.yaml").exists():
        subprocess.run([str(BIN / "lbc"), "generate", "--n", str(n), "--seed", "11", "--format", fmt,
                        "--wave", f"scaled-{n}", "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    return out


class Case:
    """What A and B run, given a scratch folder and the data cache."""

    def __init__(self, title: str, a_label: str, b_label: str | None):
        self.title, self.a_label, self.b_label = title, a_label, b_label

    def commands(self, tmp: Path, data: Path) -> tuple[list[str], list[str] | None, dict[str, str]]:
        raise NotImplementedError


class DefinitionsCase(Case):
    def commands(self, tmp, data):
        return ([PY, "-c", "import lbc_pipeline.definitions"], [PY, "-c", "import dagster"], {})


class WaveCase(Case):
    def __init__(self, title: str, n: int | None, fmt: str):
        super().__init__(title, "pipeline (lbc run)", "baseline_plain.py")
        self.n, self.fmt = n, fmt

    def commands(self, tmp, data):
        if self.n is None:
            wave, source = "2019", ROOT / "data" / "raw" / "2019"
        else:
            wave = f"scaled-{self.n}"
            source = generate(self.n, self.fmt, data / f"{wave}-{self.fmt}")
        env = pipeline_env(tmp)
        folder = Path(env["LBC_DATA_DIR"]) / "raw" / wave
        if not folder.exists():
            if self.n:  # generated data: link, do not copy (1M questionnaires are 129 MB as csv)
                folder.symlink_to(source, target_is_directory=True)
            else:
                shutil.copytree(source, folder)
        return ([str(BIN / "lbc"), "run", "--wave", wave], [PY, str(BASELINE), str(folder)], env)


class GenerateCase(Case):
    def commands(self, tmp, data):
        return ([str(BIN / "lbc"), "generate", "--n", "1000000", "--seed", "11", "--format", "parquet",
                 "--out", str(tmp / "gen")], None, {})


CASES: dict[str, Case] = {
    "definitions": DefinitionsCase("Definitions load", "import lbc_pipeline.definitions", "import dagster"),
    "reference": WaveCase("reference wave 2019 (980 questionnaires, csv)", None, "csv"),
    "100k-csv": WaveCase("100,000 questionnaires, csv", 100_000, "csv"),
    "100k-parquet": WaveCase("100,000 questionnaires, parquet", 100_000, "parquet"),
    "1m-csv": WaveCase("1,000,000 questionnaires, csv", 1_000_000, "csv"),
    "1m-parquet": WaveCase("1,000,000 questionnaires, parquet", 1_000_000, "parquet"),
    "generate-1m": GenerateCase("generate 1,000,000 questionnaires (parquet)", "lbc generate", None),
}


def run_case(name: str, pairs: int, data: Path, as_limit: int | None) -> dict:
    case = CASES[name]
    with tempfile.TemporaryDirectory(prefix=f"lbc-bench-{name}-") as scratch:
        a_argv, b_argv, env = case.commands(Path(scratch), data)
        load = os.getloadavg()[0]
        runs: list[tuple[Run, Run | None]] = []
        for i in range(pairs):
            a = measure(a_argv, env, as_limit)
            b = measure(b_argv, {}, as_limit) if b_argv else None
            runs.append((a, b))
            print(json.dumps({"case": name, "pair": i + 1, "A": a.__dict__, "B": b.__dict__ if b else None}),
                  flush=True)
    result = {"case": name, "title": case.title, "a": case.a_label, "b": case.b_label, "pairs": pairs,
              "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2),
              "a_argv": " ".join(a_argv), "b_argv": " ".join(b_argv) if b_argv else None,
              "runs": [{"A": a.__dict__, "B": b.__dict__ if b else None} for a, b in runs]}
    for side, index in (("a", 0), ("b", 1)):
        done = [r[index] for r in runs if r[index] is not None]
        if not done:
            continue
        result[f"{side}_wall_median"] = statistics.median(r.wall_s for r in done)
        result[f"{side}_cpu_median"] = statistics.median(r.cpu_s for r in done)
        result[f"{side}_rss_max_mb"] = max(r.peak_rss_mb for r in done)
        result[f"{side}_failed"] = sum(r.exit_code != 0 for r in done)
    if "b_wall_median" in result:
        result["ratio_of_medians"] = round(result["a_wall_median"] / result["b_wall_median"], 2)
        result["pair_ratios"] = [round(a.wall_s / b.wall_s, 2) for a, b in runs]
    return result


def markdown(results: list[dict]) -> str:
    lines = [
        "| case | A | B | A wall (s) | B wall (s) | A/B (median) | A/B per pair | A CPU (s) | B CPU (s) "
        "| A peak RSS (MB) | B peak RSS (MB) | load | failed A/B |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['title']} | {r['a']} | {r['b'] or '-'} | {r['a_wall_median']:.2f} | "
            f"{r.get('b_wall_median', float('nan')):.2f} | {r.get('ratio_of_medians', '-')} | "
            f"{', '.join(map(str, r.get('pair_ratios', []))) or '-'} | {r['a_cpu_median']:.1f} | "
            f"{r.get('b_cpu_median', float('nan')):.1f} | {r['a_rss_max_mb']:.0f} | "
            f"{r.get('b_rss_max_mb', float('nan')):.0f} | {r['load_before']} -> {r['load_after']} | "
            f"{r['a_failed']}/{r.get('b_failed', '-')} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=list(CASES), help="run only this case (repeatable)")
    parser.add_argument("--pairs", type=int, default=3, help="A/B pairs per case (default 3)")
    parser.add_argument("--data", type=Path, help="keep generated waves here and reuse them (default: a temp dir)")
    parser.add_argument("--as-limit", type=int, default=12_000_000_000,
                        help="address-space limit of every child in bytes (default 12e9; 0 = none)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lbc-bench-data-") as default_data:
        data = args.data or Path(default_data)
        data.mkdir(parents=True, exist_ok=True)
        results = [run_case(name, args.pairs, data, args.as_limit or None) for name in args.only or CASES]
    print(f"\nmachine: {os.cpu_count()} cores; python {sys.version.split()[0]}; "
          f"command: {' '.join(sys.argv)}\n")
    print(markdown(results))
    for r in results:
        print(f"\n- {r['case']}: A = `{r['a_argv']}`" + (f"; B = `{r['b_argv']}`" if r["b_argv"] else ""))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if all(r["a_failed"] == 0 and r.get("b_failed", 0) == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
