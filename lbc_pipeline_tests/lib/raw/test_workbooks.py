"""Workbooks of several sheets: every sheet looked at, the data sheets found by their header.

A questionnaires.xlsx whose rows were split over two sheets (400 + 22) was once published
with 400 questionnaires; with the data on sheet 2 behind a cover note, the refusal spoke of
missing columns and never of sheets. Each case below is a small workbook made here.
"""

import datetime as dt
import hashlib
from pathlib import Path

import polars as pl
import pytest
import xlsxwriter

from lbc_pipeline_tests.rows import DISTRIBUTION, valid_row, write_wave
from lbc_pipeline.codebook import load_codebook
from lbc_pipeline.lib.contracts import schema_for
from lbc_pipeline.lib.raw.loading import load_folder
from lbc_pipeline.lib.raw.reading import RawFileError, read_raw_file
from lbc_pipeline.lib.staging.clean import clean_distribution, clean_questionnaires

COLUMNS = [v.name for v in load_codebook().file_variables("questionnaires")]
COVER = [["2021年问卷数据 说明"], ["录入: 张老师"], ["共 422 份"]]


def table(rows: list[dict], columns: list[str] | None = None) -> list[list]:
    """Rows as a sheet's cells: the header, then the values (numbers as numbers)."""
    columns = columns or COLUMNS
    out = [list(columns)]
    for row in rows:
        cells = []
        for name in columns:
            value = row.get(name)
            cells.append(int(value) if value is not None and value.lstrip("-").isdigit() and name not in
                         ("qid", "student_no", "class_id", "school_id") else value)
        out.append(cells)
    return out


def write_workbook(path: Path, sheets: dict[str, list[list] | None], hidden: tuple[str, ...] = (),
                   date1904: bool = False) -> Path:
    book = xlsxwriter.Workbook(str(path), {"date_1904": date1904})
    for name, cells in sheets.items():
        sheet = book.add_worksheet(name)
        if name in hidden:
            sheet.hide()
        for r, values in enumerate(cells or []):
            for c, value in enumerate(values):
                if value is not None:
                    sheet.write(r, c, value)
    book.close()
    return path


def questionnaire_rows(n: int, start: int = 0) -> list[dict]:
    return [valid_row(f"Q{i:04d}") for i in range(start, start + n)]


def notes_of(loaded) -> list[tuple[str, str | None, str]]:
    return [(n.kind, n.delivered, n.note) for n in loaded.notes]


def test_rows_split_over_two_sheets_are_all_read_with_their_sheet_and_row(tmp_path):
    path = write_workbook(tmp_path / "questionnaires.xlsx", {
        "Part 1": table(questionnaire_rows(400)), "Part 2": table(questionnaire_rows(22, start=400))})
    loaded = read_raw_file(path, "questionnaires")
    frame = loaded.frame
    assert frame.height == 422  # not 400: the second sheet is read
    assert frame["qid"].to_list() == [f"Q{i:04d}" for i in range(422)]
    assert frame["_row"].to_list() == list(range(1, 423))  # one number per row of the file
    assert frame["source_sheet"].to_list() == ["Part 1"] * 400 + ["Part 2"] * 22
    assert frame["sheet_row"].to_list() == list(range(1, 401)) + list(range(1, 23))
    assert loaded.extra_columns == ()  # the location columns are the reader's, not extras
    assert notes_of(loaded) == [
        ("sheet_read", "Part 1", "sheet 'Part 1': its data rows 1-400 read as rows 1-400 of the file"),
        ("sheet_read", "Part 2", "sheet 'Part 2': its data rows 1-22 read as rows 401-422 of the file"),
    ]


def test_a_one_sheet_workbook_reads_as_before(tmp_path):
    """Negative case: one sheet, no location columns and no sheet note."""
    path = write_workbook(tmp_path / "questionnaires.xlsx", {"Sheet1": table(questionnaire_rows(3))})
    loaded = read_raw_file(path, "questionnaires")
    assert loaded.frame.columns == ["_row", *COLUMNS]
    assert loaded.frame["_row"].to_list() == [1, 2, 3]
    assert loaded.notes == ()


def test_sheets_reach_the_raw_layer_and_its_read_notes(tmp_path):
    folder = write_wave(tmp_path / "w", questionnaire_rows(2))
    (folder / "questionnaires.csv").unlink()
    write_workbook(folder / "questionnaires.xlsx", {"说明": COVER, "Part 1": table(questionnaire_rows(2)),
                                                    "Part 2": table(questionnaire_rows(1, start=2))})
    tables = load_folder(folder).raw_tables(dt.datetime(2026, 1, 1))
    raw = tables["raw.questionnaires"]
    assert raw.select("source_row", "source_sheet", "sheet_row").rows() == [
        (1, "Part 1", 1), (2, "Part 1", 2), (3, "Part 2", 1)]
    schema_for("raw.questionnaires").validate(raw)
    assert tables["raw.read_notes"]["kind"].to_list() == ["sheet_skipped", "sheet_read", "sheet_read"]
    assert tables["raw.load_log"]["rows"].to_list() == [3, 3]


def test_a_cover_sheet_before_the_data_is_skipped_with_a_note(tmp_path):
    path = write_workbook(tmp_path / "questionnaires.xlsx", {"封面": COVER, "数据": table(questionnaire_rows(5))})
    loaded = read_raw_file(path, "questionnaires")
    assert loaded.frame["qid"].to_list() == [f"Q{i:04d}" for i in range(5)]
    assert loaded.frame["source_sheet"].unique().to_list() == ["数据"]
    assert notes_of(loaded)[0] == (
        "sheet_skipped", "封面", "sheet '封面' skipped: its first row names none of the questionnaires columns "
        "(a cover or notes sheet); its 3 non-empty row(s) are not read")
    assert notes_of(loaded)[1][0] == "sheet_read"


def test_empty_and_hidden_sheets(tmp_path):
    """An empty sheet is skipped with a note; a hidden sheet holding rows is read like the others."""
    path = write_workbook(tmp_path / "questionnaires.xlsx", {
        "A": table(questionnaire_rows(2)), "Empty": None, "Old": table(questionnaire_rows(1, start=2))},
        hidden=("Old",))
    loaded = read_raw_file(path, "questionnaires")
    assert loaded.frame.height == 3
    assert ("sheet_skipped", "Empty", "sheet 'Empty' skipped: it is empty") in notes_of(loaded)
    assert ("sheet_read", "Old", "sheet 'Old' (a hidden sheet): its data rows 1-1 read as rows 3-3 of the file") \
        in notes_of(loaded)


def test_no_sheet_with_the_header_names_every_sheet_and_what_it_lacked(tmp_path):
    partial = table(questionnaire_rows(2), [c for c in COLUMNS if c not in ("class_id", "survey_date")])
    path = write_workbook(tmp_path / "questionnaires.xlsx", {"Cover": COVER, "Data": partial, "Blank": None})
    with pytest.raises(RawFileError) as error:
        read_raw_file(path, "questionnaires")
    assert str(error.value) == (
        "questionnaires.xlsx: no sheet has the questionnaires header (its first row naming every codebook "
        "column: qid, school_id, class_id, survey_date, student_name, student_no and 31 more): sheet 'Cover' "
        "names none of them in its first row; sheet 'Data' lacks class_id, survey_date; sheet 'Blank' is empty; "
        "the header must be the sheet's first row")


def test_one_sheet_lacking_columns_names_the_sheet(tmp_path):
    partial = table(questionnaire_rows(2), [c for c in COLUMNS if c != "class_id"])
    path = write_workbook(tmp_path / "questionnaires.xlsx", {"Sheet1": partial})
    with pytest.raises(RawFileError, match=r"^questionnaires.xlsx, sheet 'Sheet1', column 'class_id': "
                       r"required column\(s\) missing: class_id$"):
        read_raw_file(path, "questionnaires")


def test_sheets_whose_headers_disagree_are_refused_naming_them(tmp_path):
    with_extra = table(questionnaire_rows(2, start=400), [*COLUMNS, "interviewer"])
    path = write_workbook(tmp_path / "questionnaires.xlsx", {
        "Part 1": table(questionnaire_rows(4)), "Part 2": with_extra})
    with pytest.raises(RawFileError) as error:
        read_raw_file(path, "questionnaires")
    assert str(error.value) == (
        "questionnaires.xlsx, sheet 'Part 2', column 'interviewer': sheets 'Part 1' and 'Part 2' both hold "
        "questionnaires rows but their headers disagree (sheet 'Part 2': it has interviewer that sheet "
        "'Part 1' has not); give them the same columns, or deliver one sheet")


def test_a_data_like_sheet_lacking_columns_beside_the_data_is_refused(tmp_path):
    """Skipping it would drop its rows: a sheet naming some codebook columns is data, not a cover."""
    short = table(questionnaire_rows(22, start=400), COLUMNS[:10])
    path = write_workbook(tmp_path / "questionnaires.xlsx", {"Part 1": table(questionnaire_rows(4)), "Part 2": short})
    with pytest.raises(RawFileError, match=(
            r"^questionnaires.xlsx, sheet 'Part 2', column 'siblings': the questionnaires header is on sheet "
            r"'Part 1', but sheet 'Part 2' has a header that disagrees \(it names qid, school_id, class_id, "
            r"survey_date, student_name, student_no and 4 more but lacks siblings, ethnicity, .*\): its rows "
            r"would not be read")):
        read_raw_file(path, "questionnaires")


def test_headers_in_another_case_or_order_agree(tmp_path):
    second = table(questionnaire_rows(2, start=10), list(reversed(COLUMNS)))
    second[0] = [f" {c.upper()}" for c in second[0]]
    path = write_workbook(tmp_path / "questionnaires.xlsx", {"A": table(questionnaire_rows(2)), "B": second})
    frame = read_raw_file(path, "questionnaires").frame
    assert frame["qid"].to_list() == ["Q0000", "Q0001", "Q0010", "Q0011"]
    assert frame.drop("_row", "source_sheet", "sheet_row").columns == COLUMNS


def test_a_header_naming_a_column_twice_is_refused_with_its_sheet(tmp_path):
    cells = table(questionnaire_rows(1), [*COLUMNS, "Gender"])
    path = write_workbook(tmp_path / "questionnaires.xlsx", {"Cover": COVER, "Data": cells})
    with pytest.raises(RawFileError, match=r"sheet 'Data', column 'Gender': the header names 'gender' twice"):
        read_raw_file(path, "questionnaires")


def test_staging_errors_name_sheet_row_and_column(tmp_path):
    second = questionnaire_rows(3, start=400)
    second[2]["qid"] = None
    path = write_workbook(tmp_path / "questionnaires.xlsx", {"Part 1": table(questionnaire_rows(4)),
                                                             "Part 2": table(second)})
    loaded = read_raw_file(path, "questionnaires")
    with pytest.raises(RawFileError, match=r"^questionnaires.xlsx, sheet 'Part 2', row 3, column 'qid': qid is empty"):
        clean_questionnaires(loaded.frame, "t", path.name)


def test_a_nul_in_a_cell_names_its_sheet_and_row(tmp_path):
    second = questionnaire_rows(2, start=400)
    second[1]["class_id"] = "7-\x002"
    path = write_workbook(tmp_path / "questionnaires.xlsx", {"Part 1": table(questionnaire_rows(3)),
                                                             "Part 2": table(second)})
    with pytest.raises(RawFileError, match=r"sheet 'Part 2', row 2, column 'class_id': a NUL byte"):
        read_raw_file(path, "questionnaires")


def test_the_same_questionnaire_on_two_sheets_is_an_identical_duplicate(tmp_path):
    """The sheet a row sits on is no part of its content: the row keyed twice collapses."""
    path = write_workbook(tmp_path / "questionnaires.xlsx", {"A": table(questionnaire_rows(2)),
                                                             "B": table(questionnaire_rows(1, start=1))})
    cleaned = clean_questionnaires(read_raw_file(path, "questionnaires").frame, "t", path.name)
    report = cleaned.entry_duplicates.row(0, named=True)
    assert (report["qid"], report["kind"], report["source_rows"]) == ("Q0001", "identical", [2, 3])
    assert cleaned.questionnaires.height == 2


def distribution_cells(rows: list[dict]) -> list[list]:
    columns = list(rows[0])
    return [columns, *[[int(r[c]) if r[c].isdigit() else r[c] for c in columns] for r in rows]]


def test_a_distribution_workbook_with_a_notes_sheet(tmp_path):
    path = write_workbook(tmp_path / "distribution.xlsx", {
        "说明": [["学校问卷发放数"]], "Schools": distribution_cells(DISTRIBUTION[:2]),
        "More": distribution_cells(DISTRIBUTION[2:])})
    loaded = read_raw_file(path, "distribution")
    assert loaded.frame["school_id"].to_list() == ["S1", "S2", "S3"]
    assert [n.kind for n in loaded.notes] == ["sheet_skipped", "sheet_read", "sheet_read"]
    assert clean_distribution(loaded.frame, "t", path.name)["distributed"].to_list() == [40, 60, 60]


def test_distribution_errors_name_the_sheet(tmp_path):
    bad = [dict(DISTRIBUTION[2], distributed="many")]
    path = write_workbook(tmp_path / "distribution.xlsx", {"Schools": distribution_cells(DISTRIBUTION[:2]),
                                                           "More": distribution_cells(bad)})
    loaded = read_raw_file(path, "distribution")
    with pytest.raises(RawFileError, match=r"^distribution.xlsx, sheet 'More', row 1, column 'distributed': "
                       r"'many' is not a valid distributed"):
        clean_distribution(loaded.frame, "t", path.name)
    doubled = [dict(DISTRIBUTION[1])]
    path = write_workbook(tmp_path / "distribution.xlsx", {"Schools": distribution_cells(DISTRIBUTION[:2]),
                                                           "More": distribution_cells(doubled)})
    with pytest.raises(RawFileError, match=r"^distribution.xlsx, sheet 'More', row 1, column 'school_id': school_id "
                       r"'S2' is listed more than once \(rows sheet 'Schools' row 2, sheet 'More' row 1\)"):
        clean_distribution(read_raw_file(path, "distribution").frame, "t", path.name)


def test_a_distribution_workbook_without_its_header(tmp_path):
    path = write_workbook(tmp_path / "distribution.xlsx", {"Notes": [["学校问卷发放数"]], "Other": [["a", "b"], [1, 2]]})
    with pytest.raises(RawFileError, match=r"^distribution.xlsx: no sheet has the distribution header .*sheet 'Notes' "
                       r"names none of them in its first row; sheet 'Other' names none of them"):
        read_raw_file(path, "distribution")


def test_blank_rows_inside_a_sheet_keep_the_row_numbers(tmp_path):
    cells = table(questionnaire_rows(2))
    cells.insert(2, [None] * len(COLUMNS))
    path = write_workbook(tmp_path / "questionnaires.xlsx", {"A": cells, "B": table(questionnaire_rows(1, start=5))})
    frame = read_raw_file(path, "questionnaires").frame
    assert frame.select("_row", "source_sheet", "sheet_row").rows() == [(1, "A", 1), (3, "A", 3), (4, "B", 1)]


def test_the_digest_is_the_workbooks(tmp_path):
    path = write_workbook(tmp_path / "questionnaires.xlsx", {"A": table(questionnaire_rows(1))})
    loaded = read_raw_file(path, "questionnaires")
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_wave_split_over_sheets_passes_validation_whole(data_env):
    from lbc_pipeline_tests.rows import varied_rows
    from lbc_pipeline.lib.raw.validation import validate_delivery

    rows = varied_rows(60)
    folder = write_wave(data_env / "raw" / "2031", rows, wave="2031")
    (folder / "questionnaires.csv").unlink()
    write_workbook(folder / "questionnaires.xlsx", {"封面": COVER, "一": table(rows[:40]), "二": table(rows[40:])})
    validated = validate_delivery(folder, "2031")
    assert validated.returned == 60  # every row of both sheets
