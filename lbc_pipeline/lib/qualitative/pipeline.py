"""The interview strand's steps, each a function of frames (the assets call one each).

A wave without an `interviews/` folder runs through every step with empty tables: the raw
and staging tables are written empty (so a withdrawn delivery is cleared), the registry is
empty (its check fails only if wave.yaml expects interviews), the joint display is empty and
the report says the wave delivered no interviews.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from lbc_pipeline.config import WaveManifest
from lbc_pipeline.lib.qualitative import marts as qm
from lbc_pipeline.lib.qualitative.loading import raw_interview_tables
from lbc_pipeline.lib.qualitative.reading import interview_folder, read_interview_folder
from lbc_pipeline.lib.qualitative.redact import Redactor, dictionary
from lbc_pipeline.lib.qualitative.staging import StagedInterviews, stage_interviews

from lbc_pipeline.lib.qualitative.tables import RAW_TABLES, STAGING_TABLES  # noqa: E402,F401  (re-exported)


def load_interviews(wave_folder: Path, wave: str, loaded_at: dt.datetime) -> dict[str, pl.DataFrame]:
    """The raw tables of a wave's interviews (empty without an interviews/ folder)."""
    folder = interview_folder(wave_folder)
    delivery = read_interview_folder(folder) if folder is not None else None
    return raw_interview_tables(delivery, wave, loaded_at)


def stage(raw: dict[str, pl.DataFrame], student_names: list[str | None], distribution: pl.DataFrame,
          manifest: WaveManifest | None, wave: str) -> StagedInterviews:
    """Rules, quarantine and redaction (`distribution`: raw rows with school_id, school_name)."""
    redactor = Redactor(dictionary(raw["raw.interviews"], student_names, distribution["school_name"].to_list()))
    schools = {s for s in distribution["school_id"].to_list() if s}
    return stage_interviews(raw, wave, schools, manifest, redactor)


def summarise(staged: dict[str, pl.DataFrame], expected: dict[str, int], wave: str) -> dict[str, pl.DataFrame]:
    """The registry summary, the code matrix and the co-occurrences."""
    interviews, segments, codes = (staged[t] for t in ("staging.interviews", "staging.interview_segments",
                                                       "staging.interview_codes"))
    return {
        "marts.interview_registry": qm.registry_summary(interviews, expected, wave),
        "marts.interview_code_frequencies": qm.code_frequencies(interviews, segments, codes, wave),
        "marts.interview_code_cooccurrence": qm.code_cooccurrence(interviews, segments, wave),
    }


def joint_display(hypotheses: pl.DataFrame, staged: dict[str, pl.DataFrame], distribution: pl.DataFrame,
                  wave: str) -> dict[str, pl.DataFrame]:
    """`marts.triangulation` and its examples (empty when the wave has no interviews)."""
    interviews, segments, codes = (staged[t] for t in ("staging.interviews", "staging.interview_segments",
                                                       "staging.interview_codes"))
    if interviews.is_empty():
        schema = {n: c.dtype.type for n, c in qm.qc.TRIANGULATION.columns.items()}
        examples = {n: c.dtype.type for n, c in qm.qc.EXAMPLES.columns.items()}
        return {"marts.triangulation": pl.DataFrame(schema=schema),
                "marts.triangulation_examples": pl.DataFrame(schema=examples)}
    triangulation = qm.triangulate(hypotheses, segments, codes, wave)
    return {"marts.triangulation": triangulation,
            "marts.triangulation_examples": qm.triangulation_examples(triangulation, segments, codes, interviews,
                                                                      distribution, wave)}
