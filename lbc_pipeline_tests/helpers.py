"""Turning hand-made raw rows into the frames the library takes."""

import datetime as dt
from pathlib import Path

import polars as pl

from lbc_pipeline.codebook import load_codebook
from lbc_pipeline.config import WaveManifest
from lbc_pipeline.lib.clean import CleanedQuestionnaires, clean_distribution, clean_questionnaires
from lbc_pipeline.lib.reading import ROW_COLUMN
from lbc_pipeline.lib.sample import SampleResult, build_sample

KEY = bytes.fromhex("ab" * 32)
MANIFEST = WaveManifest("t", Path("."), dt.date(2019, 11, 1), dt.date(2020, 6, 30))


def raw_frame(rows: list[dict]) -> pl.DataFrame:
    """Rows as the reader returns them: text columns in codebook order, `_row` from 1."""
    columns = [v.name for v in load_codebook().file_variables("questionnaires")]
    return (
        pl.DataFrame(rows, schema={c: pl.String for c in columns})
        .with_row_index(ROW_COLUMN, offset=1)
        .with_columns(pl.col(ROW_COLUMN).cast(pl.Int64))
    )


def stage(rows: list[dict]) -> CleanedQuestionnaires:
    return clean_questionnaires(raw_frame(rows), "t", "questionnaires.csv")


def distribution(schools=("S1", "S2", "S3"), distributed: int = 100) -> pl.DataFrame:
    raw = pl.DataFrame({
        "school_id": list(schools), "school_name": [f"school {s}" for s in schools],
        "school_type": ["1"] * len(schools), "school_level": ["2"] * len(schools),
        "distributed": [str(distributed)] * len(schools),
    }).with_row_index(ROW_COLUMN, offset=1).with_columns(pl.col(ROW_COLUMN).cast(pl.Int64))
    return clean_distribution(raw, "t", "distribution.csv")


def sample(rows: list[dict], manifest: WaveManifest = MANIFEST) -> SampleResult:
    cleaned = stage(rows)
    return build_sample(cleaned.questionnaires, cleaned.missing_values, distribution(), manifest, "t", KEY)
