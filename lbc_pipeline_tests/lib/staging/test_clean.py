"""Cleaning: every special code and every data-entry error becomes missing with its reason.

The sample flow must say *why* a value is missing, so each code path is pinned here with a
hand-made row: the value that comes out, the reason kept, and whether it is quarantined.
"""

import polars as pl
import pytest

from lbc_pipeline_tests.rows import valid_row
from lbc_pipeline_tests.helpers import distribution, stage
from lbc_pipeline.lib.staging.clean import clean_distribution
from lbc_pipeline.lib.raw.reading import ROW_COLUMN, RawFileError


@pytest.mark.parametrize(
    ("variable", "raw", "value", "reason", "quarantined"),
    [
        ("belong", "4", 4, None, False),  # a valid answer is kept as an integer
        ("belong", None, None, "not_answered", False),  # empty cell
        ("belong", "-9", None, "refused", False),  # -9 refused / no answer
        ("mother_edu", "-8", None, "dont_know", False),  # -8 don't know, reason kept
        ("custody", "-7", None, "not_applicable", False),  # -7 skipped by design
        ("belong", "7", None, "out_of_range", True),  # keying error: missing + quarantine
        ("belong", "0", None, "out_of_range", True),  # below the range
        ("birth_year", "1889", None, "out_of_range", True),  # integer range, not a code list
        ("siblings", "20", 20, None, False),  # the top of an integer range is valid
        ("belong", "4.0", 4, None, False),  # a float that is an integer (xlsx/sav export)
        ("belong", "4.5", None, "unparseable", True),  # not an integer
        ("belong", "abc", None, "unparseable", True),  # text in a numeric item
        ("survey_date", "2019/12/10", None, "unparseable", True),  # dates are YYYY-MM-DD
        ("survey_date", "-9", None, "refused", False),  # special codes in a date item
    ],
)
def test_each_cell_is_classified(variable, raw, value, reason, quarantined):
    cleaned = stage([valid_row(**{variable: raw})])
    got = cleaned.questionnaires[variable][0]
    if variable == "survey_date" and value is None:
        assert got is None
    else:
        assert got == value
    reasons = cleaned.missing_values.filter(pl.col("variable") == variable)
    if reason is None:
        assert reasons.height == 0
    else:
        assert reasons["reason"].to_list() == [reason]
        assert reasons["raw_value"][0] == raw
    in_quarantine = cleaned.quarantine.filter(pl.col("variable") == variable)
    assert in_quarantine.height == int(quarantined)
    if quarantined:
        assert in_quarantine["raw_value"][0] == raw
        assert in_quarantine["source_row"][0] == 1


def test_all_failures_of_a_file_are_collected():
    rows = [valid_row("A", belong="9", dep1="8"), valid_row("B", grade="13"), valid_row("C")]
    quarantine = stage(rows).quarantine
    assert sorted(zip(quarantine["qid"], quarantine["variable"])) == [("A", "belong"), ("A", "dep1"), ("B", "grade")]
    assert set(quarantine["check"]) >= {"isin([1, 2, 3, 4, 5])", "in_range(1, 12)"}


def test_personal_data_never_reaches_staging():
    questionnaires = stage([valid_row()]).questionnaires
    assert "student_name" not in questionnaires.columns
    assert "student_no" not in questionnaires.columns


def test_identical_duplicates_collapse_and_are_reported():
    rows = [valid_row("A"), valid_row("A"), valid_row("B")]
    cleaned = stage(rows)
    assert cleaned.questionnaires["qid"].to_list() == ["A", "B"]
    assert cleaned.questionnaires["duplicate_status"].to_list() == ["identical_collapsed", "unique"]
    report = cleaned.entry_duplicates.to_dicts()
    assert report == [{"wave": "t", "qid": "A", "kind": "identical", "n_rows": 2, "source_rows": [1, 2], "differing_columns": []}]


def test_conflicting_duplicates_are_one_flagged_questionnaire():
    rows = [valid_row("A"), valid_row("A", belong="2"), valid_row("B")]
    cleaned = stage(rows)
    assert cleaned.questionnaires.height == 2  # "returned" counts distinct qids
    assert cleaned.questionnaires.filter(pl.col("qid") == "A")["duplicate_status"][0] == "conflicting"
    report = cleaned.entry_duplicates.row(0, named=True)
    assert (report["kind"], report["source_rows"], report["differing_columns"]) == ("conflicting", [1, 2], ["belong"])


def test_a_row_without_qid_is_an_error_naming_row_and_column():
    with pytest.raises(RawFileError, match=r"questionnaires.csv, row 2, column 'qid'"):
        stage([valid_row("A"), valid_row(None)])


def test_distribution_is_typed():
    frame = distribution(("S1", "S2"), 50)
    assert frame["distributed"].to_list() == [50, 50]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("distributed", "many", "not a valid distributed"),  # a count must be a number
        ("distributed", "-3", "not a valid distributed"),  # and not negative
        ("school_type", "4", "not a valid school_type"),  # codes from the codebook
    ],
)
def test_distribution_errors_name_row_and_column(column, value, message):
    raw = pl.DataFrame({
        "school_id": ["S1", "S2"], "school_name": ["a", "b"], "school_type": ["1", "2"],
        "school_level": ["1", "2"], "distributed": ["10", "20"],
    }).with_columns(pl.when(pl.int_range(pl.len()) == 1).then(pl.lit(value)).otherwise(pl.col(column)).alias(column))
    raw = raw.with_row_index(ROW_COLUMN, offset=1).with_columns(pl.col(ROW_COLUMN).cast(pl.Int64))
    with pytest.raises(RawFileError, match=rf"row 2, column '{column}': .*{message}"):
        clean_distribution(raw, "t", "distribution.csv")


def test_duplicate_school_is_an_error():
    raw = pl.DataFrame({"school_id": ["S1", "S1"], "school_name": ["a", "b"], "school_type": ["1", "2"],
                        "school_level": ["1", "2"], "distributed": ["10", "20"]})
    raw = raw.with_row_index(ROW_COLUMN, offset=1).with_columns(pl.col(ROW_COLUMN).cast(pl.Int64))
    with pytest.raises(RawFileError, match=r"row 2, column 'school_id': school_id 'S1' is listed more than once \(rows 1, 2\)"):
        clean_distribution(raw, "t", "distribution.csv")
