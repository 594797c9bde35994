"""The `lbc` command: run the main job, print results, generate synthetic waves.

    lbc run                    every wave under data/raw (the reference wave by default)
    lbc run --wave 2019        one wave
    lbc flow                   the sample flow of every published wave
    lbc status                 each wave: published (run, time) or not, and why not
    lbc replication            the replication summary and the hypothesis verdicts
    lbc calibration            the calibration report of the synthetic reference wave
    lbc generate ...           write a synthetic wave (see `lbc generate --help`)
"""

import argparse
import datetime as dt
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


class UsageError(Exception):
    """A command line that names something that does not exist: exit code 2."""


def _check_waves(waves: list[str] | None, known: list[str], where: str) -> None:
    missing = [w for w in waves or [] if w not in known]
    if missing:
        listed = ", ".join(known) or "none"
        raise UsageError(f"unknown wave(s) {', '.join(map(repr, missing))}: {where} holds {listed}")


def _steps_logger(on_event):
    """A Dagster logger that hands each structured event to `on_event` as it happens."""
    import logging

    from dagster import logger

    class Forward(logging.Handler):
        def emit(self, record):
            event = getattr(record, "dagster_event", None)
            if event is not None:
                on_event(event)

    @logger(description="lbc: one line per step as it finishes")
    def steps(_init_context):
        log = logging.Logger("lbc_steps", level=logging.DEBUG)
        log.addHandler(Forward())
        return log

    return steps


def _job(defs, name: str, on_event, log_level: str | None):
    """The job with the live step printer (and Dagster's console logger only when asked)."""
    from dagster import colored_console_logger

    loggers = {"lbc_steps": _steps_logger(on_event)}
    config = {"lbc_steps": {}}
    if log_level:
        loggers["console"] = colored_console_logger
        config["console"] = {"config": {"log_level": log_level}}
    return defs.resolve_job_def(name).with_logger_defs(loggers), {"loggers": config}


def _mark_orphaned_runs(instance) -> list[str]:
    """Runs of this instance left STARTED by a killed process (`lbc run`, or a run worker the
    daemon launched): marked failed so that the UI does not show them running forever."""
    from dagster import DagsterRunStatus, RunsFilter

    from lbc_pipeline.run_launcher import worker_status, WorkerStatus

    marked = []
    for record in instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.STARTED,
                                                                DagsterRunStatus.STARTING])):
        health = worker_status(instance, record.dagster_run)
        if health.status != WorkerStatus.FAILED:
            continue
        instance.report_run_failed(record.dagster_run, f"{health.msg}; marked failed by the next lbc run")
        marked.append(record.dagster_run.run_id)
    return marked


def run_waves(waves: list[str] | None = None, log_level: str | None = None) -> RunSummary:
    """Materialise every asset and check of each wave (exit code 1 if a run failed, 2 for a
    usage error). One line per step is printed as it finishes; a failure is one or two lines
    (the stack trace stays in the Dagster run log)."""
    from lbc_pipeline.lib.messages import explain_failure, preflight

    _dagster_home()
    scans = [config.scan_waves(root) for root in (config.raw_dir(), config.incoming_dir())]
    for scan in scans:
        for reason in scan.problems.values():
            print(f"[lbc] skipped a wave folder: {reason}", file=sys.stderr, flush=True)
    # data/raw's waves by default; a wave delivered to data/incoming (the sensor's) by its id
    manifests = scans[0].manifests
    known = {m.wave: m for scan in scans for m in scan.manifests}
    missing = [w for w in waves or [] if w not in known]
    if missing:
        print(f"lbc run: no wave folder under {config.raw_dir()} or {config.incoming_dir()} for: "
              f"{', '.join(map(repr, missing))} (waves there: {', '.join(sorted(known)) or 'none'})", file=sys.stderr)
        return RunSummary(2)
    selected = waves or config.wave_order(manifests)
    if not selected:
        print(f"lbc run: no waves found under {config.raw_dir()}", file=sys.stderr)
        return RunSummary(2)
    problem = preflight(config.duckdb_path())
    if problem:
        print(f"[lbc] cannot start: {problem}", file=sys.stderr, flush=True)
        return RunSummary(1)
    from lbc_pipeline.lib.io import publish

    # What a killed publication committed is finished first (this host's lock: a half-built
    # file younger than an hour may be another host's publication in progress, and stays).
    with publish.publication_lock():
        if publish.heal(config.data_dir(), temporaries_older_than_s=3600.0):
            print("[lbc] the serving file was rebuilt from the committed releases (a publication had been "
                  "interrupted)", flush=True)
    from lbc_pipeline.lib.quality import gx_worker

    gx_worker.prestart()  # great-expectations imports and warms up in its worker while Dagster loads
    from dagster import DagsterInstance

    from lbc_pipeline import instance_sqlite
    from lbc_pipeline.definitions import defs
    from lbc_pipeline.run_launcher import PID_TAG

    instance_sqlite.install()  # a SQLite instance's events: synchronous=NORMAL, no checkpoint per event
    instance = DagsterInstance.get()
    for run_id in _mark_orphaned_runs(instance):
        print(f"[lbc] run {run_id[:8]} was left unfinished by a killed lbc run: marked failed", flush=True)
    registered = set(instance.get_dynamic_partitions("wave"))
    new = [w for w in selected if w not in registered]
    if new:
        instance.add_dynamic_partitions("wave", new)
    where = str(config.data_dir())
    failed = []
    summary = RunSummary(0)

    def run_one(job_name: str, label: str, partition: str | None) -> tuple[bool, str]:
        checks: dict[str, tuple[bool, str]] = {}
        failures: list[str] = []
        job, run_config = _job(defs, job_name, lambda e: _print_event(e, checks, failures, where), log_level)
        started = time.perf_counter()
        try:
            result = job.execute_in_process(instance=instance, partition_key=partition, raise_on_error=False,
                                            run_config=run_config, tags={PID_TAG: str(os.getpid())})
        except Exception as exc:  # a failure outside any step (instance, storage): one line
            print(f"[lbc] {label}: could not run: {explain_failure(_chain(exc), where)}", file=sys.stderr, flush=True)
            summary.checks[label] = checks
            return False, ""
        summary.checks[label] = checks
        status = "succeeded" if result.success else "FAILED"
        print(f"[lbc] {label}: run {result.run_id[:8]} {status} in {time.perf_counter() - started:.1f} s", flush=True)
        if not result.success:
            print(f"[lbc] {label}: the full error is in the Dagster run log: dagster dev -w workspace.yaml, "
                  f"run {result.run_id}", file=sys.stderr, flush=True)
        return result.success, result.run_id

    for wave in selected:
        note = " (SYNTHETIC data)" if known[wave].synthetic else ""
        print(f"[lbc] wave {wave}{note}: materialising every asset and check ...", flush=True)
        ok, _ = run_one("lbc_main_job", wave, wave)
        if not ok:
            failed.append(wave)
    if not failed:
        print("[lbc] pooled models and wave-over-wave comparison over every wave in the warehouse ...", flush=True)
        ok, _ = run_one("lbc_cross_wave_job", "cross_wave", None)
        if not ok:
            failed.append("cross_wave")
    print_flow(selected)
    print_status(selected)
    print(f"\nOutputs:\n  warehouse  {config.duckdb_path()} (published waves; open it read-only)\n"
          f"  artifacts  {config.data_dir() / 'artifacts'}\n"
          f"  reports    {config.data_dir() / 'reports'}\n  Dagster    DAGSTER_HOME={os.environ['DAGSTER_HOME']}"
          " (open with: dagster dev -w workspace.yaml)")
    summary.code = 1 if failed else 0
    return summary


def _chain(exc: BaseException) -> list[tuple[str, str]]:
    out = []
    while exc is not None and len(out) < 10:
        out.append((type(exc).__name__, str(exc)))
        exc = exc.__cause__ or exc.__context__
    return out


def _error_chain(error) -> list[tuple[str, str]]:
    """(class name, message) of a Dagster SerializableErrorInfo and its causes."""
    out = []
    while error is not None and len(out) < 10:
        out.append((error.cls_name or "", error.message or ""))
        error = error.cause or error.context
    return out


def _print_event(event, checks: dict, failures: list, where: str) -> None:
    """Print one line for a materialisation, a check or a failed step, as it happens."""
    from lbc_pipeline.lib.messages import explain_failure

    kind = event.event_type_value
    if kind == "ASSET_MATERIALIZATION":
        mat = event.event_specific_data.materialization
        rows = mat.metadata.get("dagster/row_count")
        rows_text = f"{rows.value} rows" if rows is not None else ""
        print(f"  materialised {mat.asset_key.to_user_string():40s} {rows_text}", flush=True)
    elif kind == "ASSET_CHECK_EVALUATION":
        ev = event.event_specific_data
        verdict = "passed" if ev.passed else f"FAILED ({ev.severity.value})"
        checks[ev.asset_check_key.name] = (ev.passed, ev.severity.value)
        print(f"  check {ev.asset_check_key.name:38s} {verdict}: {ev.description or ''}", flush=True)
        if not ev.passed and ev.severity.value == "ERROR":
            print(f"    -> what is downstream of {ev.asset_key.to_user_string()} is not built; "
                  "fix the delivery and run the wave again", flush=True)
    elif kind == "STEP_FAILURE":
        data = event.event_specific_data
        message = explain_failure(_error_chain(data.error), where) if data.error else "failed"
        failures.append(message)
        print(f"  step {event.step_key} FAILED: {message}", flush=True)
        if "is not published: blocking check" in message:
            pass  # the check's line above said what to do
        elif "row" in message or "wave.yaml" in message or "column" in message:
            print("    -> correct the delivery (file, row and column above) and run the wave again; "
                  "consumers keep the wave's previous publication", flush=True)


def _not_published(waves: list[str]) -> int:
    """`lbc flow` of waves the serving file does not hold: say where they stand instead."""
    from lbc_pipeline.lib.io.status import describe, wave_statuses

    statuses = {s.wave: s for s in wave_statuses()}
    if not waves:
        print(f"no published wave in {config.duckdb_path()}: run `lbc run` first", file=sys.stderr)
        return 2
    for wave in waves:
        if wave in statuses:
            print(describe(statuses[wave]), file=sys.stderr)
        else:
            print(f"unknown wave {wave!r}: no delivery, working database or publication holds it "
                  f"(known: {', '.join(statuses) or 'none'})", file=sys.stderr)
    return 2


def flow_waves() -> list[str] | None:
    """The waves in analysis.sample_flow (None when there is no warehouse or no flow yet)."""
    import duckdb

    from lbc_pipeline.lib.io.warehouse import read_only

    path = config.duckdb_path()
    if not path.exists():
        return None
    with read_only(path) as con:
        try:
            return [r[0] for r in con.execute("select distinct wave from analysis.sample_flow order by 1").fetchall()]
        except duckdb.CatalogException:
            return None


def print_flow(waves: list[str] | None = None) -> None:
    """Print analysis.sample_flow from the warehouse (read-only)."""
    import duckdb

    from lbc_pipeline.lib.io.warehouse import read_only

    path = config.duckdb_path()
    if not path.exists():
        print(f"\nno wave is published yet: {path} does not exist")
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
    import duckdb

    from lbc_pipeline.lib.marts.replication import summarise_replication
    from lbc_pipeline.lib.marts.robustness import robustness_summary
    from lbc_pipeline.lib.io.warehouse import has_table, read_only, read_wave
    from lbc_pipeline.lib.render.report import checks_summary

    path = config.duckdb_path()
    if not path.exists():
        print(f"no warehouse at {path}: run `lbc run` first", file=sys.stderr)
        return 2
    with read_only(path) as con:
        try:
            found = [r[0] for r in con.execute("select distinct wave from marts.replication order by 1").fetchall()]
        except duckdb.CatalogException:
            print(f"the warehouse {path} has no replication yet: run `lbc run` first", file=sys.stderr)
            return 2
        _check_waves(waves, found, "marts.replication")
        for wave in waves or found:
            replicated = con.sql("select * from marts.replication where wave = $w", params={"w": wave}).pl()
            verdicts = con.sql("select * from marts.hypotheses where wave = $w", params={"w": wave}).pl()
            print(f"Wave {wave}:")
            if has_table(con, "analysis.check_results"):
                checks = read_wave(con, "analysis.check_results", wave).sort("check_order")
                print(f"Checks: {checks_summary(checks)}")
                for row in checks.iter_rows(named=True):
                    print(f"  {row['check_name']:30s} {row['severity']:5s} {'passed' if row['passed'] else 'FAILED'}: "
                          f"{row['description']}")
                print()
            print(summarise_replication(replicated).text)
            print("\nHypotheses:")
            for hypothesis, supported in verdicts.select("hypothesis", "supported").unique(maintain_order=True).iter_rows():
                print(f"  {hypothesis}: {'supported' if supported else 'not supported'}")
            for sentence in verdicts["sentence"].to_list():
                print(f"  - {sentence}")
            for line in robustness_summary(con, wave):
                print(line)
    return 0


def _last_runs() -> dict[str, tuple[str, str]]:
    """wave -> (run id, status and time) of its latest main-job run in this Dagster instance
    (none without an instance)."""
    home = os.environ.get("DAGSTER_HOME") or str(config.PROJECT_ROOT / ".dagster_home")
    if not (Path(home) / "dagster.yaml").exists():
        return {}
    os.environ["DAGSTER_HOME"] = home
    from dagster import DagsterInstance, RunsFilter

    out = {}
    with DagsterInstance.get() as instance:
        for record in instance.get_run_records(RunsFilter(job_name="lbc_main_job"), limit=500):
            run = record.dagster_run
            wave = run.tags.get("dagster/partition")
            if wave and wave not in out:
                when = record.end_time or record.start_time
                at = f" at {dt.datetime.fromtimestamp(when, dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC" if when else ""
                out[wave] = (run.run_id, f"{run.status.value}{at}")
    return out


def print_status(waves: list[str] | None = None) -> int:
    """Print each wave's publication state (exit 2 for an unknown wave)."""
    from lbc_pipeline.lib.io.status import describe, wave_statuses

    statuses = wave_statuses()
    known = [s.wave for s in statuses]
    _check_waves(waves, known, "the deliveries, working databases and releases")
    try:
        runs = _last_runs()
    except Exception:  # an instance that cannot be read: the publication state still stands
        runs = {}
    print("\nPublication state (lbc status):")
    for status in statuses:
        if waves and status.wave not in waves:
            continue
        print(describe(status, runs.get(status.wave)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lbc", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{run,flow,status,replication,calibration,generate}")
    run = sub.add_parser("run", help="materialise every asset and check for each wave under data/raw")
    run.add_argument("--wave", action="append", help="only this wave (repeatable)")
    run.add_argument("--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                     help="also print Dagster's own log at this level (default: only the step lines)")
    flow = sub.add_parser("flow", help="print the sample flow from the warehouse")
    flow.add_argument("--wave", action="append", help="only this wave (repeatable)")
    status = sub.add_parser("status", help="each wave: published (run, time) or not, and why not")
    status.add_argument("--wave", action="append", help="only this wave (repeatable)")
    replication = sub.add_parser("replication", help="print the replication summary and hypotheses")
    replication.add_argument("--wave", action="append", help="only this wave (repeatable)")
    sub.add_parser("calibration", help="print the calibration report of the synthetic reference wave's state")
    sub.add_parser("generate", help="write a synthetic wave (options: lbc generate --help)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; unknown flags, unknown waves and missing arguments exit with 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if argv and argv[0] == "generate":
        from lbc_pipeline.synthetic.cli import main as generate_main

        return generate_main(argv[1:]) or 0
    args = parser.parse_args(argv)  # exits 2 on an unknown flag or subcommand
    try:
        if args.command == "run":
            return run_waves(args.wave, args.log_level).code
        if args.command == "flow":
            known = flow_waves() or []
            unpublished = [w for w in args.wave or [] if w not in known]
            if unpublished or (not known and not args.wave):
                return _not_published(unpublished)
            print_flow(args.wave)
            return 0
        if args.command == "status":
            return print_status(args.wave)
        if args.command == "replication":
            return print_replication(args.wave)
        if args.command == "calibration":
            from lbc_pipeline.synthetic.paper_stats import main as calibration_main

            calibration_main()
            return 0
    except UsageError as exc:
        parser.exit(2, f"lbc {args.command}: {exc}\n")
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
