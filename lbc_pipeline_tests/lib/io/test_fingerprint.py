"""Digests of a run's outputs: row order and run-time columns ignored, one bit noticed."""

import datetime as dt

import duckdb
import pytest

from lbc_pipeline.lib.io.fingerprint import differences, file_digests, table_digests


def _warehouse(path, rows, loaded_at):
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts; create table marts.t (k varchar, x double, loaded_at timestamp)")
        con.executemany("insert into marts.t values (?, ?, ?)", [(k, x, loaded_at) for k, x in rows])
    return path


@pytest.mark.parametrize("second_rows, second_time, same", [
    ([("b", 0.2), ("a", 0.1)], dt.datetime(2020, 1, 1), True),        # rows in another order: same
    ([("a", 0.1), ("b", 0.2)], dt.datetime(2031, 5, 5), True),        # only loaded_at differs: same
    ([("a", 0.1), ("b", 0.2 + 2 ** -54)], dt.datetime(2020, 1, 1), False),  # one bit: differs
    ([("a", 0.1)], dt.datetime(2020, 1, 1), False),                   # a row fewer: differs
])
def test_table_digests(tmp_path, second_rows, second_time, same):
    first = table_digests(_warehouse(tmp_path / "a.duckdb", [("a", 0.1), ("b", 0.2)], dt.datetime(2020, 1, 1)))
    second = table_digests(_warehouse(tmp_path / "b.duckdb", second_rows, second_time))
    assert (differences(first, second) == []) is same


def test_file_digests_name_the_file_that_differs(tmp_path):
    for side, text in (("a", "x"), ("b", "y")):
        (tmp_path / side / "w").mkdir(parents=True)
        (tmp_path / side / "w" / "same.json").write_text("{}")
        (tmp_path / side / "w" / "report.html").write_text(text)
    assert differences(file_digests(tmp_path / "a"), file_digests(tmp_path / "b")) == ["w/report.html"]


def test_file_digests_follow_the_wave_link_and_skip_versions_and_fifos(tmp_path):
    import os
    version = tmp_path / "reports" / ".versions" / "w" / "run-1"
    version.mkdir(parents=True)
    (version / "report.html").write_text("x")
    os.symlink(".versions/w/run-1", tmp_path / "reports" / "w")
    os.mkfifo(tmp_path / "reports" / "pipe")
    (version / "sub").mkdir()
    os.mkfifo(version / "sub" / "pipe")
    assert list(file_digests(tmp_path / "reports")) == ["w/report.html"]
