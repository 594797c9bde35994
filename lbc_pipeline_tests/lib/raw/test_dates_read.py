"""Survey dates in other forms than YYYY-MM-DD, read by the reader with one note per form.

Before, 2021年4月4日 or an Excel serial number were quarantined as unparseable and the
child's age went missing. The forms and rules are those of `lib/staging/dates.py`.
"""

import datetime as dt
from pathlib import Path

import polars as pl
import xlsxwriter

from lbc_pipeline_tests.rows import valid_row
from lbc_pipeline.codebook import load_codebook
from lbc_pipeline.lib.analysis.derive import derive_measures
from lbc_pipeline.lib.raw.reading import read_raw_file
from lbc_pipeline.lib.staging.clean import clean_questionnaires

COLUMNS = [v.name for v in load_codebook().file_variables("questionnaires")]


def write_csv(path: Path, dates: list[str | None]) -> Path:
    rows = [valid_row(f"Q{i}", survey_date=d) for i, d in enumerate(dates, start=1)]
    pl.DataFrame(rows, schema={c: pl.String for c in COLUMNS}).write_csv(path)
    return path


def date_notes(loaded) -> list[tuple]:
    return [(n.column_name, n.delivered, n.read_as, n.note) for n in loaded.notes if n.kind == "date_form"]


def test_chinese_forms_and_serials_in_a_csv_are_read_with_one_note_per_form(tmp_path):
    dates = ["2019年12月10日", "2019年12月1日", "2019.12.10", "2019/12/10", "20191210", "43809", "2019-12-10",
             "2019年12月10日", "２０１９年１２月１０日"]
    path = write_csv(tmp_path / "questionnaires.csv", dates)
    loaded = read_raw_file(path, "questionnaires")
    assert loaded.frame["survey_date"].to_list() == [
        "2019-12-10", "2019-12-01", "2019-12-10", "2019-12-10", "2019-12-10", "2019-12-10", "2019-12-10",
        "2019-12-10", "2019-12-10"]
    assert date_notes(loaded) == [
        ("survey_date", "2019年12月10日", "2019-12-10",
         "4 value(s) of survey_date delivered as Y年M月D日 (e.g. '2019年12月10日') read as YYYY-MM-DD dates"),
        ("survey_date", "2019.12.10", "2019-12-10",
         "1 value(s) of survey_date delivered as Y.M.D (e.g. '2019.12.10') read as YYYY-MM-DD dates"),
        ("survey_date", "2019/12/10", "2019-12-10",
         "1 value(s) of survey_date delivered as Y/M/D (e.g. '2019/12/10') read as YYYY-MM-DD dates"),
        ("survey_date", "20191210", "2019-12-10",
         "1 value(s) of survey_date delivered as YYYYMMDD (e.g. '20191210') read as YYYY-MM-DD dates"),
        ("survey_date", "43809", "2019-12-10", "1 value(s) of survey_date delivered as Excel serial number "
         "(1900 date system) (e.g. '43809') read as YYYY-MM-DD dates"),
    ]
    # the full-width one was NFKC-normalised first (its own note), then read
    assert [n.kind for n in loaded.notes].count("nfkc") == 1
    cleaned = clean_questionnaires(loaded.frame, "t", path.name)
    assert cleaned.quarantine.filter(pl.col("variable") == "survey_date").height == 0
    ages = derive_measures(cleaned.questionnaires)["age"].to_list()
    assert ages == [13] * 9  # born 2006-05, surveyed 2019-12: no age missing


def test_ambiguous_and_unreadable_dates_stay_quarantined_with_the_column(tmp_path):
    """Negative case: nothing is guessed; the values stay as delivered, quarantined."""
    dates = ["04/05/2019", "19.12.10", "2019年2月30日", "12345", "2019-12-10", "-9", None]
    path = write_csv(tmp_path / "questionnaires.csv", dates)
    loaded = read_raw_file(path, "questionnaires")
    assert loaded.frame["survey_date"].to_list() == dates
    assert date_notes(loaded) == []
    quarantine = clean_questionnaires(loaded.frame, "t", path.name).quarantine
    assert quarantine.filter(pl.col("variable") == "survey_date").select("source_row", "raw_value", "rule").rows() == [
        (1, "04/05/2019", "unparseable"), (2, "19.12.10", "unparseable"), (3, "2019年2月30日", "unparseable"),
        (4, "12345", "unparseable")]


def test_a_reference_style_csv_has_no_date_note(tmp_path):
    path = write_csv(tmp_path / "questionnaires.csv", ["2019-12-10", "2019-11-31"])
    loaded = read_raw_file(path, "questionnaires")
    assert loaded.notes == ()
    assert loaded.frame["survey_date"].to_list() == ["2019-12-10", "2019-11-31"]


def write_xlsx(path: Path, dates: list, date1904: bool) -> Path:
    book = xlsxwriter.Workbook(str(path), {"date_1904": date1904})
    sheet = book.add_worksheet("Data")
    as_date = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(0, 0, COLUMNS)
    for r, value in enumerate(dates, start=1):
        row = valid_row(f"Q{r}")
        for c, name in enumerate(COLUMNS):
            if name != "survey_date":
                sheet.write(r, c, row[name])
            elif isinstance(value, dt.date):
                sheet.write_datetime(r, c, dt.datetime.combine(value, dt.time()), as_date)
            else:
                sheet.write(r, c, value)  # a number: a serial typed or pasted without date format
    book.close()
    return path


def test_serial_numbers_in_a_1900_workbook(tmp_path):
    path = write_xlsx(tmp_path / "questionnaires.xlsx", [43809, dt.date(2019, 12, 10), "2019年12月10日"], False)
    loaded = read_raw_file(path, "questionnaires")
    assert loaded.frame["survey_date"].to_list() == ["2019-12-10"] * 3
    assert [(n.delivered, n.note.split(" (e.g.")[0]) for n in loaded.notes] == [
        ("43809", "1 value(s) of survey_date delivered as Excel serial number (1900 date system)"),
        ("2019年12月10日", "1 value(s) of survey_date delivered as Y年M月D日"),
    ]


def test_serial_numbers_in_a_1904_workbook(tmp_path):
    """The workbook says it counts from 1904: its serials are read so; its date cells were already right."""
    path = write_xlsx(tmp_path / "questionnaires.xlsx", [42347, dt.date(2019, 12, 10)], True)
    loaded = read_raw_file(path, "questionnaires")
    assert loaded.frame["survey_date"].to_list() == ["2019-12-10", "2019-12-10"]
    assert [n.note.split(" (e.g.")[0] for n in loaded.notes] == [
        "1 value(s) of survey_date delivered as Excel serial number (1904 date system)"]
    # negative: the same number in a 1900 workbook is another day, four years and a day earlier
    other = write_xlsx(tmp_path / "other.xlsx", [42347], False)
    assert read_raw_file(other, "questionnaires").frame["survey_date"].to_list() == ["2015-12-09"]
