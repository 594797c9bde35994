"""Hostile deliveries: every kind a careless or hostile sender could produce, with its outcome.

Each case starts from a good delivery (wave 2031, 40 analysable children) and breaks one
thing. The outcome is either a refusal (`RawFileError`, one line naming the file and, where
there is one, the row and column) or an acceptance with what the reader changed recorded
in its notes (`raw.read_notes`). No message may quote the file's content beyond the
offending cell: a marker planted in other cells must never appear.

`test_refusals_leave_the_warehouse_as_it_was` then runs the main job on a subset of the
refusals as re-deliveries of a wave already loaded: the warehouse, the wave's outputs and
the files outside the data folder are unchanged, and raw.rejected_files gains one row each.
`HOSTILE_CASES` is the table docs/refusals.md summarises.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pandas as pd
import polars as pl
import pyreadstat
import pytest

from lbc_pipeline.codebook import load_codebook
from lbc_pipeline.lib.raw.reading import MAX_CELL_CHARS, RawFileError
from lbc_pipeline.lib.raw.validation import validate_delivery
from lbc_pipeline_tests.rows import DISTRIBUTION, varied_rows, write_wave

WAVE = "2031"
SECRET = "SECRET-MARKER"  # planted in a cell that is never the offending one
COLUMNS = [v.name for v in load_codebook().file_variables("questionnaires")]


def good_rows() -> list[dict]:
    rows = varied_rows(40, seed=2)
    rows[0]["student_name"] = SECRET
    return rows


def write_good(folder: Path) -> Path:
    schools = [dict(s, distributed="100") for s in DISTRIBUTION]
    return write_wave(folder, good_rows(), wave=WAVE, distribution=schools)


def q(folder: Path) -> Path:
    return folder / "questionnaires.csv"


def lines(folder: Path) -> list[str]:
    return q(folder).read_text(encoding="utf-8").splitlines()


def put_lines(folder: Path, new: list[str], end: str = "\n") -> None:
    q(folder).write_bytes((end.join(new) + end).encode("utf-8"))


def set_cell(folder: Path, row: int, column: str, value: str) -> None:
    """Row `row` (1 = first data row) of the questionnaires csv gets `value` in `column`."""
    frame = pl.read_csv(q(folder), infer_schema=False)
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == row - 1).then(pl.lit(value)).otherwise(pl.col(column)).alias(column))
    frame.write_csv(q(folder))


def numeric_pandas(folder: Path) -> pd.DataFrame:
    frame = pl.read_csv(q(folder), infer_schema=False).to_pandas()
    for var in load_codebook().file_variables("questionnaires"):
        if var.is_numeric:
            frame[var.name] = pd.to_numeric(frame[var.name]).astype("float64")
    return frame


# --------------------------------------------------------------------------- the cases
def manifest(text: str):
    def build(folder: Path, tmp: Path) -> None:
        (folder / "wave.yaml").write_text(text, encoding="utf-8")
    return build


def claimed(folder: Path, tmp: Path) -> None:
    other = tmp / "data" / "raw" / "older"
    write_good(other)


def symlink_outside(folder: Path, tmp: Path) -> None:
    outside = tmp / "elsewhere" / "secret.csv"
    outside.parent.mkdir(exist_ok=True)
    shutil.copy(q(folder), outside)
    q(folder).unlink()
    q(folder).symlink_to(outside)


def manifest_symlink_outside(folder: Path, tmp: Path) -> None:
    outside = tmp / "elsewhere" / "other.yaml"
    outside.parent.mkdir(exist_ok=True)
    outside.write_text(f"wave: '{SECRET}'\n")
    (folder / "wave.yaml").unlink()
    (folder / "wave.yaml").symlink_to(outside)


def manifest_fifo(folder: Path, tmp: Path) -> None:
    (folder / "wave.yaml").unlink()
    os.mkfifo(folder / "wave.yaml")


def symlink_inside(folder: Path, tmp: Path) -> None:
    q(folder).rename(folder / "q_2031_final.dat")
    q(folder).symlink_to(folder / "q_2031_final.dat")


def directory(folder: Path, tmp: Path) -> None:
    q(folder).unlink()
    q(folder).mkdir()


def fifo(folder: Path, tmp: Path) -> None:
    q(folder).unlink()
    os.mkfifo(q(folder))


def ragged(folder: Path, tmp: Path) -> None:
    text = lines(folder)
    text[2] = text[2].rsplit(",", 1)[0]
    put_lines(folder, text)


def big_cell(size: int):
    def build(folder: Path, tmp: Path) -> None:
        text = lines(folder)
        text[0] += ",comment"
        text[1:] = [line + "," for line in text[1:]]
        text[3] += "x" * size
        put_lines(folder, text)
    return build


def cr_only(folder: Path, tmp: Path) -> None:
    put_lines(folder, lines(folder), end="\r")


def trailing_comma_everywhere(folder: Path, tmp: Path) -> None:
    put_lines(folder, [line + "," for line in lines(folder)])


def trailing_comma_data_lines(folder: Path, tmp: Path) -> None:
    text = lines(folder)
    put_lines(folder, text[:1] + [line + "," for line in text[1:]])


def empty_header(folder: Path, tmp: Path) -> None:
    text = lines(folder)
    header = text[0].split(",")
    header.insert(5, "")
    text[0] = ",".join(header)
    text[1:] = [",".join(line.split(",")[:5] + ["x"] + line.split(",")[5:]) for line in text[1:]]
    put_lines(folder, text)


def utf16(bom: bool):
    def build(folder: Path, tmp: Path) -> None:
        text = q(folder).read_text(encoding="utf-8")
        q(folder).write_bytes(text.encode("utf-16") if bom else text.encode("utf-16-le"))
    return build


def nul_in_qid(folder: Path, tmp: Path) -> None:
    set_cell(folder, 4, "qid", "Q00\x0003")


def bad_utf8_byte(folder: Path, tmp: Path) -> None:
    data = q(folder).read_bytes()
    marker = "Q0005".encode()
    at = data.index(marker)
    q(folder).write_bytes(data[:at] + b"Q\xff005" + data[at + len(marker):])


def full_width(folder: Path, tmp: Path) -> None:
    set_cell(folder, 2, "belong", "３")
    set_cell(folder, 3, "dep1", "－９")
    set_cell(folder, 4, "qid", "\u3000Ｑ0003\u3000")


def qid_case_variant(folder: Path, tmp: Path) -> None:
    set_cell(folder, 5, "qid", "q0002")


def stata_missing(folder: Path, tmp: Path) -> None:
    frame = numeric_pandas(folder)
    frame["dep1"] = frame["dep1"].astype(object)
    frame.loc[0, "dep1"], frame.loc[1, "dep1"], frame.loc[2, "dep1"] = "a", "b", "d"
    pyreadstat.write_dta(frame, str(folder / "questionnaires.dta"), missing_user_values={"dep1": ["a", "b", "d"]},
                         variable_value_labels={"dep1": {"a": "refused"}})
    q(folder).unlink()


def spss_user_missing(folder: Path, tmp: Path) -> None:
    frame = numeric_pandas(folder)
    frame.loc[0, "dep1"] = 99.0
    pyreadstat.write_sav(frame, str(folder / "questionnaires.sav"), missing_ranges={"dep1": [99.0]},
                         variable_value_labels={"dep1": {99.0: "Refused to answer"}})
    q(folder).unlink()


def negative_count(folder: Path, tmp: Path) -> None:
    text = (folder / "distribution.csv").read_text().splitlines()
    text[2] = text[2].rsplit(",", 1)[0] + ",-5"
    (folder / "distribution.csv").write_text("\n".join(text) + "\n")


def huge_bad_count(folder: Path, tmp: Path) -> None:
    text = (folder / "distribution.csv").read_text().splitlines()
    text[1] = text[1].rsplit(",", 1)[0] + "," + "9" * 10 + SECRET * 1000
    (folder / "distribution.csv").write_text("\n".join(text) + "\n")


def header_only(folder: Path, tmp: Path) -> None:
    put_lines(folder, lines(folder)[:1])


def all_invalid(folder: Path, tmp: Path) -> None:
    frame = pl.read_csv(q(folder), infer_schema=False).with_columns(pl.lit("S9").alias("school_id"))
    frame.write_csv(q(folder))


def empty_file(folder: Path, tmp: Path) -> None:
    q(folder).write_bytes(b"")


def garbage_xlsx(folder: Path, tmp: Path) -> None:
    q(folder).unlink()
    (folder / "questionnaires.xlsx").write_bytes(b"PK\x03\x04" + SECRET.encode() * 20)


def two_files(folder: Path, tmp: Path) -> None:
    shutil.copy(q(folder), folder / "questionnaires.parquet")


def missing_column(folder: Path, tmp: Path) -> None:
    frame = pl.read_csv(q(folder), infer_schema=False).drop("class_id")
    frame.write_csv(q(folder))


def doubled_header(folder: Path, tmp: Path) -> None:
    frame = pl.read_csv(q(folder), infer_schema=False).with_columns(pl.col("gender").alias("Gender"))
    frame.write_csv(q(folder))


def manifest_not_utf8(folder: Path, tmp: Path) -> None:
    (folder / "wave.yaml").write_bytes("wave: '2031'\ndescription: 第一\n".encode("gb18030"))


def unreadable_manifest_folder_name(folder: Path, tmp: Path) -> None:
    (folder / "wave.yaml").unlink()


def no_distribution(folder: Path, tmp: Path) -> None:
    (folder / "distribution.csv").unlink()


def school_twice(folder: Path, tmp: Path) -> None:
    text = (folder / "distribution.csv").read_text().splitlines()
    (folder / "distribution.csv").write_text("\n".join(text + [text[1]]) + "\n")


REFUSED, ACCEPTED = "refused", "accepted"

# (case id, how to break the good delivery, outcome, message regex or what the reader notes)
HOSTILE_CASES = [
    ("manifest_invalid_yaml", manifest("wave: '2031'\n  x: [\n"), REFUSED, r"wave\.yaml: not valid YAML at line 2"),
    ("manifest_list_shaped", manifest("- wave: '2031'\n"), REFUSED, r"wave\.yaml: expected a mapping .* got a list"),
    ("manifest_count_not_integer", manifest("wave: '2031'\nexpected: {valid: many}\n"), REFUSED,
     r"wave\.yaml: key expected\.valid: 'many' is not a whole number"),
    ("manifest_fieldwork_reversed", manifest("wave: '2031'\nfieldwork: {start: 2020-06-30, end: 2019-11-01}\n"),
     REFUSED, r"wave\.yaml: key fieldwork\.end: 2019-11-01 is before fieldwork\.start 2020-06-30"),
    ("manifest_not_utf8", manifest_not_utf8, REFUSED, r"wave\.yaml: not UTF-8 text"),
    ("wave_id_traversal", manifest("wave: '../../x'\n"), REFUSED, r"wave\.yaml: key wave: wave id '\.\./\.\./x' may hold only"),
    ("wave_id_absolute", manifest("wave: /tmp/x\n"), REFUSED, r"key wave: wave id '/tmp/x' may hold only"),
    ("wave_id_empty", manifest("wave: ''\n"), REFUSED, r"key wave: the wave id is empty"),
    ("wave_id_dot", manifest("wave: .hidden\n"), REFUSED, r"may not start with a dot"),
    ("wave_id_list", manifest("wave: [1, 2]\n"), REFUSED, r"key wave: the wave id must be text, got list"),
    ("wave_id_claimed", claimed, REFUSED, r"wave id '2031' is already delivered in .*older"),
    ("symlink_outside", symlink_outside, REFUSED, r"questionnaires\.csv: is a symbolic link to a file outside the wave folder"),
    ("symlink_inside", symlink_inside, ACCEPTED, "symlink"),
    ("manifest_symlink_outside", manifest_symlink_outside, REFUSED,
     r"wave\.yaml: is a symbolic link to a file outside the wave folder"),
    ("manifest_fifo", manifest_fifo, REFUSED, r"wave\.yaml: not a regular file"),
    ("directory_named_like_data", directory, REFUSED, r"questionnaires\.csv: is a folder, not a file"),
    ("fifo_named_like_data", fifo, REFUSED, r"questionnaires\.csv: is a named pipe \(FIFO\)"),
    ("ragged_row", ragged, REFUSED, r"questionnaires\.csv, row 2, column 'peer_satisfaction': 36 fields where the header has 37"),
    ("cell_over_128_KiB", big_cell(200 * 1024), ACCEPTED, None),
    ("cell_over_1_MiB", big_cell(MAX_CELL_CHARS + 1), REFUSED,
     r"questionnaires\.csv, row 3, column 'comment': a cell of 1,048,577 characters is longer than the 1,048,576"),
    ("cr_only_line_endings", cr_only, ACCEPTED, "line_endings"),
    ("trailing_comma_every_line", trailing_comma_everywhere, REFUSED, r"every line ends with a comma"),
    ("trailing_comma_data_lines", trailing_comma_data_lines, REFUSED,
     r"row 1, column 'peer_satisfaction': 38 fields .* remove the trailing comma"),
    ("empty_header_name", empty_header, REFUSED, r"the header has an empty column name \(after column 'student_name', position 6\)"),
    ("utf16_with_bom", utf16(True), ACCEPTED, None),
    ("utf16_without_bom", utf16(False), REFUSED, r"looks like UTF-16 without a byte-order mark"),
    ("nul_byte_in_qid", nul_in_qid, REFUSED, r"questionnaires\.csv, row 4, column 'qid': a NUL byte"),
    ("bad_utf8_byte", bad_utf8_byte, REFUSED, r"questionnaires\.csv, row 6, column 'qid': bytes .* neither UTF-8 nor GB18030"),
    ("full_width_digits_signs_spaces", full_width, ACCEPTED, "nfkc"),
    ("qid_case_variant", qid_case_variant, ACCEPTED, "qid_variant"),
    ("stata_extended_missing", stata_missing, ACCEPTED, "stata_extended_missing"),
    ("spss_user_missing", spss_user_missing, ACCEPTED, "spss_user_missing"),
    ("negative_count", negative_count, REFUSED, r"distribution\.csv, row 2, column 'distributed': '-5' is not a valid distributed"),
    # the offending cell itself is quoted only up to 40 characters
    ("huge_invalid_cell_truncated", huge_bad_count, REFUSED,
     r"distribution\.csv, row 1, column 'distributed': '9999999999SECRET-MARKERSECRET-MARKERSEC\.\.\. \(13010 characters\) is not"),
    ("school_listed_twice", school_twice, REFUSED, r"distribution\.csv, row 4, column 'school_id': school_id 'S1' is listed more than once"),
    ("header_only", header_only, REFUSED, r"questionnaires\.csv: the file has a header but no questionnaires rows"),
    ("all_rows_invalid", all_invalid, REFUSED, r"questionnaires\.csv: none of the 40 questionnaires is valid"),
    ("empty_file", empty_file, REFUSED, r"questionnaires\.csv: the file is empty"),
    ("garbage_xlsx", garbage_xlsx, REFUSED, r"questionnaires\.xlsx: not a readable xlsx workbook"),
    ("two_questionnaire_files", two_files, REFUSED, r"more than one questionnaires file"),
    ("required_column_missing", missing_column, REFUSED, r"column 'class_id': required column\(s\) missing: class_id"),
    ("header_named_twice", doubled_header, REFUSED, r"column 'Gender': the header names 'gender' twice"),
    ("no_distribution_file", no_distribution, REFUSED, r"no distribution file in"),
]


@pytest.fixture
def env(data_env, monkeypatch, tmp_path):
    incoming = data_env / "incoming"
    incoming.mkdir()
    monkeypatch.setenv("LBC_INCOMING_DIR", str(incoming))
    return tmp_path


@pytest.mark.parametrize("case, build, outcome, expected", HOSTILE_CASES, ids=[c[0] for c in HOSTILE_CASES])
def test_hostile_delivery(env, case, build, outcome, expected):
    folder = write_good(env / "data" / "incoming" / WAVE)
    build(folder, env)
    signal.alarm(30)  # a FIFO opened by mistake would block forever: fail instead
    try:
        if outcome == REFUSED:
            with pytest.raises(RawFileError) as caught:
                validate_delivery(folder)
            message = str(caught.value)
            print(f"CASE {case}: {message}")
            if case != "huge_invalid_cell_truncated":  # there the marker IS the offending cell
                assert SECRET not in message  # nothing of the file beyond the offending cell
            assert len(message) < 400
            assert "\n" not in message and "Traceback" not in message
            import re
            assert re.search(expected, message), message
        else:
            validated = validate_delivery(folder)
            notes = [n for f in (validated.files.questionnaires, validated.files.distribution) for n in f.notes]
            if expected:
                assert expected in {n.kind for n in notes}, notes
            assert validated.returned >= 39 and validated.valid > 0
            check_accepted(case, validated)
    finally:
        signal.alarm(0)


def check_accepted(case: str, validated) -> None:
    """What each accepted case must have read (beyond 'no error')."""
    frame = validated.files.questionnaires.frame
    cell = lambda row, column: frame.filter(pl.col("_row") == row)[column].item()  # noqa: E731
    if case == "full_width_digits_signs_spaces":
        assert (cell(2, "belong"), cell(3, "dep1"), cell(4, "qid")) == ("3", "-9", "Q0003")
    elif case == "qid_case_variant":
        assert cell(5, "qid") == "Q0002"  # the first spelling: staging sees a duplicate
    elif case == "stata_extended_missing":
        assert [cell(r, "dep1") for r in (1, 2, 3)] == ["-9", "-8", ".d"]
    elif case == "spss_user_missing":
        assert cell(1, "dep1") == "-9"
    elif case == "utf16_with_bom":
        assert validated.files.questionnaires.encoding == "utf-16" and cell(1, "student_name") == SECRET
    elif case == "cell_over_128_KiB":
        assert len(cell(3, "comment")) == 200 * 1024
    elif case in ("cr_only_line_endings", "symlink_inside"):
        assert frame.height == 40 and cell(40, "qid") == "Q0039"


def test_qid_variants_reach_staging_as_duplicates(env):
    from lbc_pipeline.lib.staging.clean import clean_questionnaires

    folder = write_good(env / "data" / "incoming" / WAVE)
    qid_case_variant(folder, env)
    files = validate_delivery(folder).files
    duplicates = clean_questionnaires(files.questionnaires.frame, WAVE, "questionnaires.csv").entry_duplicates
    assert "Q0002" in duplicates["qid"].to_list()


# --------------------------------------------------------------------------- the job
JOB_CASES = ["negative_count", "symlink_outside", "nul_byte_in_qid", "wave_id_traversal", "all_rows_invalid",
             "header_only", "fifo_named_like_data"]


def _snapshot(data: Path, outside: Path) -> dict[str, str]:
    """Digests of what consumers see (the serving file and the published files) and of the
    files outside the data folder. The restricted tier (the wave's working database and
    files, where a refused run's raw step records the refusal) is left out: it is never
    published, and the next run of the wave starts it anew."""
    from lbc_pipeline.lib.io.fingerprint import file_digests, table_digests

    tables = table_digests(data / "warehouse" / "lbc.duckdb")
    return {**{f"table {k}": v for k, v in tables.items()},
            **{f"data/{k}": v for k, v in file_digests(data).items()
               if not k.startswith(("raw/", "warehouse/", "restricted/"))},
            **{f"outside/{k}": v for k, v in file_digests(outside).items()}}


def test_refusals_leave_the_warehouse_as_it_was(env):
    """A good wave loaded, then re-delivered broken in each way of JOB_CASES: every run fails
    at the raw step, nothing of the warehouse or of the wave's outputs changes, nothing is
    written outside the data folder, and raw.rejected_files gains one row per refusal."""
    import duckdb
    from dagster import DagsterInstance

    from lbc_pipeline.definitions import defs

    data = env / "data"
    folder = write_good(data / "raw" / WAVE)
    pristine = env / "pristine"
    shutil.copytree(folder, pristine)
    outside = env / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("unchanged")
    run_config = {"resources": {"quality_config": {"config": {"min_group_size": 3}}}}
    job = defs.resolve_job_def("lbc_main_job")
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("wave", [WAVE])
        first = job.execute_in_process(instance=instance, partition_key=WAVE, raise_on_error=False, run_config=run_config)
        assert first.success
        before = _snapshot(data, outside)
        assert any(k.startswith("data/reports/") for k in before)
        builders = {c[0]: c[1] for c in HOSTILE_CASES}
        for number, case in enumerate(JOB_CASES, start=1):
            shutil.rmtree(folder)
            shutil.copytree(pristine, folder)
            builders[case](folder, env)
            signal.alarm(60)
            try:
                run = job.execute_in_process(instance=instance, partition_key=WAVE, raise_on_error=False,
                                             run_config=run_config)
            finally:
                signal.alarm(0)
            assert not run.success, case
            failed = [e.step_key for e in run.all_events if e.event_type_value == "STEP_FAILURE"]
            # the survey's raw step refuses it; the interview strand's loader reads the same
            # manifest and may refuse it too; nothing else runs
            assert "load_raw_wave" in failed and set(failed) <= {"load_raw_wave", "load_interviews"}, (case, failed)
            assert _snapshot(data, outside) == before, case
            with duckdb.connect(str(data / "restricted" / "waves" / WAVE / "work.duckdb"), read_only=True) as con:
                assert con.execute("select count(*) from raw.rejected_files").fetchone()[0] == number, case
        # wave_id_traversal: '../../x' from data/artifacts/<wave> or data/reports/<wave> is never made
        assert not (env / "x").exists() and not (data / "x").exists()
        # an accepted re-delivery with full-width characters: what the reader changed is queryable
        shutil.rmtree(folder)
        shutil.copytree(pristine, folder)
        full_width(folder, env)
        assert job.execute_in_process(instance=instance, partition_key=WAVE, raise_on_error=False,
                                      run_config=run_config).success
    with duckdb.connect(str(data / "restricted" / "waves" / WAVE / "work.duckdb"), read_only=True) as con:
        notes = con.execute("select source_row, column_name, kind, delivered, read_as from raw.read_notes "
                            "where wave = ? order by source_row", [WAVE]).fetchall()
    with duckdb.connect(str(data / "warehouse" / "lbc.duckdb"), read_only=True) as con:
        belong = con.execute("select belong from staging.questionnaires where wave = ? and source_row = 2",
                             [WAVE]).fetchone()
    assert notes == [(2, "belong", "nfkc", "３", "3"), (3, "dep1", "nfkc", "－９", "-9"),
                     (4, "qid", "nfkc", "\u3000Ｑ0003\u3000", " Q0003 ")]
    assert belong == (3,)


def test_one_broken_folder_does_not_stop_the_sensor(env, monkeypatch):
    """A good delivery beside a refused one and one whose validation crashes is still run."""
    from dagster import DagsterInstance, SensorResult, build_sensor_context

    from lbc_pipeline import sensors
    from lbc_pipeline.lib.raw import loading
    from lbc_pipeline.definitions import defs

    incoming = env / "data" / "incoming"
    write_good(incoming / WAVE)
    broken = write_good(incoming / "2032")
    manifest("wave: '2032'\n")(broken, env)
    negative_count(broken, env)
    crashing = write_good(incoming / "2033")
    manifest("wave: '2033'\n")(crashing, env)
    piped = write_good(incoming / "2034")  # a FIFO would hang a tick that opened it
    manifest("wave: '2034'\n")(piped, env)
    fifo(piped, env)
    real = loading.inspect_delivery

    def inspect(folder):
        if folder.name == "2033":
            raise MemoryError("simulated")
        return real(folder)

    monkeypatch.setattr(loading, "inspect_delivery", inspect)
    signal.alarm(60)
    try:
        with DagsterInstance.ephemeral() as instance:
            result = sensors.incoming_waves(build_sensor_context(instance=instance, definitions=defs))
    finally:
        signal.alarm(0)
    assert isinstance(result, SensorResult)
    skipped = sensors.scan_incoming({}).skipped
    assert [reason.split(":", 1)[0] for reason in skipped] == ["2032", "2033", "2034"]
    assert "2032: distribution.csv, row 2, column 'distributed': '-5'" in skipped[0]
    assert "could not be validated (MemoryError: simulated)" in skipped[1]
    assert "questionnaires.csv: is a named pipe (FIFO)" in skipped[2]
    assert [r.partition_key for r in result.run_requests] == [WAVE]
    assert result.dynamic_partitions_requests[0].partition_keys == [WAVE]
