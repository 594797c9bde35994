"""Shared fixtures of the interview strand's tests: the committed demo set, read and staged."""

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from lbc_pipeline.config import PROJECT_ROOT, read_manifest
from lbc_pipeline.lib.qualitative import pipeline
from lbc_pipeline.lib.qualitative.loading import raw_interview_tables
from lbc_pipeline.lib.qualitative.reading import read_interview_folder

REFERENCE = PROJECT_ROOT / "data" / "raw" / "2019"
DEMO = REFERENCE / "interviews"
LOADED_AT = dt.datetime(2020, 7, 1)


@pytest.fixture(scope="session")
def survey_raw() -> tuple[list[str], pl.DataFrame]:
    """The reference wave's raw student names and distribution rows (text, as delivered)."""
    questionnaires = pl.read_csv(REFERENCE / "questionnaires.csv", infer_schema=False)
    distribution = pl.read_csv(REFERENCE / "distribution.csv", infer_schema=False)
    return questionnaires["student_name"].to_list(), distribution


@pytest.fixture(scope="session")
def demo_raw() -> dict[str, pl.DataFrame]:
    return raw_interview_tables(read_interview_folder(DEMO), "2019", LOADED_AT)


@pytest.fixture(scope="session")
def demo_staged(demo_raw, survey_raw):
    names, distribution = survey_raw
    return pipeline.stage(demo_raw, names, distribution, read_manifest(REFERENCE), "2019")


def copy_demo(target: Path, keep: tuple[str, ...] = ("interviews.csv", "segments.csv", "codebook.csv")) -> Path:
    """A copy of some of the demo set's files in `target` (created)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in keep:
        (target / name).write_bytes((DEMO / name).read_bytes())
    return target
