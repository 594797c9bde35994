"""Failures in words: each cause gets its own message, and a run that cannot start says why."""

import subprocess
import sys

import pytest

from lbc_pipeline.lib import messages


@pytest.mark.parametrize("errors, expected", [
    # DuckDB on a full disk: the real cause was hidden behind "cannot rollback"
    ([("DagsterExecutionStepExecutionError", "Error occurred while executing"),
      ("TransactionException", "cannot rollback - no transaction is active"),
      ("IOException", "IO Error: Could not write file \"x.wal\": No space left on device")],
     "is full. Free some space"),
    ([("OSError", "[Errno 30] Read-only file system: '/data/warehouse'")], "the folder is read-only"),
    ([("PermissionError", "[Errno 13] Permission denied: 'lbc.duckdb'")], "the folder is read-only"),
    ([("WarehouseLockTimeout", "lbc.duckdb.lock: another run held the warehouse for more than 1800 s")],
     "is held by another process"),
    ([("IOException", 'IO Error: Could not set lock on file "lbc.duckdb": Conflicting lock is held in /usr/bin/duckdb')],
     "is held by another process"),
    # a refused delivery: the Failure's own first line, Dagster's class prefix removed
    ([("Failure", "dagster._core.definitions.events.Failure: questionnaires.csv, row 4, column 'qid': a NUL byte\n\nStack")],
     "questionnaires.csv, row 4, column 'qid': a NUL byte"),
    # anything else: class and first line, never the trace
    ([("KeyError", "'x'\n  File ...")], "KeyError: 'x'"),
])
def test_explain_failure(errors, expected):
    text = messages.explain_failure(errors, "/data")
    assert expected in text
    assert "\n" not in text and "File " not in text


def test_preflight_passes_on_a_fresh_folder(tmp_path):
    assert messages.preflight(tmp_path / "warehouse" / "lbc.duckdb") is None


def test_preflight_names_a_full_disk(tmp_path, monkeypatch):
    class Usage:
        free = 10 * 1024 * 1024
    monkeypatch.setattr(messages.shutil, "disk_usage", lambda _: Usage())
    assert "has 10 MB free, less than the 200 MB" in messages.preflight(tmp_path / "lbc.duckdb")


def test_preflight_names_a_read_only_folder(tmp_path, monkeypatch):
    # the tests run as root, for whom every folder is writable: simulate the refusal
    monkeypatch.setattr(messages.os, "access", lambda path, mode: False)
    assert "the folder is read-only" in messages.preflight(tmp_path / "lbc.duckdb")


@pytest.mark.parametrize("read_only", [True, False])
def test_a_serving_file_held_by_another_process_does_not_stop_a_run(tmp_path, read_only):
    # A notebook or a DuckDB shell holding the serving file, read-only or read-write: runs never
    # open it (a publication renames a new file over it), so nothing stops them.
    path = tmp_path / "lbc.duckdb"
    import duckdb

    duckdb.connect(str(path)).close()
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(path)!r}, "
                               f"read_only={read_only}); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert messages.preflight(path) is None
    finally:
        holder.kill()
        holder.wait()
