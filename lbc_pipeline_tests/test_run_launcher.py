"""A run whose worker died is marked failed by Dagster's run monitoring (the daemon) with the
project's launcher; a live worker, or one not yet known, is left running."""

import logging
import os
import subprocess
import time
import uuid

import pytest
from dagster import DagsterRun, DagsterRunStatus
from dagster._core.events import EngineEventData
from dagster._core.test_utils import instance_for_test
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from lbc_pipeline.run_launcher import PID_TAG, LocalRunLauncher, WorkerStatus, alive, process_started_at, worker_status

LAUNCHER = {"module": "lbc_pipeline.run_launcher", "class": "LocalRunLauncher"}


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture
def instance():
    with instance_for_test(overrides={"run_launcher": LAUNCHER,
                                      "run_monitoring": {"enabled": True, "max_resume_run_attempts": 0}}) as inst:
        yield inst


def _started_run(instance, tags=None) -> DagsterRun:
    run = instance.add_run(DagsterRun(job_name="lbc_main_job", run_id=str(uuid.uuid4()),
                                      status=DagsterRunStatus.STARTED, tags=tags or {}))
    return run


def test_the_instance_uses_the_health_checking_launcher(instance):
    assert isinstance(instance.run_launcher, LocalRunLauncher)
    assert instance.run_launcher.supports_check_run_worker_health


@pytest.mark.parametrize("pid_of, expected", [(os.getpid, WorkerStatus.RUNNING), (_dead_pid, WorkerStatus.FAILED)])
def test_the_worker_pid_from_dagsters_started_process_event(instance, pid_of, expected):
    run = _started_run(instance)
    pid = pid_of()
    instance.report_engine_event(f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid))
    assert worker_status(instance, run).status == expected


@pytest.mark.parametrize("pid_of, expected", [(os.getpid, WorkerStatus.RUNNING), (_dead_pid, WorkerStatus.FAILED)])
def test_the_worker_pid_from_lbc_runs_tag(instance, pid_of, expected):
    run = _started_run(instance, {PID_TAG: str(pid_of())})
    assert worker_status(instance, run).status == expected


def test_a_run_with_no_pid_yet_is_not_failed(instance):
    assert worker_status(instance, _started_run(instance)).status == WorkerStatus.RUNNING


def test_a_reused_pid_does_not_count_as_the_worker():
    started = process_started_at(os.getpid())
    assert started is not None and started <= time.time()
    assert alive(os.getpid(), recorded_at=time.time())
    assert not alive(os.getpid(), recorded_at=started - 60)  # recorded before this process existed


def test_run_monitoring_marks_a_killed_worker_failed_and_leaves_a_live_one(instance):
    dead = _started_run(instance)
    instance.report_engine_event("Started process for run (pid: 1).", dead, EngineEventData.in_process(_dead_pid()))
    live = _started_run(instance)
    instance.report_engine_event("Started process for run.", live, EngineEventData.in_process(os.getpid()))
    for run in (dead, live):
        monitor_started_run(instance, None, instance.get_run_record_by_id(run.run_id), logging.getLogger("test"))
    assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(live.run_id).status == DagsterRunStatus.STARTED
