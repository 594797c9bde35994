"""A run launcher that notices dead run workers, so that a killed run shows as failed.

Dagster's `DefaultRunLauncher` starts each run in a process on this machine but cannot tell
whether that process is still alive, so Dagster's run monitoring leaves a run whose worker
was killed (kill -9, out of memory, a reboot) STARTED forever. `LocalRunLauncher` is the
same launcher with that health check: the worker's pid (from the run's "Started process for
run" event, or the `lbc/pid` tag of `lbc run`) is looked up on this machine, with its start
time compared to the run's so that a reused pid does not count. With `run_monitoring`
enabled in dagster.yaml, the daemon marks such a run failed within `poll_interval_seconds`,
and `lbc run` marks them on start. Both assume the daemon and the run workers share one
machine, which is what the default launcher does.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

PID_TAG = "lbc/pid"  # set by `lbc run` on the runs it executes in its own process
STARTED_PROCESS = "Started process for run"  # Dagster's engine event from a run worker


def worker_pid(instance, run: DagsterRun) -> tuple[int, float] | None:
    """(pid, when it was recorded) of the process executing `run`, if known."""
    if PID_TAG in run.tags:
        record = instance.get_run_record_by_id(run.run_id)
        started = record.start_time if record and record.start_time else record.create_timestamp.timestamp()
        return int(run.tags[PID_TAG]), float(started)
    for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
        if entry.message and entry.message.startswith(STARTED_PROCESS):
            pid = entry.dagster_event.engine_event_data.metadata.get("pid")
            if pid is not None:
                return int(pid.value), entry.timestamp
    return None


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def process_started_at(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), from /proc; None if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def alive(pid: int, recorded_at: float | None = None) -> bool:
    """Whether `pid` runs on this machine and, given `recorded_at` (when the pid was
    recorded), started no later than that (a later start is another process reusing it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if recorded_at is not None:
        started = process_started_at(pid)
        if started is not None and started > recorded_at + 2.0:
            return False
    return True


def worker_status(instance, run: DagsterRun) -> CheckRunHealthResult:
    """RUNNING unless the run's worker process is known and gone (then FAILED)."""
    found = worker_pid(instance, run)
    if found is None:  # not started far enough to say: the start timeout covers it
        return CheckRunHealthResult(WorkerStatus.RUNNING, "no worker pid recorded yet")
    pid, recorded_at = found
    if alive(pid, recorded_at):
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"worker pid {pid} is running")
    return CheckRunHealthResult(WorkerStatus.FAILED,
                                f"the process running it (pid {pid}) ended without finishing the run (killed?)")


class LocalRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher` with a worker health check for Dagster's run monitoring."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        return worker_status(self._instance, run)
