"""Reading interview deliveries: tables and REFI-QDA projects give the same raw tables, and a
hostile or broken file stops with a message that names the file, row and column.

Researchers export from NVivo, ATLAS.ti or MAXQDA either way; if the two routes gave
different tables, the same study would give different results by export format. A `.qdpx`
is XML inside a zip from outside the project: a parser that follows entities could read
local files or never finish.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import polars as pl
import pytest

from lbc_pipeline.lib.qualitative import pipeline
from lbc_pipeline.lib.qualitative.reading import interview_folder, read_interview_folder, read_qdpx
from lbc_pipeline.lib.raw.reading import RawFileError
from lbc_pipeline_tests.lib.qualitative.conftest import DEMO, LOADED_AT, copy_demo

QDPX = DEMO / "interviews.qdpx"


def _project_xml() -> bytes:
    with zipfile.ZipFile(QDPX) as archive:
        return archive.read("project.qde")


def _rezip(path: Path, project: bytes, drop_sources: bool = False) -> Path:
    """The demo .qdpx with project.qde replaced."""
    with zipfile.ZipFile(QDPX) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            if info.filename == "project.qde":
                target.writestr("project.qde", project)
            elif not drop_sources:
                target.writestr(info, source.read(info.filename))
    return path


def test_csv_and_qdpx_give_identical_tables(tmp_path: Path) -> None:
    tables = read_interview_folder(DEMO)
    only_project = tmp_path / "interviews"
    only_project.mkdir()
    (only_project / "interviews.qdpx").write_bytes(QDPX.read_bytes())
    project = read_interview_folder(only_project)
    for table in ("interviews", "segments", "codebook"):
        assert tables.tables[table].equals(project.tables[table]), table
    assert tables.tables["interviews"].height == 41
    assert [f.status for f in tables.files][-1].startswith("not read")  # the .qdpx beside the tables
    assert [f.status for f in project.files] == ["read"]


def test_xlsx_tables_read_like_csv(tmp_path: Path) -> None:
    folder = tmp_path / "interviews"
    folder.mkdir()
    for stem in ("interviews", "segments", "codebook"):
        pl.read_csv(DEMO / f"{stem}.csv", infer_schema=False).write_excel(folder / f"{stem}.xlsx")
    xlsx = read_interview_folder(folder)
    csv = read_interview_folder(DEMO)
    for table in ("interviews", "segments", "codebook"):
        assert xlsx.tables[table].equals(csv.tables[table]), table


def test_a_wave_without_interviews_gives_empty_raw_tables(tmp_path: Path) -> None:
    assert interview_folder(tmp_path) is None
    tables = pipeline.load_interviews(tmp_path, "w", LOADED_AT)
    assert set(tables) == set(pipeline.RAW_TABLES)
    assert all(frame.is_empty() for frame in tables.values())
    assert {"wave", "source_row", "consent"} <= set(tables["raw.interviews"].columns)


def test_missing_consent_column_names_file_and_column(tmp_path: Path) -> None:
    folder = copy_demo(tmp_path / "interviews")
    pl.read_csv(folder / "interviews.csv", infer_schema=False).drop("consent").write_csv(folder / "interviews.csv")
    with pytest.raises(RawFileError) as error:
        read_interview_folder(folder)
    assert error.value.path.name == "interviews.csv" and error.value.column == "consent"
    assert "required column" in str(error.value)


def test_a_ragged_segments_row_is_named(tmp_path: Path) -> None:
    folder = copy_demo(tmp_path / "interviews")
    lines = (folder / "segments.csv").read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3] + ",extra"
    (folder / "segments.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RawFileError) as error:
        read_interview_folder(folder)
    assert (error.value.path.name, error.value.row) == ("segments.csv", 3)


def test_two_of_three_tables_is_an_error(tmp_path: Path) -> None:
    folder = copy_demo(tmp_path / "interviews", keep=("interviews.csv", "segments.csv"))
    with pytest.raises(RawFileError, match="codebook is missing"):
        read_interview_folder(folder)


@pytest.mark.parametrize("payload", [
    b"not a zip at all",  # a text file renamed .qdpx
    QDPX.read_bytes()[:2000],  # a download cut short: no central directory
])
def test_broken_qdpx_zip_is_a_clear_error(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "broken.qdpx"
    path.write_bytes(payload)
    with pytest.raises(RawFileError) as error:
        read_qdpx(path)
    assert error.value.path.name == "broken.qdpx" and "zip" in str(error.value)


def test_damaged_member_is_a_clear_error(tmp_path: Path) -> None:
    data = bytearray(QDPX.read_bytes())
    start = data.find(b"project.qde") + len(b"project.qde")  # first local header's name, then the data
    data[start + 20:start + 60] = b"\x00" * 40
    path = tmp_path / "damaged.qdpx"
    path.write_bytes(bytes(data))
    with pytest.raises(RawFileError) as error:
        read_qdpx(path)
    assert error.value.path.name == "damaged.qdpx"


@pytest.mark.parametrize("doctype, expected", [
    # the classic XXE: an external entity that would read a local file into the project
    (b'<!DOCTYPE Project [<!ENTITY leak SYSTEM "file:///etc/passwd">]>', "external entity"),
    # an external entity over the network
    (b'<!DOCTYPE Project [<!ENTITY leak SYSTEM "http://127.0.0.1:9/x">]>', "external entity"),
    # billion laughs: internal entities that expand without bound
    (b'<!DOCTYPE Project [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>', "an entity"),
    # an external DTD
    (b'<!DOCTYPE Project SYSTEM "http://127.0.0.1:9/project.dtd">', "a DTD"),
])
def test_xml_entities_and_dtds_are_refused(tmp_path: Path, doctype: bytes, expected: str) -> None:
    xml = _project_xml()
    declaration_end = xml.index(b"?>") + 2
    hostile = xml[:declaration_end] + b"\n" + doctype + xml[declaration_end:]
    if b"leak" in doctype:
        hostile = hostile.replace(b"<Description>SYNTHETIC", b"<Description>&leak; SYNTHETIC", 1)
    path = _rezip(tmp_path / "hostile.qdpx", hostile)
    with pytest.raises(RawFileError) as error:
        read_qdpx(path)
    message = str(error.value)
    assert expected in message and "refused" in message and "hostile.qdpx" in message
    assert "root:" not in message  # nothing of /etc/passwd was read


def test_malformed_xml_names_line_and_column(tmp_path: Path) -> None:
    path = _rezip(tmp_path / "bad.qdpx", _project_xml().replace(b"</Users>", b"</User>", 1))
    with pytest.raises(RawFileError, match=r"not well-formed XML at line \d+, column \d+"):
        read_qdpx(path)


def test_a_project_in_another_namespace_is_refused(tmp_path: Path) -> None:
    path = _rezip(tmp_path / "other.qdpx", _project_xml().replace(b"urn:QDA-XML:project:1.0", b"urn:other", 1))
    with pytest.raises(RawFileError, match="not a REFI-QDA"):
        read_qdpx(path)


def test_a_selection_outside_its_transcript_is_named(tmp_path: Path) -> None:
    xml = _project_xml()
    start = xml.index(b'endPosition="') + len(b'endPosition="')
    end = xml.index(b'"', start)
    path = _rezip(tmp_path / "outside.qdpx", xml[:start] + b"999999" + xml[end:])
    with pytest.raises(RawFileError) as error:
        read_qdpx(path)
    assert (error.value.row, error.value.column) == (1, "endPosition")


def test_missing_transcript_is_named(tmp_path: Path) -> None:
    path = _rezip(tmp_path / "nosources.qdpx", _project_xml(), drop_sources=True)
    with pytest.raises(RawFileError, match="not in the archive") as error:
        read_qdpx(path)
    assert error.value.column == "plainTextPath"


def test_an_unresolved_code_reference_is_kept_for_the_quarantine(tmp_path: Path) -> None:
    xml = _project_xml()
    start = xml.index(b'<CodeRef targetGUID="') + len(b'<CodeRef targetGUID="')
    end = xml.index(b'"', start)
    path = _rezip(tmp_path / "dangling.qdpx", xml[:start] + b"00000000-0000-0000-0000-000000000000" + xml[end:])
    segments = read_qdpx(path)["segments"]
    assert segments["code"][0] == "00000000-0000-0000-0000-000000000000"
    assert segments.height == 121


def test_a_project_written_by_hand_is_read(tmp_path: Path) -> None:
    """A minimal REFI-QDA project (PlainTextContent inline, no Variables but the registry's)."""
    ns = "urn:QDA-XML:project:1.0"
    variables = ["informant_code", "role", "school_id", "child_migration_group", "interview_date", "duration_min", "consent"]
    values = ["0601", "child", "S2", "mother", "2019-11-20", "30", "child_and_guardian"]
    var_xml = "".join(f'<Variable guid="00000000-0000-0000-0000-0000000000{i:02d}" name="{v}" typeOfVariable="Text"/>'
                      for i, v in enumerate(variables))
    val_xml = "".join(f'<VariableValue><VariableRef targetGUID="00000000-0000-0000-0000-0000000000{i:02d}"/>'
                      f"<TextValue>{v}</TextValue></VariableValue>" for i, v in enumerate(values))
    xml = (f'<?xml version="1.0" encoding="utf-8"?><Project xmlns="{ns}" name="p"><CodeBook><Codes>'
           '<Code guid="11111111-1111-1111-1111-111111111111" name="peers" isCodable="true">'
           "<Description>hypothesis: H3\nstance: context</Description>"
           '<Code guid="22222222-2222-2222-2222-222222222222" name="peers.no_disclosure" isCodable="true">'
           "<Description>label: Not telling\nhypothesis: H3\nstance: qualifies</Description></Code></Code>"
           f"</Codes></CodeBook><Variables>{var_xml}</Variables><Sources>"
           '<TextSource guid="33333333-3333-3333-3333-333333333333" name="I1">'
           "<PlainTextContent>Q: friends?\nA: I never tell them.</PlainTextContent>"
           '<PlainTextSelection guid="44444444-4444-4444-4444-444444444444" name="I1-S1" startPosition="15" endPosition="33">'
           '<Coding guid="55555555-5555-5555-5555-555555555555"><CodeRef targetGUID="22222222-2222-2222-2222-222222222222"/></Coding>'
           f"</PlainTextSelection>{val_xml}</TextSource></Sources></Project>").encode()
    path = tmp_path / "hand.qdpx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("project.qde", xml)
    frames = read_qdpx(path)
    assert frames["segments"].select("segment_id", "code", "text", "position").row(0) == (
        "I1-S1", "peers.no_disclosure", "I never tell them.", "15-33")
    codebook = frames["codebook"].select("code", "parent_code", "hypothesis", "stance", "label").rows()
    assert codebook == [("peers", None, "H3", "context", None), ("peers.no_disclosure", "peers", "H3", "qualifies", "Not telling")]
    assert frames["interviews"].select("interview_id", "consent").row(0) == ("I1", "child_and_guardian")


def test_a_changed_interview_file_changes_the_delivery_fingerprint(tmp_path: Path, data_env) -> None:
    """The sensor loads a wave again when its fingerprint changes: interviews count."""
    from lbc_pipeline.lib.raw.loading import inspect_delivery
    from lbc_pipeline_tests.lib.qualitative.conftest import REFERENCE

    wave = tmp_path / "2019"
    wave.mkdir()
    for name in ("questionnaires.csv", "distribution.csv", "wave.yaml"):
        (wave / name).write_bytes((REFERENCE / name).read_bytes())
    without = inspect_delivery(wave)
    copy_demo(wave / "interviews")
    with_interviews = inspect_delivery(wave)
    assert "interviews/segments.csv" in with_interviews.files
    assert with_interviews.fingerprint != without.fingerprint
    (wave / "interviews" / "segments.csv").write_text("interview_id,segment_id,code,text\n", encoding="utf-8")
    assert inspect_delivery(wave).changes_since(with_interviews.files).startswith("interviews/segments.csv")


@pytest.mark.parametrize("old, new", [
    (b' isCodable="true"', b""),  # a Code without its required isCodable attribute
    (b"<Users>", b"<Persons>"),  # an element the schema does not know
    (b'typeOfVariable="Integer"', b'typeOfVariable="Number"'),  # a variable type outside the enumeration
])
def test_a_project_that_breaks_the_refi_qda_schema_is_refused(tmp_path: Path, old: bytes, new: bytes) -> None:
    xml = _project_xml()
    if old == b"<Users>":
        xml = xml.replace(b"</Users>", b"</Persons>", 1)
    path = _rezip(tmp_path / "invalid.qdpx", xml.replace(old, new, 1))
    with pytest.raises(RawFileError, match=r"does not follow the REFI-QDA project schema \(Project-mrt2019.xsd\) at line \d+"):
        read_qdpx(path)
