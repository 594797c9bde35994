"""The frame the sensitivity analyses start from: every valid questionnaire with both parents alive.

The analysis sample keeps only complete cases; the missing-data analyses need the valid
questionnaires that were excluded for a missing value too, and the multilevel models need
each child's class. `sensitivity_frame` joins `analysis.measures` (derived measures,
status) with the support items and the class of `staging.questionnaires` (no personal
data: qid is a questionnaire serial number).
"""

from __future__ import annotations

import polars as pl

from lbc_pipeline.lib.marts.models import MODERATORS

MODEL_VARIABLES = (
    "depression", "migration_group", "girl", "age", "grade", "siblings", "korean", "mother_edu", "father_edu",
    *MODERATORS,
)
FROM_QUESTIONNAIRES = ("grade", "class_id", *(m for m in MODERATORS if m != "teacher_attitude"))
FROM_MEASURES = ("qid", "school_id", "status", "depression", "migration_group", "girl", "age", "siblings", "korean",
                 "mother_edu", "father_edu", "teacher_attitude")
GROUP_DUMMIES = {"mother_away": "mother", "father_away": "father", "both_away": "both"}


def add_group_dummies(frame: pl.DataFrame) -> pl.DataFrame:
    """mother_away, father_away, both_away as 0/1 from migration_group (null where it is)."""
    return frame.with_columns(
        (pl.col("migration_group") == group).cast(pl.Int64).alias(dummy) for dummy, group in GROUP_DUMMIES.items()
    )


def sensitivity_frame(measures: pl.DataFrame, questionnaires: pl.DataFrame, wave: str) -> pl.DataFrame:
    """One row per valid questionnaire of the wave with both parents alive (sorted by qid).

    Columns: qid, school_id, class_key (school_id/class_id), status (`analysed` or
    `excluded`), the model variables (null where missing) and the migration dummies.
    """
    valid = measures.filter((pl.col("wave") == wave) & (pl.col("status") != "invalid") & ~pl.col("deceased_parent"))
    items = questionnaires.filter(pl.col("wave") == wave).select("qid", *FROM_QUESTIONNAIRES)
    frame = (
        valid.select(*FROM_MEASURES)
        .join(items, on="qid", how="left", validate="1:1")
        .with_columns(pl.concat_str("school_id", pl.lit("/"), pl.col("class_id").fill_null("?")).alias("class_key"))
        .drop("class_id")
        .with_columns(pl.col(c).cast(pl.Float64) for c in MODEL_VARIABLES if c != "migration_group")
        .sort("qid")
    )
    analysed = frame.filter(pl.col("status") == "analysed")
    incomplete = analysed.filter(pl.any_horizontal(pl.col(c).is_null() for c in MODEL_VARIABLES)).height
    if incomplete:
        raise ValueError(f"wave {wave!r}: {incomplete} analysed questionnaires miss a model variable in the "
                         "sensitivity frame; analysis.measures and staging.questionnaires disagree")
    return add_group_dummies(frame)


def complete_cases(frame: pl.DataFrame) -> pl.DataFrame:
    """The analysed children (the analysis sample, with class_key) with Int64 codes as in the models."""
    return frame.filter(pl.col("status") == "analysed")
