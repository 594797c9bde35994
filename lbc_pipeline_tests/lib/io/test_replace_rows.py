"""Replacing a wave's rows: a keyed table that already holds the wave is rebuilt (a large wave
published again), any other by delete and insert; either way the other waves' rows keep their
order and the new rows follow in the source's order (computations that read the table see
the rows as a fresh build gives them), and the table keeps its key and comments."""

import duckdb
import pytest

from lbc_pipeline.lib.io import warehouse
from lbc_pipeline.lib.io.warehouse import replace_rows

ROWS = "('2019', 'c', 3, null), ('2020', 'a', 9, 'other wave'), ('2019', 'a', 1, 'x'), ('2019', 'b', 2, 'y')"


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("create schema s")
    con.execute("create table s.keyed (wave varchar, qid varchar, score integer, note varchar)")
    con.execute("alter table s.keyed add primary key (wave, qid)")
    con.execute(f"insert into s.keyed values {ROWS}")
    con.execute("comment on table s.keyed is 'one row per wave x questionnaire'")
    con.execute("comment on column s.keyed.score is 'the score'")
    con.execute("create table s.plain as select * from s.keyed")  # the same rows, no key
    con.execute("create table src (wave varchar, qid varchar, score integer, note varchar)")
    # b changed, c gone, d new, a the same; not in key order
    con.execute("insert into src values ('2019', 'd', 4, 'new'), ('2019', 'b', 20, null), ('2019', 'a', 1, 'x')")
    yield con
    con.close()


EXPECTED = [("2020", "a", 9, "other wave"), ("2019", "d", 4, "new"), ("2019", "b", 20, None), ("2019", "a", 1, "x")]


def _rows(con, table):
    return con.execute(f"select * from {table}").fetchall()  # in the table's order


def _spy(con):
    seen = []

    class Spy:
        def __getattr__(self, name):
            return getattr(con, name)

        def execute(self, sql, *args):
            seen.append(sql)
            return con.execute(sql, *args)

    return Spy(), seen


def _rebuilt(seen) -> bool:
    return any("__replacing" in sql for sql in seen)


@pytest.mark.parametrize("table", ["s.keyed", "s.plain"])
def test_the_waves_rows_become_the_sources_in_order_after_the_other_waves(con, table):
    spy, seen = _spy(con)
    schema, name = table.split(".")
    replace_rows(spy, schema, name, "select * from src where wave = ?", ["2019"], "2019")
    assert _rows(con, table) == EXPECTED
    assert _rebuilt(seen) == (table == "s.keyed")  # the keyed table rebuilt, the other by delete and insert


def test_a_rebuilt_table_keeps_its_key_and_comments(con):
    replace_rows(con, "s", "keyed", "select * from src where wave = ?", ["2019"], "2019")
    assert warehouse._rebuildable_key(con, "s", "keyed") == ["wave", "qid"]
    assert con.execute("select comment from duckdb_tables() where table_name = 'keyed'").fetchall() == [
        ("one row per wave x questionnaire",)]
    assert con.execute("select column_name, comment from duckdb_columns() where table_name = 'keyed' "
                       "and comment is not null").fetchall() == [("score", "the score")]
    assert con.execute("select count(*) from duckdb_tables() where table_name like '%replacing%'").fetchall() == [(0,)]
    with pytest.raises(duckdb.ConstraintException):  # the key holds
        con.execute("insert into s.keyed values ('2019', 'a', 5, 'again')")


def test_a_new_wave_is_inserted_without_a_rebuild(con):
    spy, seen = _spy(con)
    replace_rows(spy, "s", "keyed", "select '2021' as wave, qid, score, note from src", [], "2021")
    assert not _rebuilt(seen)
    assert _rows(con, "s.keyed")[:4] == _rows(con, "s.plain")  # the rows that were there, in place
    assert [r[1] for r in _rows(con, "s.keyed")[4:]] == ["d", "b", "a"]


def test_a_column_the_source_lacks_is_null_for_the_wave(con):
    replace_rows(con, "s", "keyed", "select wave, qid, score from src where wave = ?", ["2019"], "2019")
    assert _rows(con, "s.keyed") == [("2020", "a", 9, "other wave"), ("2019", "d", 4, None), ("2019", "b", 20, None),
                                     ("2019", "a", 1, None)]


def test_a_table_with_other_constraints_or_defaults_is_not_rebuilt(con):
    con.execute("create table s.checked (wave varchar, qid varchar, score integer check (score >= 0), "
                "note varchar default 'none', primary key (wave, qid))")
    con.execute(f"insert into s.checked values {ROWS}")
    spy, seen = _spy(con)
    replace_rows(spy, "s", "checked", "select * from src where wave = ?", ["2019"], "2019")
    assert not _rebuilt(seen)
    assert sorted(_rows(con, "s.checked")) == sorted(EXPECTED)
    with pytest.raises(duckdb.ConstraintException):  # the check is still there
        con.execute("insert into s.checked values ('2022', 'z', -1, null)")


@pytest.mark.parametrize("table", ["s.keyed", "s.plain"])
def test_a_key_twice_in_the_source_is_refused_by_a_keyed_table_and_nothing_changes(con, table):
    con.execute("insert into src values ('2019', 'a', 5, 'twice')")
    before = _rows(con, table)
    schema, name = table.split(".")
    con.execute("begin")
    if table == "s.keyed":
        with pytest.raises(duckdb.ConstraintException, match=r"s.keyed: the new rows of wave 2019 hold the key "
                                                              r"\(wave, qid\) = \('2019', 'a'\) more than once"):
            replace_rows(con, schema, name, "select * from src where wave = ?", ["2019"], "2019")
    else:  # no key: nothing to refuse, both rows go in
        replace_rows(con, schema, name, "select * from src where wave = ?", ["2019"], "2019")
        assert con.execute("select count(*) from s.plain where wave = '2019' and qid = 'a'").fetchall() == [(2,)]
    con.execute("rollback")
    assert _rows(con, table) == before


def test_the_key_read_is_the_tables_own_and_only_where_a_copy_keeps_the_table(con):
    assert warehouse._rebuildable_key(con, "s", "keyed") == ["wave", "qid"]
    assert warehouse._rebuildable_key(con, "s", "plain") == []  # no key
    con.execute("create table s.not_null (wave varchar, qid varchar, note varchar not null, primary key (wave, qid))")
    assert warehouse._rebuildable_key(con, "s", "not_null") == []  # a NOT NULL off the key would be lost
