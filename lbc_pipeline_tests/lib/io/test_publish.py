"""A wave is published as a unit: a publishing run's rows are pending (invisible to consumers,
visible to the run itself) until its publish step moves them all in one transaction; its
files go to a version folder that the wave's link points to only once published."""

import os

import duckdb
import polars as pl
import pytest

from lbc_pipeline.config import artifacts_dir, reports_dir
from lbc_pipeline.lib.io import publish
from lbc_pipeline.lib.io.warehouse import (
    has_table, pending_run, read_wave, replace_wave, set_pending_run, table_relation,
)

REASONS = "analysis.sample_flow_reasons"
SPECIAL = "staging.codebook_special_codes"


def _reasons(wave: str, n: int) -> pl.DataFrame:
    return pl.DataFrame({"wave": [wave], "step": ["analysed"], "reason": ["missing"], "reason_order": [1],
                         "n_primary": [n], "n_any": [n]})


def _codes(wave: str, codes: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"wave": [wave] * len(codes), "code": codes, "reason": ["r"] * len(codes),
                         "label_en": ["l"] * len(codes), "label_zh": ["l"] * len(codes)},
                        schema={"wave": pl.String, "code": pl.Int64, "reason": pl.String, "label_en": pl.String,
                                "label_zh": pl.String})


def _published(con, table: str, column: str = "n_primary") -> list:
    return con.sql(f"select wave, {column} from {table} order by all").fetchall()


@pytest.fixture
def warehouse(tmp_path):
    con = duckdb.connect(str(tmp_path / "lbc.duckdb"))
    replace_wave(con, {REASONS: _reasons("2019", 1), SPECIAL: _codes("2019", [-9])}, "2019")  # version 1, in place
    yield con
    con.close()


def test_pending_rows_are_seen_by_their_run_only(warehouse, tmp_path):
    set_pending_run(warehouse, "run-b")
    assert pending_run(warehouse) == "run-b"
    replace_wave(warehouse, {REASONS: _reasons("2019", 2)}, "2019")
    assert read_wave(warehouse, REASONS, "2019")["n_primary"].to_list() == [2]  # the run sees its rows
    assert read_wave(warehouse, SPECIAL, "2019")["code"].to_list() == [-9]  # and the published rest
    consumer = duckdb.connect(str(tmp_path / "lbc.duckdb"))  # another connection: no pending run
    assert pending_run(consumer) is None
    assert read_wave(consumer, REASONS, "2019")["n_primary"].to_list() == [1]  # consumers see version 1
    consumer.close()
    assert _published(warehouse, REASONS) == [("2019", 1)]
    set_pending_run(warehouse, None)
    assert pending_run(warehouse) is None
    assert read_wave(warehouse, REASONS, "2019")["n_primary"].to_list() == [1]


def test_an_empty_pending_table_hides_the_published_rows_from_its_run(warehouse):
    """A table the run wrote with no rows is empty for the run (not the old version's rows)."""
    set_pending_run(warehouse, "run-b")
    replace_wave(warehouse, {SPECIAL: _codes("2019", [])}, "2019")
    assert read_wave(warehouse, SPECIAL, "2019").height == 0


def test_publish_moves_every_table_at_once_and_records_the_version(warehouse, tmp_path):
    set_pending_run(warehouse, "run-b")
    replace_wave(warehouse, {REASONS: _reasons("2019", 2)}, "2019")
    replace_wave(warehouse, {SPECIAL: _codes("2019", [-8, -9])}, "2019")
    replace_wave(warehouse, {REASONS: _reasons("2020", 5)}, "2020")  # another wave of the same run: not published
    tables = publish.publish_wave(warehouse, "2019", "run-b", tmp_path)
    assert tables == {REASONS: 1, SPECIAL: 2}
    set_pending_run(warehouse, None)
    assert _published(warehouse, REASONS) == [("2019", 2)]
    assert _published(warehouse, SPECIAL, "code") == [("2019", -9), ("2019", -8)]
    assert warehouse.sql("select wave, run_id, table_count, row_count from publish.wave_versions").fetchall() == [
        ("2019", "run-b", 2, 3)]
    assert publish.live_versions(warehouse) == {"2019": "run-b"}
    # the pending rows of 2019 are gone, 2020's stay pending; the emptied pending table is dropped
    left = warehouse.sql("select table_name from duckdb_tables() where schema_name like '%_pending'").fetchall()
    assert left == [("sample_flow_reasons",)]
    assert publish.pending_tables(warehouse, "2020", "run-b") == {REASONS: 1}
    # the published table keeps its contract's primary key and comments
    comment = warehouse.sql("select comment from duckdb_tables() where schema_name = 'staging' "
                            "and table_name = 'codebook_special_codes'").fetchall()[0][0]
    assert comment and "pending" not in comment


def test_the_first_publication_creates_the_consumer_tables(tmp_path):
    with duckdb.connect(str(tmp_path / "lbc.duckdb")) as con:
        set_pending_run(con, "run-a")
        replace_wave(con, {REASONS: _reasons("2019", 3)}, "2019")
        assert has_table(con, REASONS) and not has_table(con, REASONS, published_only=True)
        assert con.sql(f"select n_primary from {table_relation(con, REASONS)}").fetchall() == [(3,)]
        publish.publish_wave(con, "2019", "run-a", tmp_path)
        set_pending_run(con, None)
        assert _published(con, REASONS) == [("2019", 3)]
        key = con.sql("select constraint_column_names from duckdb_constraints() "
                      "where table_name = 'sample_flow_reasons' and constraint_type = 'PRIMARY KEY'").fetchall()
        assert key == [(["wave", "step", "reason"],)]


def test_table_relation_is_the_published_rows_with_the_runs_waves_replaced(warehouse):
    replace_wave(warehouse, {REASONS: _reasons("2018", 7)}, "2018")
    set_pending_run(warehouse, "run-b")
    replace_wave(warehouse, {REASONS: _reasons("2019", 2)}, "2019")
    assert warehouse.sql(f"select wave, n_primary from {table_relation(warehouse, REASONS)} order by 1").fetchall() == [
        ("2018", 7), ("2019", 2)]


def test_publishing_a_run_that_wrote_nothing_is_refused(warehouse, tmp_path):
    with pytest.raises(ValueError, match="no pending tables"):
        publish.publish_wave(warehouse, "2019", "run-x", tmp_path)
    assert _published(warehouse, REASONS) == [("2019", 1)]


def test_a_failed_publish_changes_nothing(warehouse, tmp_path, monkeypatch):
    set_pending_run(warehouse, "run-b")
    replace_wave(warehouse, {REASONS: _reasons("2019", 2), SPECIAL: _codes("2019", [-1])}, "2019")

    def broken(con, table):  # fails after the first table was moved, inside the transaction
        if table == SPECIAL:
            raise OSError("disk full")

    monkeypatch.setattr(publish, "_comment_table", broken)
    with pytest.raises(OSError):
        publish.publish_wave(warehouse, "2019", "run-b", tmp_path)
    set_pending_run(warehouse, None)
    assert _published(warehouse, REASONS) == [("2019", 1)]
    assert publish.pending_tables(warehouse, "2019", "run-b") == {REASONS: 1, SPECIAL: 1}
    assert publish.live_versions(warehouse) == {}


def test_discard_stale_drops_what_dead_runs_of_the_wave_left_and_keeps_the_rest(warehouse, tmp_path):
    for run, wave, n in (("dead", "2019", 8), ("live", "2019", 9), ("dead-other-wave", "2020", 7)):
        set_pending_run(warehouse, run)
        replace_wave(warehouse, {REASONS: _reasons(wave, n)}, wave)
        (tmp_path / "reports" / ".versions" / wave / run).mkdir(parents=True)
    assert publish.discard_stale(warehouse, tmp_path, "2019", keep_runs={"live"}) == ["dead"]
    assert publish.pending_tables(warehouse, "2019", "dead") == {}
    assert publish.pending_tables(warehouse, "2019", "live") == {REASONS: 1}
    assert sorted(p.name for p in (tmp_path / "reports" / ".versions" / "2019").iterdir()) == ["live"]
    # another wave's failed run stays for inspection until that wave is run again
    assert publish.pending_tables(warehouse, "2020", "dead-other-wave") == {REASONS: 1}
    assert (tmp_path / "reports" / ".versions" / "2020" / "dead-other-wave").is_dir()


def test_files_are_published_by_repointing_the_waves_link(tmp_path, monkeypatch):
    monkeypatch.setenv("LBC_DATA_DIR", str(tmp_path))
    legacy = reports_dir("2019")  # a folder from before versions existed
    legacy.mkdir(parents=True)
    (legacy / "report.html").write_text("old")
    with duckdb.connect(str(tmp_path / "lbc.duckdb")) as con:
        for run, text in (("run-a", "first"), ("run-b", "second")):
            set_pending_run(con, run)
            replace_wave(con, {REASONS: _reasons("2019", 1)}, "2019")
            for folder in (reports_dir("2019", run), artifacts_dir("2019", run)):
                folder.mkdir(parents=True)
                (folder / "report.html").write_text(text)
            assert (reports_dir("2019") / "report.html").read_text() == {"run-a": "old", "run-b": "first"}[run]
            publish.publish_wave(con, "2019", run, tmp_path)
            assert (reports_dir("2019") / "report.html").read_text() == text
            assert (artifacts_dir("2019") / "report.html").read_text() == text
        assert reports_dir("2019").is_symlink() and os.readlink(reports_dir("2019")) == ".versions/2019/run-b"
        # superseded versions (and the legacy folder) are gone
        assert [p.name for p in (tmp_path / "reports" / ".versions" / "2019").iterdir()] == ["run-b"]


def test_a_kill_between_the_commit_and_the_link_heals_on_the_next_sync(tmp_path, monkeypatch):
    monkeypatch.setenv("LBC_DATA_DIR", str(tmp_path))
    with duckdb.connect(str(tmp_path / "lbc.duckdb")) as con:
        for run in ("run-a", "run-b"):
            set_pending_run(con, run)
            replace_wave(con, {REASONS: _reasons("2019", 1)}, "2019")
            reports_dir("2019", run).mkdir(parents=True)
            (reports_dir("2019", run) / "report.html").write_text(run)
        publish.publish_wave(con, "2019", "run-a", tmp_path)
        monkeypatch.setattr(publish, "sync_files", lambda *a, **k: None)  # the process dies after the commit
        publish.publish_wave(con, "2019", "run-b", tmp_path)
        assert (reports_dir("2019") / "report.html").read_text() == "run-a"
        monkeypatch.undo()
        monkeypatch.setenv("LBC_DATA_DIR", str(tmp_path))
        publish.sync_files(con, tmp_path)  # what the next run does first
        assert (reports_dir("2019") / "report.html").read_text() == "run-b"


def test_a_pending_table_another_run_wrote_empty_is_kept(warehouse, tmp_path):
    """Two waves' runs at once: one publishes while the other's frame of a table was empty."""
    set_pending_run(warehouse, "run-c1")
    replace_wave(warehouse, {SPECIAL: _codes("c1", [])}, "c1")  # no rows, but written
    set_pending_run(warehouse, "run-c0")
    replace_wave(warehouse, {SPECIAL: _codes("c0", [-9])}, "c0")
    publish.publish_wave(warehouse, "c0", "run-c0", tmp_path)
    set_pending_run(warehouse, "run-c1")
    assert read_wave(warehouse, SPECIAL, "c1").height == 0
    assert publish.publish_wave(warehouse, "c1", "run-c1", tmp_path) == {SPECIAL: 0}
    left = warehouse.sql("select count(*) from duckdb_tables() where schema_name like '%_pending'").fetchall()
    assert left == [(0,)]
