"""The great-expectations worker is an optimisation, never a second rule: through the worker
or in-process, the suite gives the same outcome, a failing expectation fails, and a worker
that cannot start, dies or is abandoned falls back to in-process validation. It never
outlives the process that started it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from lbc_pipeline.lib.quality import gx_worker
from lbc_pipeline.lib.quality import rules as quality
from lbc_pipeline_tests.helpers import MANIFEST, sample
from lbc_pipeline_tests.rows import varied_rows

SETTINGS = quality.QualitySettings(min_group_size=1)


@pytest.fixture(scope="module")
def analytic() -> pl.DataFrame:
    return sample(varied_rows(80, seed=5)).analytic_sample


@pytest.fixture
def fresh_worker(monkeypatch):
    monkeypatch.setenv("LBC_GX_WORKER", "1")
    gx_worker.shutdown()
    yield
    gx_worker.shutdown()


def _via_worker(frame, manifest=MANIFEST, settings=SETTINGS):
    gx_worker.prestart()
    pending = gx_worker.submit(frame, manifest, settings)
    return pending.result(), pending.via


def test_the_worker_gives_the_in_process_outcome_passing_and_failing(analytic, fresh_worker):
    outcome, via = _via_worker(analytic)
    assert via == "worker"
    assert outcome.passed, outcome.description
    assert outcome == quality.check_analytic_sample_gx(analytic, MANIFEST, SETTINGS)

    bad = analytic.with_columns(pl.lit(31).alias("depression"))
    outcome, via = _via_worker(bad)
    assert via == "worker"
    assert not outcome.passed and outcome.severity == quality.ERROR
    assert "expect_column_values_to_be_between(depression)" in outcome.description
    assert outcome == quality.check_analytic_sample_gx(bad, MANIFEST, SETTINGS)

    # the run's settings travel with the sample: a floor no group reaches fails the sizes suite
    strict = quality.QualitySettings(min_group_size=100000)
    outcome, via = _via_worker(analytic, settings=strict)
    assert via == "worker" and not outcome.passed
    assert "migration_group_sizes" in outcome.description
    assert outcome == quality.check_analytic_sample_gx(analytic, MANIFEST, strict)


def test_a_worker_that_cannot_start_falls_back_to_in_process(analytic, fresh_worker, monkeypatch):
    monkeypatch.setattr(gx_worker, "_command", lambda: ["/nonexistent/python"])
    assert gx_worker.prestart() is False
    bad = analytic.with_columns(pl.lit(31).alias("depression"))
    outcome, via = _via_worker(bad)
    assert via == "in-process"
    assert outcome == quality.check_analytic_sample_gx(bad, MANIFEST, SETTINGS) and not outcome.passed


def test_a_worker_that_dies_falls_back_to_in_process(analytic, fresh_worker, monkeypatch):
    # a "worker" that exits at once: the request is lost, the outcome is computed here
    monkeypatch.setattr(gx_worker, "_command", lambda: [sys.executable, "-c", "pass"])
    outcome, via = _via_worker(analytic)
    assert via == "in-process" and outcome.passed
    assert gx_worker._worker is None  # forgotten and reaped


def test_without_a_started_worker_it_validates_in_process(analytic, fresh_worker):
    pending = gx_worker.submit(analytic, MANIFEST, SETTINGS)
    assert pending.result().passed and pending.via == "in-process"
    assert gx_worker._worker is None  # none started on the caller's path


def test_turned_off_it_validates_in_process(analytic, fresh_worker, monkeypatch):
    monkeypatch.setenv("LBC_GX_WORKER", "0")
    assert gx_worker.prestart() is False
    outcome, via = _via_worker(analytic)
    assert via == "in-process" and outcome.passed


def test_an_abandoned_request_does_not_answer_the_next_one(analytic, fresh_worker):
    bad = analytic.with_columns(pl.lit(31).alias("depression"))
    assert gx_worker.prestart()
    abandoned = gx_worker.submit(bad, MANIFEST, SETTINGS)  # never collected before the next one
    good = gx_worker.submit(analytic, MANIFEST, SETTINGS)
    assert good.result().passed and good.via == "worker"
    outcome = abandoned.result()  # its worker was replaced: validated here
    assert not outcome.passed and abandoned.via == "in-process"


def test_an_error_inside_great_expectations_is_raised_as_in_process(analytic, fresh_worker):
    missing = analytic.drop("teacher_attitude")  # a suite on a column that is not there: GX reports, not raises
    outcome, via = _via_worker(missing)
    assert via == "worker" and outcome == quality.check_analytic_sample_gx(missing, MANIFEST, SETTINGS)
    with pytest.raises(Exception) as raised:
        assert gx_worker.prestart()
        gx_worker.submit(analytic, "not a manifest", SETTINGS).result()
    with pytest.raises(type(raised.value)):
        quality.check_analytic_sample_gx(analytic, "not a manifest", SETTINGS)


def test_shutdown_reaps_the_worker(fresh_worker):
    assert gx_worker.prestart()
    worker = gx_worker._worker
    gx_worker.shutdown()
    assert worker.returncode is not None  # waited for: no zombie left
    assert gx_worker._worker is None


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").exists(), reason="needs Linux /proc")
def test_the_worker_exits_when_its_parent_is_killed(tmp_path):
    script = ("import sys, time\nfrom lbc_pipeline.lib.quality import gx_worker\nassert gx_worker.prestart()\n"
              "print(gx_worker._worker.pid, flush=True)\ntime.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "LBC_GX_WORKER": "1"})
    try:
        worker_pid = int(parent.stdout.readline())
        assert _state(worker_pid) not in (None, "Z")
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 60
        while _state(worker_pid) not in (None, "Z") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _state(worker_pid) in (None, "Z"), "the worker outlived its parent"
    finally:
        parent.kill()
        parent.wait()
