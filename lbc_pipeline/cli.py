"""The `lbc` command: run the main job, print results, generate synthetic waves.

    lbc run                    every wave under data/raw (the reference wave by default)
    lbc run --wave 2019        one wave
    lbc flow                   the sample flow of every wave in the warehouse
    lbc replication            the replication summary and the hypothesis verdicts
    lbc calibration            the calibration report of the synthetic reference wave
    lbc generate ...           write a synthetic wave (see `lbc generate --help`)
"""

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lbc_pipeline import config


def _dagster_home() -> Path:
    """DAGSTER_HOME, default `<repo>/.dagster_home`, so runs show in `dagster dev` later."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(config.PROJECT_ROOT / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text((config.PROJECT_ROOT / "dagster.yaml").read_text())
    return home


@dataclass
class RunSummary:
    """What `lbc run` did: the exit code and each wave's check outcomes."""

    code: int
    checks: dict[str, dict[str, tuple[bool, str]]] = field(default_factory=dict)


def run_waves(waves: list[str] | None = None, log_level: str = "WARNING") -> RunSummary:
    """Materialise every asset and check of each wave (exit code 1 if a run failed)."""
    _dagster_home()
    from dagster import DagsterInstance

    from lbc_pipeline.definitions import defs

    scan = config.scan_waves()
    for reason in scan.problems.values():
        print(f"[lbc] skipped a wave folder: {reason}", file=sys.stderr, flush=True)
    manifests = scan.manifests
    known = {m.wave: m for m in manifests}
    selected = waves or config.wave_order(manifests)
    missing = [w for w in selected if w not in known]
    if missing:
        print(f"no wave folder under {config.raw_dir()} for: {', '.join(missing)}", file=sys.stderr)
        return RunSummary(2)
    if not selected:
        print(f"no waves found under {config.raw_dir()}", file=sys.stderr)
        return RunSummary(2)
    instance = DagsterInstance.get()
    registered = set(instance.get_dynamic_partitions("wave"))
    new = [w for w in selected if w not in registered]
    if new:
        instance.add_dynamic_partitions("wave", new)
    job = defs.resolve_job_def("lbc_main_job")
    failed = []
    summary = RunSummary(0)
    for wave in selected:
        started = time.perf_counter()
        note = " (SYNTHETIC data)" if known[wave].synthetic else ""
        print(f"[lbc] wave {wave}{note}: materialising every asset and check ...", flush=True)
        result = job.execute_in_process(
            instance=instance, partition_key=wave, raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        )
        summary.checks[wave] = _print_steps(result)
        status = "succeeded" if result.success else "FAILED"
        print(f"[lbc] wave {wave}: run {result.run_id[:8]} {status} in {time.perf_counter() - started:.1f} s", flush=True)
        if not result.success:
            failed.append(wave)
    if not failed:
        print("[lbc] pooled models and wave-over-wave comparison over every wave in the warehouse ...", flush=True)
        cross = defs.resolve_job_def("lbc_cross_wave_job").execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}})
        summary.checks["cross_wave"] = _print_steps(cross)
        if not cross.success:
            failed.append("cross_wave")
    print_flow(selected)
    print(f"\nOutputs:\n  warehouse  {config.duckdb_path()}\n  artifacts  {config.data_dir() / 'artifacts'}\n"
          f"  reports    {config.data_dir() / 'reports'}\n  Dagster    DAGSTER_HOME={os.environ['DAGSTER_HOME']}"
          " (open with: dagster dev -w workspace.yaml)")
    summary.code = 1 if failed else 0
    return summary


def _print_steps(result) -> dict[str, tuple[bool, str]]:
    """Print one line per materialised asset and per check; return the check outcomes."""
    checks = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            rows = mat.metadata.get("dagster/row_count")
            rows_text = f"{rows.value} rows" if rows is not None else ""
            print(f"  materialised {mat.asset_key.to_user_string():40s} {rows_text}", flush=True)
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = event.event_specific_data
            verdict = "passed" if ev.passed else f"FAILED ({ev.severity.value})"
            checks[ev.asset_check_key.name] = (ev.passed, ev.severity.value)
            print(f"  check {ev.asset_check_key.name:38s} {verdict}: {ev.description or ''}", flush=True)
        elif event.event_type_value == "STEP_FAILURE":
            print(f"  step {event.step_key} FAILED: {event.event_specific_data.error.message.strip()}", flush=True)
    return checks


def print_flow(waves: list[str] | None = None) -> None:
    """Print analysis.sample_flow from the warehouse (read-only)."""
    import duckdb

    from lbc_pipeline.lib.io.warehouse import read_only

    path = config.duckdb_path()
    if not path.exists():
        print(f"no warehouse at {path}")
        return
    with read_only(path) as con:
        try:
            rows = con.execute(
                "select wave, step_order, step, n_before, n_excluded, n_after, reason "
                "from analysis.sample_flow order by wave, step_order").fetchall()
        except duckdb.CatalogException:
            print("the warehouse has no sample flow yet")
            return
    print("\nSample flow (analysis.sample_flow):")
    print(f"  {'wave':6s} {'step':14s} {'before':>7s} {'left':>6s} {'after':>7s}  reason")
    for wave, _, step, before, excluded, after, reason in rows:
        if waves and wave not in waves:
            continue
        print(f"  {wave:6s} {step:14s} {before:7d} {excluded:6d} {after:7d}  {reason}")


def print_replication(waves: list[str] | None = None) -> int:
    """Print the replication summary and the hypothesis verdicts from the warehouse."""
    from lbc_pipeline.lib.marts.replication import summarise_replication
    from lbc_pipeline.lib.io.warehouse import read_only

    path = config.duckdb_path()
    if not path.exists():
        print(f"no warehouse at {path}: run `lbc run` first", file=sys.stderr)
        return 2
    with read_only(path) as con:
        found = [r[0] for r in con.execute("select distinct wave from marts.replication order by 1").fetchall()]
        for wave in waves or found:
            replicated = con.sql("select * from marts.replication where wave = $w", params={"w": wave}).pl()
            verdicts = con.sql("select * from marts.hypotheses where wave = $w", params={"w": wave}).pl()
            print(f"Wave {wave}:")
            print(summarise_replication(replicated).text)
            print("\nHypotheses:")
            for hypothesis, supported in verdicts.select("hypothesis", "supported").unique(maintain_order=True).iter_rows():
                print(f"  {hypothesis}: {'supported' if supported else 'not supported'}")
            for sentence in verdicts["sentence"].to_list():
                print(f"  - {sentence}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lbc", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialise every asset and check for each wave under data/raw")
    run.add_argument("--wave", action="append", help="only this wave (repeatable)")
    run.add_argument("--log-level", default="WARNING", help="Dagster console log level (default WARNING)")
    flow = sub.add_parser("flow", help="print the sample flow from the warehouse")
    flow.add_argument("--wave", action="append")
    replication = sub.add_parser("replication", help="print the replication summary and hypotheses")
    replication.add_argument("--wave", action="append")
    sub.add_parser("calibration", help="print the calibration report of the synthetic reference wave's state")
    sub.add_parser("generate", help="write a synthetic wave", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "run":
        return run_waves(args.wave, args.log_level).code
    if args.command == "flow":
        print_flow(args.wave)
        return 0
    if args.command == "replication":
        return print_replication(args.wave)
    if args.command == "calibration":
        from lbc_pipeline.synthetic.paper_stats import main as calibration_main

        calibration_main()
        return 0
    if args.command == "generate":
        from lbc_pipeline.synthetic.cli import main as generate_main

        return generate_main(rest) or 0
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
