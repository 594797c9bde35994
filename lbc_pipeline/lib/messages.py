"""Failures in words for people: one or two lines, no stack trace (that stays in the run log).

`explain_failure` turns a failed step's error (its class name and message, and those of its
causes) into what happened and what to do; `preflight` finds, before a run starts, the
conditions that would make every step fail: a warehouse folder that cannot be written, a
full disk, a warehouse held by another process.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

# Below this much free space on the warehouse's disk a run is not started (the reference
# wave's outputs take about 30 MB; DuckDB needs room for its write-ahead log as well).
MIN_FREE_BYTES = 200 * 1024 * 1024

_FAILURE_PREFIXES = ("dagster._core.definitions.events.Failure: ", "dagster._core.errors.DagsterExecutionStepExecutionError: ")


def first_line(message: str, limit: int = 300) -> str:
    """The first non-empty line of a message, Dagster's class prefixes removed, shortened."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    text = lines[0] if lines else ""
    for prefix in _FAILURE_PREFIXES:
        text = text.removeprefix(prefix)
    return text if len(text) <= limit else text[:limit] + "..."


def explain_failure(errors: list[tuple[str, str]], where: str) -> str:
    """One or two lines for a failed step. `errors`: (class name, message) of the error and
    its causes, outermost first; `where`: the data folder or warehouse path to name."""
    joined = " | ".join(f"{cls}: {msg}" for cls, msg in errors)
    if "No space left on device" in joined or "ENOSPC" in joined or "disk is full" in joined.lower():
        return (f"the disk holding {where} is full. Free some space (df -h {where}) and run again; "
                "the warehouse still holds the previous complete version.")
    if "Read-only file system" in joined or "Permission denied" in joined or "EROFS" in joined:
        return (f"cannot write under {where}: the folder is read-only or not yours. Make it writable "
                "(or set LBC_DATA_DIR / LBC_DUCKDB_PATH to a writable folder) and run again.")
    if "WarehouseLockTimeout" in joined or "Could not set lock on file" in joined or "Conflicting lock" in joined:
        return (f"the warehouse {where} is held by another process (a running job, a DuckDB CLI or "
                "a notebook). Close it, or open it read-only, and run again.")
    for cls, message in errors:
        if cls in ("Failure", "RawFileError", "ManifestError") or "Failure" in cls:
            text = first_line(message)
            if text:
                return text
    cls, message = errors[0] if errors else ("Error", "")
    return f"{cls}: {first_line(message)}"


def preflight(warehouse: Path) -> str | None:
    """Why a run publishing to the serving file `warehouse` cannot start (None when it can):
    a folder that cannot be created or written, or too little free space. The serving file
    itself is never opened (publications replace it by a rename), so whoever holds it open,
    read-only or not, never stops a run."""
    folder = warehouse.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return explain_failure([("OSError", f"[Errno {exc.errno}] {exc.strerror}")], str(folder))
    if not os.access(folder, os.W_OK):
        return explain_failure([("OSError", "Permission denied")], str(folder))
    try:
        probe = folder / f".lbc-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = "No space left on device" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
        return explain_failure([("OSError", reason)], str(folder))
    if shutil.disk_usage(folder).free < MIN_FREE_BYTES:
        free = shutil.disk_usage(folder).free / 1024 / 1024
        return (f"the disk holding {folder} has {free:.0f} MB free, less than the {MIN_FREE_BYTES // 1024 // 1024} MB "
                "a run needs. Free some space and run again.")
    return None
    return None
