"""Replacing a wave's rows: by key where the table's primary key allows it (a large wave
published again), by delete and insert otherwise; the rows are the source's either way."""

import duckdb
import pytest

from lbc_pipeline.lib.io import warehouse
from lbc_pipeline.lib.io.warehouse import replace_rows


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("create schema s")
    con.execute("create table s.keyed (wave varchar not null, qid varchar not null, score integer, note varchar, "
                "primary key (wave, qid))")
    con.execute("insert into s.keyed values ('2019', 'a', 1, 'x'), ('2019', 'b', 2, 'y'), ('2019', 'c', 3, null), "
                "('2020', 'a', 9, 'other wave')")
    con.execute("create table s.plain as select * from s.keyed")  # the same rows, no key
    con.execute("create table src (wave varchar, qid varchar, score integer, note varchar)")
    # b changed, c gone, d new; a the same
    con.execute("insert into src values ('2019', 'a', 1, 'x'), ('2019', 'b', 20, null), ('2019', 'd', 4, 'new')")
    yield con
    con.close()


EXPECTED = [("2019", "a", 1, "x"), ("2019", "b", 20, None), ("2019", "d", 4, "new"), ("2020", "a", 9, "other wave")]


def _rows(con, table):
    return con.execute(f"select * from {table} order by all").fetchall()


def _statements(con, monkeypatch):
    seen = []

    class Spy:
        def __getattr__(self, name):
            return getattr(con, name)

        def execute(self, sql, *args):
            seen.append(sql)
            return con.execute(sql, *args)

    return Spy(), seen


@pytest.mark.parametrize("table", ["s.keyed", "s.plain"])
def test_the_waves_rows_become_the_sources_and_other_waves_stay(con, table, monkeypatch):
    spy, seen = _statements(con, monkeypatch)
    schema, name = table.split(".")
    replace_rows(spy, schema, name, "select * from src where wave = ?", ["2019"], "2019")
    assert _rows(con, table) == EXPECTED
    by_key = any(sql.startswith("insert or replace") for sql in seen)
    assert by_key == (table == "s.keyed")  # the keyed table by key, the other by delete and insert


def test_a_column_the_source_lacks_is_null_for_the_wave_as_before(con, monkeypatch):
    spy, seen = _statements(con, monkeypatch)
    replace_rows(spy, "s", "keyed", "select wave, qid, score from src where wave = ?", ["2019"], "2019")
    assert _rows(con, "s.keyed") == [("2019", "a", 1, None), ("2019", "b", 20, None), ("2019", "d", 4, None),
                                     ("2020", "a", 9, "other wave")]
    assert not any(sql.startswith("insert or replace") for sql in seen)  # by key would keep 'x' for a


def test_a_key_without_the_wave_is_not_replaced_by_key(con, monkeypatch):
    con.execute("create table s.global (wave varchar, qid varchar primary key, score integer, note varchar)")
    con.execute("insert into s.global values ('2020', 'a', 9, 'other wave')")
    spy, seen = _statements(con, monkeypatch)
    # another wave's row holds key a: by key it would be taken over silently; refused instead
    with pytest.raises(duckdb.ConstraintException):
        replace_rows(spy, "s", "global", "select * from src where wave = ?", ["2019"], "2019")
    assert not any(sql.startswith("insert or replace") for sql in seen)


@pytest.mark.parametrize("table", ["s.keyed", "s.plain"])
def test_duplicate_keys_in_the_source_are_refused_and_nothing_changes(con, table):
    con.execute("insert into src values ('2019', 'a', 5, 'twice')")
    before = _rows(con, table)
    schema, name = table.split(".")
    con.execute("begin")
    if table == "s.keyed":
        with pytest.raises(duckdb.ConstraintException, match=r"s.keyed: the new rows of wave 2019 hold key \(wave, qid\)"):
            replace_rows(con, schema, name, "select * from src where wave = ?", ["2019"], "2019")
    else:  # no key: nothing to refuse, both rows go in
        replace_rows(con, schema, name, "select * from src where wave = ?", ["2019"], "2019")
        assert con.execute("select count(*) from s.plain where wave = '2019' and qid = 'a'").fetchall() == [(2,)]
    con.execute("rollback")
    assert _rows(con, table) == before


def test_the_key_read_is_the_tables_own(con):
    assert warehouse._table_primary_key(con, "s", "keyed") == ["wave", "qid"]
    assert warehouse._table_primary_key(con, "s", "plain") == []
