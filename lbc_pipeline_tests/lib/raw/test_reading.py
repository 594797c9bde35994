"""Reading raw files in every format data entry uses, and failing clearly when one is bad.

Chinese data-entry tools export GBK by default, SPSS files carry value labels, and a file
that cannot be read must say which file, row and column is at fault.
"""

import pandas as pd
import polars as pl
import pyreadstat
import pytest

from lbc_pipeline_tests.rows import valid_row, write_wave
from lbc_pipeline.codebook import load_codebook
from lbc_pipeline.lib.raw.loading import load_folder
from lbc_pipeline.lib.raw.reading import RawFileError, find_raw_file, read_raw_file

COLUMNS = [v.name for v in load_codebook().file_variables("questionnaires")]


def rows() -> list[dict]:
    return [valid_row("Q1"), valid_row("Q2", student_name="朴敏", belong="-9", mother_edu=None)]


def expected_text() -> pl.DataFrame:
    return pl.DataFrame(rows(), schema={c: pl.String for c in COLUMNS})


def csv_text() -> str:
    return expected_text().write_csv()


def numeric_frame() -> pd.DataFrame:
    """The rows as a statistics package stores them: numbers as numbers, text as text."""
    frame = expected_text().to_pandas()
    for var in load_codebook().file_variables("questionnaires"):
        if var.is_numeric:
            frame[var.name] = pd.to_numeric(frame[var.name]).astype("float64")
    return frame


@pytest.mark.parametrize(
    ("encoding", "bom", "detected"),
    [
        ("utf-8", b"", "utf-8"),
        ("utf-8", b"\xef\xbb\xbf", "utf-8-sig"),  # Excel's UTF-8 with BOM
        ("gb18030", b"", "gb18030"),  # GBK-family export with Chinese names
    ],
)
def test_csv_encodings_are_detected(tmp_path, encoding, bom, detected):
    path = tmp_path / "questionnaires.csv"
    path.write_bytes(bom + csv_text().encode(encoding))
    loaded = read_raw_file(path, "questionnaires")
    assert loaded.encoding == detected
    assert loaded.frame["student_name"].to_list() == ["金哲", "朴敏"]
    assert loaded.frame.drop("_row").equals(expected_text())


def test_sav_with_value_labels(tmp_path):
    path = tmp_path / "questionnaires.sav"
    labels = {"gender": {1.0: "boy", 2.0: "girl"}, "belong": {-9.0: "refused", 5.0: "strongly agree"}}
    pyreadstat.write_sav(numeric_frame(), str(path), variable_value_labels=labels)
    loaded = read_raw_file(path, "questionnaires")
    assert loaded.frame.drop("_row").equals(expected_text())
    assert loaded.value_labels["gender"] == {"1": "boy", "2": "girl"}


def test_dta(tmp_path):
    path = tmp_path / "questionnaires.dta"
    pyreadstat.write_dta(numeric_frame(), str(path))
    assert read_raw_file(path, "questionnaires").frame.drop("_row").equals(expected_text())


def test_xlsx(tmp_path):
    path = tmp_path / "questionnaires.xlsx"
    pl.from_pandas(numeric_frame()).write_excel(path)
    assert read_raw_file(path, "questionnaires").frame.drop("_row").equals(expected_text())


def test_parquet(tmp_path):
    path = tmp_path / "questionnaires.parquet"
    pl.from_pandas(numeric_frame()).write_parquet(path)
    assert read_raw_file(path, "questionnaires").frame.drop("_row").equals(expected_text())


def test_headers_match_ignoring_case_and_spaces_and_extras_are_kept(tmp_path):
    text = csv_text().split("\n", 1)
    header = ",".join(f"  {c.upper()} " for c in text[0].split(",")) + ",interviewer"
    body = "\n".join(line + ",W" for line in text[1].strip().split("\n"))
    path = tmp_path / "questionnaires.csv"
    path.write_text(header + "\n" + body + "\n", encoding="utf-8")
    loaded = read_raw_file(path, "questionnaires")
    assert loaded.extra_columns == ("interviewer",)
    assert loaded.frame["interviewer"].to_list() == ["W", "W"]
    assert loaded.frame.columns[1 : len(COLUMNS) + 1] == COLUMNS


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # a required column absent: named
        ("qid,school_id\nQ1,S1\n", r"column 'class_id': required column\(s\) missing: class_id"),
        # a ragged row: file, row and column named
        (None, r"questionnaires.csv, row 2, column 'peer_satisfaction': 36 fields where the header has 37"),
        # bytes that are neither UTF-8 nor GB18030
        (b"qid,school_id\nQ1,\x81\x30\xff\n", r"row 1, column 'school_id': .*neither UTF-8 nor GB18030"),
        ("", "the file is empty"),
    ],
)
def test_unreadable_files_name_file_row_and_column(tmp_path, content, message):
    path = tmp_path / "questionnaires.csv"
    if content is None:
        lines = csv_text().strip().split("\n")
        lines[2] = lines[2].rsplit(",", 1)[0]
        content = "\n".join(lines) + "\n"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(RawFileError, match=message):
        read_raw_file(path, "questionnaires")


def test_two_questionnaire_files_are_refused(tmp_path):
    (tmp_path / "questionnaires.csv").write_text(csv_text())
    (tmp_path / "questionnaires.xlsx").write_text("")
    with pytest.raises(RawFileError, match="more than one questionnaires file"):
        find_raw_file(tmp_path, "questionnaires")


def test_a_wave_folder_reads_with_its_manifest(tmp_path):
    folder = write_wave(tmp_path / "2021", rows(), manifest={"wave": "2021", "expected": {"returned": 2}})
    files = load_folder(folder)
    assert files.manifest.wave == "2021" and files.manifest.expected == {"returned": 2}
    tables = files.raw_tables(pd.Timestamp("2026-01-01").to_pydatetime())
    assert tables["raw.questionnaires"]["student_name"].to_list() == ["金哲", "朴敏"]  # raw keeps everything
    assert tables["raw.load_log"]["rows"].to_list() == [2, 3]


def test_without_manifest_the_folder_names_the_wave(tmp_path):
    folder = write_wave(tmp_path / "2022", rows(), manifest={})
    manifest = load_folder(folder).manifest
    assert (manifest.wave, manifest.has_manifest, manifest.has_fieldwork) == ("2022", False, False)


def test_a_broken_manifest_is_a_clear_error(tmp_path):
    folder = write_wave(tmp_path / "2023", rows())
    (folder / "wave.yaml").write_text("wave: '2023'\nfieldwork: {start: 2020-06-30, end: 2019-11-01}\n")
    with pytest.raises(RawFileError, match=r"wave.yaml: key fieldwork.end: 2019-11-01 is before fieldwork.start 2020-06-30"):
        load_folder(folder)


def test_sav_with_declared_user_missing_codes_keeps_them(tmp_path):
    """SPSS files often declare -9/-8/-7 as user-missing: they must stay codes, not blanks."""
    path = tmp_path / "questionnaires.sav"
    frame = numeric_frame()
    frame.loc[0, "dep1"] = -8.0
    ranges = {name: [-9.0, -8.0, -7.0] for name in ("dep1", "custody", "belong")}
    pyreadstat.write_sav(frame, str(path), missing_ranges=ranges)
    loaded = read_raw_file(path, "questionnaires").frame
    assert loaded["dep1"].to_list() == ["-8", "2"]
    assert loaded["custody"].to_list() == ["-7", "-7"]
    assert loaded["belong"].to_list() == ["4", "-9"]


def test_xlsx_date_cells_read_as_iso_dates(tmp_path):
    path = tmp_path / "questionnaires.xlsx"
    frame = pl.from_pandas(numeric_frame()).with_columns(pl.col("survey_date").str.to_date())
    frame.write_excel(path)
    assert read_raw_file(path, "questionnaires").frame["survey_date"].to_list() == ["2019-12-10"] * 2


@pytest.mark.parametrize(
    ("header_change", "message"),
    [
        (lambda h: h + ",Gender", r"column 'Gender': the header names 'gender' twice"),  # silently renamed otherwise
        (lambda h: h + ",wave", r"column 'wave': column name 'wave' is reserved"),  # the raw layer adds it
    ],
)
def test_ambiguous_or_reserved_headers_are_refused(tmp_path, header_change, message):
    header, body = csv_text().split("\n", 1)
    body = "\n".join(line + ",x" for line in body.strip().split("\n"))
    path = tmp_path / "questionnaires.csv"
    path.write_text(header_change(header) + "\n" + body + "\n")
    with pytest.raises(RawFileError, match=message):
        read_raw_file(path, "questionnaires")


def test_blank_lines_are_not_questionnaires_and_rows_keep_their_numbers(tmp_path):
    header, body = csv_text().split("\n", 1)
    first, second = body.strip().split("\n")
    path = tmp_path / "questionnaires.csv"
    path.write_text("\n".join([header, first, "," * (len(COLUMNS) - 1), second, ""]) + "\n")
    frame = read_raw_file(path, "questionnaires").frame
    assert frame["qid"].to_list() == ["Q1", "Q2"]
    assert frame["_row"].to_list() == [1, 3]
