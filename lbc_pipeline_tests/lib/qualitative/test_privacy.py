"""The privacy check searches every text column of the database it is given (a wave's
working database, or a serving file) outside `raw`, and finds names as words and roll
numbers as whole numbers."""

import duckdb
import polars as pl
import pytest

from lbc_pipeline.lib.io.warehouse import replace_wave
from lbc_pipeline.lib.qualitative.privacy import find_leaks, raw_roll_numbers, text_values

TABLE = "analysis.sample_flow_reasons"


def _reasons(wave: str, reason: str) -> pl.DataFrame:
    return pl.DataFrame({"wave": [wave], "step": ["analysed"], "reason": [reason], "reason_order": [1],
                         "n_primary": [1], "n_any": [1]})


def test_text_values_leave_the_raw_layer_out(tmp_path):
    con = duckdb.connect(str(tmp_path / "work.duckdb"))
    replace_wave(con, {TABLE: _reasons("2019", "Li Lei")}, "2019")
    con.execute("create schema raw")
    con.execute("create table raw.questionnaires (wave varchar, student_name varchar, student_no varchar)")
    con.execute("insert into raw.questionnaires values ('2019', 'Li Lei', '2015010101')")
    texts = text_values(con)
    assert all(where.startswith(f"{TABLE}.") for where in texts)  # raw is not searched: names belong there
    assert [w for w, _ in find_leaks(texts, ["Li Lei", "Wang Fang"])] == [f"{TABLE}.reason"]
    assert raw_roll_numbers(con) == {"2015010101"}
    con.close()


@pytest.mark.parametrize("text, found", [
    ("roll 2015010101.", ["2015010101"]),  # a roll number as a whole number
    ("id2015010101x", ["2015010101"]),  # letters around it do not hide it
    ("20150101011", []),  # inside a longer number: another number
    ("Li Lei said", ["Li Lei"]),  # a Latin name as a word
    ("Likert Lei", []),  # not a word of the text
    ("程文说", ["程文"]),  # a Chinese name anywhere
])
def test_names_and_roll_numbers_are_found_as_words(text, found):
    leaks = find_leaks({"t.c": [text]}, ["2015010101", "Li Lei", "程文"])
    assert [name for _, name in leaks] == found
