"""Turning hand-made raw rows into the frames the library takes."""

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from lbc_pipeline.codebook import load_codebook
from lbc_pipeline.config import WaveManifest
from lbc_pipeline.lib.staging.clean import CleanedQuestionnaires, clean_distribution, clean_questionnaires
from lbc_pipeline.lib.raw.reading import ROW_COLUMN
from lbc_pipeline.lib.analysis.sample import SampleResult, build_sample

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


GROUPS = ("none", "mother", "father", "both")


def random_analytic_sample(n: int = 240, seed: int = 7, wave: str = "t", n_schools: int = 4) -> pl.DataFrame:
    """`n` children shaped like analysis.analytic_sample, with plausible codes drawn at random;
    depression is the sum of the six items (tests that need an outcome with structure replace it)."""
    rng = np.random.default_rng(seed)
    group = rng.choice(GROUPS, size=n, p=[0.6, 0.1, 0.17, 0.13])
    items = rng.integers(1, 6, size=(n, 6))
    return pl.DataFrame({
        "wave": [wave] * n,
        "child_key": [f"k{i:05d}" for i in rng.permutation(n)],
        "school_id": [f"S{k}" for k in rng.integers(1, n_schools + 1, n)],
        "migration_group": group,
        "mother_away": (group == "mother").astype(np.int64),
        "father_away": (group == "father").astype(np.int64),
        "both_away": (group == "both").astype(np.int64),
        **{f"dep{i + 1}": items[:, i] for i in range(6)},
        "depression": items.sum(axis=1),
        "girl": rng.integers(0, 2, n),
        "age": rng.integers(9, 16, n),
        "grade": rng.choice([5, 7, 8, 9], n),
        "siblings": rng.integers(0, 3, n),
        "korean": rng.integers(0, 2, n),
        "mother_edu": rng.integers(1, 4, n),
        "father_edu": rng.integers(1, 4, n),
        "belong": rng.integers(1, 6, n),
        "ht_ask_life": rng.integers(1, 5, n),
        "ht_talk_guardian": rng.integers(1, 5, n),
        "ht_praise": rng.integers(1, 5, n),
        "teacher_attitude": rng.normal(size=n),
        "ht_satisfaction": rng.integers(1, 6, n),
        "best_friends": rng.integers(1, 5, n),
        "class_closeness": rng.integers(1, 6, n),
        "peer_satisfaction": rng.integers(1, 6, n),
    })
