"""The great-expectations check in a worker process, warmed while the run does other work.

Importing great-expectations and running its first validation cost seconds, on the path of
the step that builds the analysis sample (the check is an ERROR check that blocks everything
downstream). A run therefore starts the worker early (`prestart()`, from the raw step): a
child process that imports great-expectations and validates a small warm-up sample while the
raw and staging steps run. The analysis step then sends its sample (`submit`) and collects
the outcome (`Pending.result`): the worker runs the very same rule,
`rules.check_analytic_sample_gx`, on the same frame (pickled: the same dtypes and values),
so the outcome is the same as in-process validation.

Whatever goes wrong with the worker (it cannot start, it died, it answers with something
other than an outcome, it does not answer within `TIMEOUT_S`) falls back to validating in
this process: the worker is an optimisation, never a second rule. An error that
great-expectations itself raises is raised here as it would be in-process.

The worker never outlives its parent: it asks the kernel for SIGTERM when the parent dies
(Linux `PR_SET_PDEATHSIG`), exits when its stdin closes, and the parent kills and reaps it
(`shutdown()`, at exit too), so it leaves no zombie. One worker per
process, reused across runs; `LBC_GX_WORKER=0` turns it off (in-process validation).

Protocol: pickled messages on the child's stdin/stdout (a length-prefixed frame each). The
child's own fd 1 is pointed at stderr, so nothing great-expectations prints can corrupt
the protocol.
"""

from __future__ import annotations

import atexit
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from lbc_pipeline.config import WaveManifest
from lbc_pipeline.lib.parallel import exit_with_parent
from lbc_pipeline.lib.quality.rules import Outcome, QualitySettings, check_analytic_sample_gx

TIMEOUT_S = 600.0  # a validation (import and warm-up included) that takes longer: fall back
_HEADER = struct.Struct("!Q")
_lock = threading.Lock()
_worker: subprocess.Popen | None = None
_outstanding: int | None = None  # the request the worker is answering
_requests = 0


def enabled() -> bool:
    return os.environ.get("LBC_GX_WORKER", "1") != "0"


# ---- the parent side -------------------------------------------------------------------

def _command() -> list[str]:
    return [sys.executable, "-m", "lbc_pipeline.lib.quality.gx_worker", str(os.getpid())]


def prestart() -> bool:
    """Start the worker (importing and warming great-expectations) unless one is running.
    False when it is turned off or cannot start (validation will then run in-process)."""
    global _worker, _outstanding
    if not enabled():
        return False
    with _lock:
        if _worker is not None and _worker.poll() is None:
            return True
        if _worker is not None:  # exited (and reaped by poll()): close its pipes
            for stream in (_worker.stdin, _worker.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        _worker, _outstanding = None, None
        try:
            _worker = subprocess.Popen(_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        except OSError:
            _worker = None
            return False
        return True


def shutdown() -> None:
    """Stop the worker and wait for it (no zombie). It holds nothing worth a graceful exit,
    and may be in the middle of importing: killed at once, so that no process waits on it."""
    global _worker, _outstanding
    with _lock:
        worker, _worker, _outstanding = _worker, None, None
    if worker is not None:
        _kill(worker)


atexit.register(shutdown)


def _send(stream, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exactly(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, left = [], n
    while left:
        if deadline is not None:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("no answer from the great-expectations worker")
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the great-expectations worker closed its output")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int, deadline: float | None):
    (size,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size, deadline))
    return pickle.loads(_read_exactly(fd, size, deadline))


@dataclass
class Pending:
    """A validation sent to the worker (or to be run in-process); `result()` gives the outcome."""

    sample: pl.DataFrame
    manifest: WaveManifest
    settings: QualitySettings
    worker: subprocess.Popen | None = None
    request: int = 0
    via: str = "in-process"  # how the outcome was obtained: "worker" or "in-process"

    def result(self) -> Outcome:
        global _outstanding
        answer: tuple = ("lost", None)
        if self.worker is not None:
            try:
                answer = _receive(self.worker.stdout.fileno(), time.monotonic() + TIMEOUT_S)
            except Exception:  # died, closed, timed out, garbled: validate here instead
                answer = ("lost", None)
            with _lock:
                if _outstanding == self.request:
                    _outstanding = None
            if not (isinstance(answer, tuple) and len(answer) == 3 and answer[0] == self.request):
                _kill(self.worker)
                answer = ("lost", None)
            else:
                answer = answer[1:]
            self.worker = None
        kind, value = answer
        if kind == "outcome" and isinstance(value, Outcome):
            self.via = "worker"
            return value
        if kind == "error" and isinstance(value, BaseException):
            raise value  # great-expectations raised: as it would have in-process
        self.via = "in-process"
        return check_analytic_sample_gx(self.sample, self.manifest, self.settings)


def _kill(worker: subprocess.Popen) -> None:
    """Kill a worker, wait for it and forget it."""
    global _worker, _outstanding
    with _lock:
        if _worker is worker:
            _worker, _outstanding = None, None
    try:
        worker.kill()
    except OSError:
        pass
    worker.wait()
    for stream in (worker.stdin, worker.stdout):
        try:
            if stream:
                stream.close()
        except OSError:
            pass


def submit(sample: pl.DataFrame, manifest: WaveManifest, settings: QualitySettings) -> Pending:
    """Send the sample to the worker, if one was started (`prestart`), and go on while it
    validates; without a running worker (none started, turned off, died), `result()`
    validates in-process. (A worker started only now would import great-expectations on
    the caller's path: no faster than in-process.)

    One request at a time: a request still outstanding (a concurrent caller, or one whose
    result was never collected) gets its worker replaced, and then validates in-process."""
    global _outstanding, _requests
    pending = Pending(sample, manifest, settings)
    if not enabled():
        return pending
    with _lock:
        running = _worker is not None and _worker.poll() is None
        stale = _worker if _outstanding is not None else None
    if not running:
        return pending
    if stale is not None:
        _kill(stale)
        if not prestart():
            return pending
    with _lock:
        worker = _worker
        _requests += 1
        request = _outstanding = _requests
    try:
        _send(worker.stdin, ("validate", request, (sample, manifest, settings)))
    except Exception:  # broken pipe: the worker died
        _kill(worker)
        return pending
    pending.worker, pending.request = worker, request
    return pending


def validate(sample: pl.DataFrame, manifest: WaveManifest, settings: QualitySettings) -> Outcome:
    """`check_analytic_sample_gx`, in the worker when it is available."""
    return submit(sample, manifest, settings).result()


# ---- the child side --------------------------------------------------------------------

def warm_up_sample() -> tuple[pl.DataFrame, WaveManifest]:
    """A small sample shaped like the analysis sample (columns, dtypes, values in range), to
    import and run every part of great-expectations that the real validation uses."""
    from lbc_pipeline.lib.contracts import ANALYTIC_COLUMNS, value_domains

    domains = value_domains("analysis.analytic_sample")
    groups = ["none", "mother", "father", "both"]
    n = 8
    columns: dict[str, pl.Series] = {
        "child_key": pl.Series([f"warm-{i}" for i in range(n)]),
        "school_id": pl.Series([domains.get("school_id", {}).get("allowed_values", ["S1"])[0]] * n),
        "migration_group": pl.Series([groups[i % 4] for i in range(n)]),
        "teacher_attitude": pl.Series([0.0] * n, dtype=pl.Float64),
    }
    for column in ANALYTIC_COLUMNS:
        low = domains.get(column, {}).get("min_value", 0)
        columns[column] = pl.Series([int(low)] * n, dtype=pl.Int64)
    manifest = WaveManifest("warm-up", Path("."), expected={"analysed": n}, expected_groups={g: 2 for g in groups})
    return pl.DataFrame(columns), manifest


def _serve(parent: int) -> int:
    exit_with_parent(parent, 0)
    protocol_in = os.fdopen(os.dup(0), "rb", buffering=0)
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, never into the protocol
    fd = protocol_in.fileno()
    import great_expectations  # noqa: F401  (the slow part: seconds)

    if not select.select([fd], [], [], 0)[0]:  # warm up unless a sample is already waiting
        try:
            sample, manifest = warm_up_sample()
            check_analytic_sample_gx(sample, manifest, QualitySettings(min_group_size=1))
        except Exception as exc:  # a warm-up that fails costs nothing but the warm-up
            print(f"gx worker: warm-up failed: {exc!r}", file=sys.stderr)
    while True:
        try:
            kind, request, payload = _receive(fd, None)
        except (EOFError, OSError):
            return 0  # the parent closed our stdin or died
        if kind != "validate":
            continue
        try:
            answer = (request, "outcome", check_analytic_sample_gx(*payload))
        except Exception as exc:
            try:
                pickle.dumps(exc)
                answer = (request, "error", exc)
            except Exception:
                answer = (request, "error", RuntimeError(f"great-expectations raised {exc!r}"))
        _send(protocol_out, answer)


if __name__ == "__main__":
    sys.exit(_serve(int(sys.argv[1])))
