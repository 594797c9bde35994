"""The synthetic-wave generator: reproducible, readable in every format, and scalable.

The committed reference wave is only trustworthy if anyone can regenerate it from its seed
and get the same bytes; a format writer that loses a value label, a special code or a
Chinese character would let the pipeline's readers pass on data they never saw; and the
scaled waves stand in for the sizes the pipeline must cope with, so they must keep the
reference wave's structure and flow.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import polars as pl
import pyreadstat
import pytest
import yaml

from lbc_pipeline.codebook import load_codebook
from lbc_pipeline.synthetic import cli, formats, generate, names
from lbc_pipeline_tests.synthetic.test_reference_wave import apply_instrument

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "data" / "raw" / "2019"
COMMITTED_FILES = ("questionnaires.csv", "distribution.csv", "wave.yaml")


@pytest.fixture(scope="module")
def reference() -> generate.Wave:
    return generate.generate_reference_wave(seed=2019)


SCALED_N = 3000


@pytest.fixture(scope="module")
def scaled() -> generate.Wave:
    return generate.generate_scaled_wave(SCALED_N, seed=11)


def _scaled_plan() -> generate.FlowPlan:
    reference = generate.reference_plan(generate.load_state(), generate.published_flow())
    return generate.scaled_plan(SCALED_N, reference)


def test_regenerating_reproduces_the_committed_wave(tmp_path: Path) -> None:
    assert cli.main(["--out", str(tmp_path)]) == 0
    for name in COMMITTED_FILES:
        assert (tmp_path / name).read_bytes() == (COMMITTED / name).read_bytes(), name


def test_same_seed_same_wave_other_seed_other_wave(reference: generate.Wave) -> None:
    again = generate.generate_reference_wave(seed=2019)
    assert again.questionnaires.equals(reference.questionnaires)
    assert again.distribution.equals(reference.distribution)
    assert again.manifest == reference.manifest
    other = generate.generate_reference_wave(seed=2020)
    assert not other.questionnaires.equals(reference.questionnaires)
    # the analysed children are the state's whatever the seed: the flow does not move
    assert other.manifest["expected"] == reference.manifest["expected"]


def _as_text(frame: pd.DataFrame | pl.DataFrame) -> pl.DataFrame:
    """Every value as the text data entry keyed (floats that are integers lose the `.0`)."""
    frame = frame if isinstance(frame, pl.DataFrame) else pl.from_pandas(frame)
    out = []
    for name, dtype in frame.schema.items():
        column = frame[name]
        if dtype.is_float():
            column = column.cast(pl.Int64)
        out.append(column.cast(pl.String).replace("", None))
    return pl.DataFrame(out)


def _read(path: Path, fmt: str) -> pl.DataFrame:
    if fmt == "csv":
        return pl.read_csv(path, infer_schema=False)
    if fmt == "csv-gbk":
        return pl.read_csv(path.read_bytes().decode("gb18030").encode("utf-8"), infer_schema=False)
    if fmt == "xlsx":
        return pl.read_excel(path)
    if fmt == "parquet":
        return pl.read_parquet(path)
    reader = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
    return pl.from_pandas(reader(str(path))[0])


@pytest.mark.parametrize(
    "fmt",
    [
        "csv",  # UTF-8, the committed format
        "csv-gbk",  # GB18030 bytes, as Chinese data-entry tools export
        "xlsx",  # Excel: numbers as numbers, empty cells as blanks
        "sav",  # SPSS: numbers as doubles, empty cells as system missing
        "dta",  # Stata: the same through pyreadstat
        "parquet",  # typed columns
    ],
)
def test_every_format_round_trips(reference: generate.Wave, tmp_path: Path, fmt: str) -> None:
    paths = generate.write_wave(reference, tmp_path, fmt)
    assert [p.name for p in paths] == [f"questionnaires.{formats.FORMATS[fmt]}",
                                       f"distribution.{formats.FORMATS[fmt]}", "wave.yaml"]
    for frame, path in ((reference.questionnaires, paths[0]), (reference.distribution, paths[1])):
        back = _as_text(_read(path, fmt))
        assert back.columns == frame.columns
        assert back.equals(_as_text(frame)), path.name


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_labelled_formats_carry_the_codebook(reference: generate.Wave, tmp_path: Path, fmt: str) -> None:
    path = generate.write_wave(reference, tmp_path, fmt)[0]
    _, meta = (pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta)(str(path), metadataonly=True)
    book = load_codebook()
    parent_away = book.variable("parent_away")
    assert meta.column_names_to_labels["parent_away"].startswith(parent_away.en[:40])
    labels = meta.variable_value_labels["mother_edu"]
    assert labels[7] == "bachelor / 本科"  # an answer code, English / Chinese
    assert labels[-8] == "don't know / 不知道"  # a special code


def test_write_is_deterministic_in_every_format(reference: generate.Wave, tmp_path: Path) -> None:
    for fmt in formats.FORMATS:
        first = generate.write_wave(reference, tmp_path / f"{fmt}_a", fmt)
        second = generate.write_wave(reference, tmp_path / f"{fmt}_b", fmt)
        for a, b in zip(first, second):
            assert a.read_bytes() == b.read_bytes(), (fmt, a.name)


def test_manifest_is_the_contracts(reference: generate.Wave) -> None:
    manifest = yaml.safe_load((COMMITTED / "wave.yaml").read_text(encoding="utf-8"))
    assert manifest["wave"] == "2019" and manifest["synthetic"] is True
    assert str(manifest["fieldwork"]["start"]) == "2019-11-01" and str(manifest["fieldwork"]["end"]) == "2020-06-30"
    assert manifest["expected"] == {"distributed": 1059, "returned": 980, "valid": 933, "analysed": 605}
    assert "SYNTHETIC" in manifest["description"]


def test_schools_grades_dates_and_destinations_follow_the_design(reference: generate.Wave) -> None:
    q = reference.questionnaires
    dist = reference.distribution
    assert dist.select("school_id", "school_type", "school_level").rows() == [
        ("S1", 1, 1), ("S2", 1, 2), ("S3", 2, 2), ("S4", 2, 2)]
    grades = q.filter(pl.col("grade").is_in([5, 7, 8, 9]))
    assert set(grades.filter(pl.col("grade") == 5)["school_id"]) <= {"S1", "S0", "S5", "S6"}
    assert set(grades.filter(pl.col("school_id") == "S1")["grade"]) == {5}
    korean = q.filter(pl.col("ethnicity") == 2)
    assert korean["school_id"].is_in(["S1", "S2"]).mean() > 0.8  # ethnic-Korean children mostly in S1/S2
    han = q.filter(pl.col("ethnicity") == 1)
    assert han["school_id"].is_in(["S3", "S4"]).mean() > 0.8
    destinations = pl.concat([korean["mother_dest"], korean["father_dest"]]).drop_nulls()
    answered = destinations.filter(destinations > 0)
    assert answered.mode().to_list() == [3]  # South Korea dominant among ethnic-Korean families
    # one survey date per class inside the fieldwork window, but for the 9 keying errors outside
    # it and one empty and one impossible date
    dates = q.unique("qid").with_columns(pl.col("survey_date").str.to_date(strict=False))
    inside = dates.filter(pl.col("survey_date").is_between(*generate.FIELDWORK))
    assert dates.height - inside.height == 9 + 2
    per_class = inside.filter(pl.col("school_id").is_in(dist["school_id"].implode())).group_by("school_id", "class_id")
    assert per_class.agg(pl.col("survey_date").n_unique())["survey_date"].max() == 1


def test_names_are_chinese_and_korean_families_have_korean_surnames(reference: generate.Wave) -> None:
    q = reference.questionnaires
    assert q["student_name"].str.contains(r"^[\u4e00-\u9fff]{2,3}$").all()
    korean = q.filter(pl.col("ethnicity") == 2)["student_name"].str.slice(0, 1)
    assert korean.is_in(list(names.KOREAN_SURNAMES)).all()
    assert q["student_no"].str.contains(r"^\d{10}$").all()


def test_chinese_numerals() -> None:
    assert [names.chinese_numeral(n) for n in (7, 10, 14, 105, 1010)] == ["七", "十", "十四", "一百零五", "一千零一十"]


def test_scaled_wave_has_the_reference_structure(scaled: generate.Wave) -> None:
    q, dist = scaled.questionnaires, scaled.distribution
    plan = _scaled_plan()
    assert q.columns == [v.name for v in load_codebook().file_variables("questionnaires")]
    assert q["qid"].n_unique() == SCALED_N
    assert q.height == SCALED_N + plan.identical_duplicates + plan.invalid["conflicting_duplicate"]
    assert dist.height == 4 * round(SCALED_N / generate.RETURNED_PER_SITE)
    assert dist["school_id"].is_unique().all() and dist["school_name"].is_unique().all()


def test_scaled_wave_flow_matches_its_manifest(scaled: generate.Wave) -> None:
    # the independent implementation of instrument.md finds the planned flow
    as_keyed = scaled.questionnaires.with_columns(pl.all().cast(pl.String)).to_pandas()
    returned = apply_instrument(as_keyed, scaled.distribution.with_columns(pl.all().cast(pl.String)).to_pandas())
    expected = scaled.manifest["expected"]
    assert len(returned) == expected["returned"] == SCALED_N
    assert (returned["status"] != "invalid").sum() == expected["valid"]
    assert (returned["status"] == "analysed").sum() == expected["analysed"]
    assert expected["distributed"] == scaled.distribution["distributed"].sum()
    plan = _scaled_plan()
    found = returned["invalid_reason"].fillna(returned["exclusion_reason"]).value_counts().to_dict()
    assert found == {k: v for k, v in {**plan.invalid, **plan.excluded}.items() if v}


def test_cli_scale_mode_writes_parquet(tmp_path: Path) -> None:
    assert cli.main(["--n", "500", "--seed", "3", "--format", "parquet", "--out", str(tmp_path)]) == 0
    assert pl.read_parquet(tmp_path / "questionnaires.parquet")["qid"].n_unique() == 500
    assert yaml.safe_load((tmp_path / "wave.yaml").read_text())["wave"] == "scaled-500"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--wave", "2020"], "reference wave is 2019"),  # only the reference wave and its follow-up 2021 exist
        (["--n", "0"], "at least 1"),  # an empty scaled wave
    ],
)
def test_cli_refuses(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_format_is_refused(reference: generate.Wave, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        generate.write_wave(reference, tmp_path, "json")


def test_missing_state_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="analysed_2019.csv"):
        generate.generate_reference_wave(state_dir=tmp_path)


def test_allocation_is_exact() -> None:
    assert generate.allocate(47, [2, 12, 18, 6, 9]).tolist() == [2, 12, 18, 6, 9]
    assert generate.allocate(10, [1, 1, 1]).sum() == 10
