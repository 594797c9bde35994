"""Contracts of the staging layer: typed questionnaires (no personal data), the distribution,
missing values with their reasons, the quarantine and keyed-twice questionnaires.
Questionnaire columns are generated from the codebook."""

from __future__ import annotations

from functools import cache

import pandera.polars as pa
import polars as pl

from lbc_pipeline.codebook import Variable, load_codebook

from lbc_pipeline.lib.contracts.base import QID, WAVE, describe_codes, register

MISSING_REASONS = ("not_answered", "refused", "dont_know", "not_applicable", "out_of_range",
                   "unparseable")
def _codebook_column(var: Variable, nullable: bool = True) -> pa.Column:
    """A typed staging column for a codebook variable, with its allowed values as a check."""
    label = f"{var.en} ({var.zh})"
    if var.kind == "date":
        return pa.Column(pl.Date, nullable=nullable, description=label)
    if var.kind == "text":
        return pa.Column(pl.String, nullable=nullable, description=label)
    allowed = sorted(var.valid_values or ())
    check = (
        pa.Check.in_range(var.range[0], var.range[1]) if var.kind == "integer"
        else pa.Check.isin(allowed)
    )
    if var.kind == "code":
        label = f"{label}. Codes: {describe_codes(var.codes)}"
    else:
        label = f"{label}. Range {var.range[0]}-{var.range[1]}"
    return pa.Column(pl.Int64, check, nullable=nullable, description=label)


@cache
def answer_schema() -> pa.DataFrameSchema:
    """Numeric questionnaire answers after special codes are set aside: the range contract.

    Validated lazily so that every out-of-range value of a file is found at once; its
    failure cases fill the quarantine.
    """
    book = load_codebook()
    return pa.DataFrameSchema(
        {v.name: _codebook_column(v) for v in book.file_variables("questionnaires") if v.is_numeric},
        name="questionnaire answers",
    )


def staging_questionnaires_schema() -> pa.DataFrameSchema:
    book = load_codebook()
    columns = {"wave": WAVE}
    for var in book.file_variables("questionnaires"):
        if var.personal:
            continue  # personal data never leaves the raw layer
        columns[var.name] = _codebook_column(var, nullable=var.name != "qid")
    columns["qid"] = QID
    columns["source_row"] = pa.Column(pl.Int64, description="Row number in the raw file (1 = first data row) of the row kept")
    columns["duplicate_status"] = pa.Column(
        pl.String, pa.Check.isin(["unique", "identical_collapsed", "conflicting"]),
        description="unique; identical_collapsed (keyed more than once, identically: one kept); "
        "conflicting (keyed more than once with different answers: invalid until resolved)",
    )
    return pa.DataFrameSchema(
        columns, strict=True, unique=["wave", "qid"],
        description="One row per returned questionnaire (distinct qid): typed answers, special "
        "codes and out-of-range values set to missing (reasons in staging.missing_values), "
        "no personal data",
    )




register("staging.questionnaires", staging_questionnaires_schema())

register("staging.missing_values", pa.DataFrameSchema({
    "wave": WAVE, "qid": QID,
    "variable": pa.Column(pl.String, description="Questionnaire variable (codebook name)"),
    "raw_value": pa.Column(pl.String, nullable=True, description="The value as delivered (null for an empty cell)"),
    "reason": pa.Column(pl.String, pa.Check.isin(MISSING_REASONS),
                        description="Why the value is missing: " + ", ".join(MISSING_REASONS)),
}, strict=True, unique=['wave', 'qid', 'variable'], description="One row per questionnaire x variable whose value is missing in staging, with the reason"))

register("staging.quarantine", pa.DataFrameSchema({
    "wave": WAVE, "qid": QID,
    "source_row": pa.Column(pl.Int64, description="Row number in the raw file"),
    "variable": pa.Column(pl.String, description="Questionnaire variable"),
    "raw_value": pa.Column(pl.String, description="The value as delivered"),
    "rule": pa.Column(pl.String, pa.Check.isin(["out_of_range", "unparseable"]),
                      description="out_of_range: a code outside the item's range that is not a special code; "
                      "unparseable: not readable as the item's type"),
    "check": pa.Column(pl.String, description="The contract check that failed (pandera check or parser)"),
}, strict=True, description="One row per value that failed its contract (data-entry errors), kept for review; the value is missing in staging"))

register("staging.entry_duplicates", pa.DataFrameSchema({
    "wave": WAVE, "qid": QID,
    "kind": pa.Column(pl.String, pa.Check.isin(["identical", "conflicting"]),
                      description="identical: rows collapse to one; conflicting: the questionnaire is invalid until resolved"),
    "n_rows": pa.Column(pl.Int64, description="How many rows carry this qid in the raw file"),
    "source_rows": pa.Column(pl.List(pl.Int64), description="Their row numbers in the raw file"),
    "differing_columns": pa.Column(pl.List(pl.String), description="Columns whose values differ between the rows (conflicting only)"),
}, strict=True, unique=['wave', 'qid'], description="One row per qid keyed more than once"))

register("staging.distribution", pa.DataFrameSchema({
    "wave": WAVE,
    "school_id": pa.Column(pl.String, description="School identifier"),
    "school_name": pa.Column(pl.String, nullable=True, description="School name"),
    "school_type": pa.Column(pl.Int64, pa.Check.isin([1, 2]), description="1 = ethnic-Korean school, 2 = Han school"),
    "school_level": pa.Column(pl.Int64, pa.Check.isin([1, 2]), description="1 = primary, 2 = secondary"),
    "distributed": pa.Column(pl.Int64, pa.Check.ge(0), description="Questionnaires handed out"),
}, strict=True, unique=["wave", "school_id"], description="One row per school: questionnaires handed out"))

# ------------------------------------------------------------------ the codebook as tables
register("staging.codebook_variables", pa.DataFrameSchema({
    "wave": WAVE,
    "file": pa.Column(pl.String, pa.Check.isin(["questionnaires", "distribution"]), description="The raw file the variable is delivered in"),
    "variable": pa.Column(pl.String, description="Variable name (the column's name in raw and staging)"),
    "position": pa.Column(pl.Int64, description="Position of the variable in the codebook's order within its file"),
    "kind": pa.Column(pl.String, pa.Check.isin(["text", "date", "integer", "code"]), description="text, date, integer (a range) or code (a set of coded answers)"),
    "group": pa.Column(pl.String, nullable=True, description="Questionnaire section (child, parents_migration, depression, school_support, ...)"),
    "label_en": pa.Column(pl.String, description="Question or variable label in English"),
    "label_zh": pa.Column(pl.String, description="Question or variable label in Chinese, as printed"),
    "range_low": pa.Column(pl.Int64, nullable=True, description="Smallest valid answer of an integer variable"),
    "range_high": pa.Column(pl.Int64, nullable=True, description="Largest valid answer of an integer variable"),
    "personal": pa.Column(pl.Boolean, description="Personal data: kept in the raw layer only"),
}, strict=True, unique=["wave", "file", "variable"], description="One row per wave x file x variable: the codebook the wave was read with"))

register("staging.codebook_values", pa.DataFrameSchema({
    "wave": WAVE,
    "coding": pa.Column(pl.String, pa.Check.isin(["questionnaire", "analysis"]),
                        description="questionnaire: a code as delivered (staging); analysis: a value of a model variable (analysis.analytic_sample)"),
    "variable": pa.Column(pl.String, description="Variable name in its layer"),
    "value": pa.Column(pl.String, description="The code (as text) or, for migration_group, the group"),
    "source_variable": pa.Column(pl.String, description="The questionnaire variable the value comes from (itself for questionnaire codes)"),
    "label_en": pa.Column(pl.String, description="Value label in English"),
    "label_zh": pa.Column(pl.String, description="Value label in Chinese"),
}, strict=True, unique=["wave", "coding", "variable", "value"], description="One row per wave x coding x variable x value: value labels in English and Chinese"))

register("staging.codebook_special_codes", pa.DataFrameSchema({
    "wave": WAVE,
    "code": pa.Column(pl.Int64, description="The special code as keyed (e.g. -9)"),
    "reason": pa.Column(pl.String, description="The missing-value reason it becomes in staging.missing_values"),
    "label_en": pa.Column(pl.String, description="Meaning in English"),
    "label_zh": pa.Column(pl.String, description="Meaning in Chinese"),
}, strict=True, unique=["wave", "code"], description="One row per wave x special code: codes that mean a missing answer, and the reason recorded"))
