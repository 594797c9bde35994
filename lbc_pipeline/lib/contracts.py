"""The contract of every table the pipeline writes: one pandera schema per table.

Each schema carries the table's grain (its `description`) and a description on every
column; the warehouse writer validates a frame against its schema before writing it and
turns the descriptions into `COMMENT ON` statements, so the documentation users read in
DuckDB is the contract the code enforces. Questionnaire columns are generated from the
codebook.
"""

from __future__ import annotations

from functools import cache

import pandera.polars as pa
import polars as pl

from lbc_pipeline.codebook import Variable, load_codebook

WAVE = pa.Column(pl.String, description="Wave identifier (the partition key, e.g. '2019')")
QID = pa.Column(pl.String, description="Questionnaire serial number, unique within a wave")

MISSING_REASONS = ("not_answered", "refused", "dont_know", "not_applicable", "out_of_range",
                   "unparseable")
DERIVED_MISSING_REASONS = (
    "item_missing", "q1_missing", "duration_missing", "contradictory_migration",
    "date_missing", "birth_date_missing", "birth_after_survey",
)


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
        codes = "; ".join(f"{c} = {en}" for c, (en, _) in var.codes.items())
        label = f"{label}. Codes: {codes}"
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


@cache
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


SCHEMAS: dict[str, pa.DataFrameSchema] = {}


def register(name: str, schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    SCHEMAS[name] = schema
    return schema


register("staging.missing_values", pa.DataFrameSchema({
    "wave": WAVE, "qid": QID,
    "variable": pa.Column(pl.String, description="Questionnaire variable (codebook name)"),
    "raw_value": pa.Column(pl.String, nullable=True, description="The value as delivered (null for an empty cell)"),
    "reason": pa.Column(pl.String, pa.Check.isin(MISSING_REASONS),
                        description="Why the value is missing: " + ", ".join(MISSING_REASONS)),
}, strict=True, description="One row per questionnaire x variable whose value is missing in staging, with the reason"))

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
}, strict=True, description="One row per qid keyed more than once"))

register("staging.distribution", pa.DataFrameSchema({
    "wave": WAVE,
    "school_id": pa.Column(pl.String, unique=True, description="School identifier"),
    "school_name": pa.Column(pl.String, nullable=True, description="School name"),
    "school_type": pa.Column(pl.Int64, pa.Check.isin([1, 2]), description="1 = ethnic-Korean school, 2 = Han school"),
    "school_level": pa.Column(pl.Int64, pa.Check.isin([1, 2]), description="1 = primary, 2 = secondary"),
    "distributed": pa.Column(pl.Int64, pa.Check.ge(0), description="Questionnaires handed out"),
}, strict=True, description="One row per school: questionnaires handed out"))

register("analysis.measures", pa.DataFrameSchema({
    "wave": WAVE, "qid": QID,
    "school_id": pa.Column(pl.String, nullable=True, description="School identifier"),
    "age": pa.Column(pl.Int64, nullable=True, description="Completed years at survey_date (birth day taken as the 15th)"),
    "age_missing_reason": pa.Column(pl.String, nullable=True, description="Why age is unknown"),
    "depression": pa.Column(pl.Int64, pa.Check.in_range(6, 30), nullable=True, description="Depression score: sum of dep1-dep6 (6-30), missing if any item is"),
    "migration_group": pa.Column(pl.String, pa.Check.isin(["none", "mother", "father", "both"]), nullable=True, description="Parental migration: none, mother (only), father (only), both"),
    "migration_missing_reason": pa.Column(pl.String, nullable=True, description="Why the migration group is missing: q1_missing, duration_missing, contradictory_migration"),
    "mother_counted_away": pa.Column(pl.Boolean, nullable=True, description="Mother away 6 months or more, after the custody rule"),
    "father_counted_away": pa.Column(pl.Boolean, nullable=True, description="Father away 6 months or more, after the custody rule"),
    "deceased_parent": pa.Column(pl.Boolean, description="A parent has died (mother_alive or father_alive = 2)"),
    "girl": pa.Column(pl.Int64, pa.Check.isin([0, 1]), nullable=True, description="1 = girl, 0 = boy"),
    "korean": pa.Column(pl.Int64, pa.Check.isin([0, 1]), nullable=True, description="1 = ethnic Korean, 0 = Han or other"),
    "siblings": pa.Column(pl.Int64, pa.Check.isin([0, 1, 2]), nullable=True, description="Siblings: 0, 1, 2 = two or more"),
    "mother_edu": pa.Column(pl.Int64, pa.Check.isin([1, 2, 3]), nullable=True, description="Mother's education: 1 middle school or below, 2 technical middle / high school, 3 college or above"),
    "father_edu": pa.Column(pl.Int64, pa.Check.isin([1, 2, 3]), nullable=True, description="Father's education, coded as mother_edu"),
    "teacher_attitude": pa.Column(pl.Float64, nullable=True, description="Teacher's attitude: one-factor EFA regression score of the three head-teacher items, standardised on all valid questionnaires that answered them"),
    "blank_items": pa.Column(pl.Int64, description="Substantive items (of 31) empty or refused: 16 or more make the questionnaire largely blank"),
    "status": pa.Column(pl.String, pa.Check.isin(["invalid", "excluded", "analysed"]), description="Where the questionnaire ended"),
    "primary_reason": pa.Column(pl.String, nullable=True, description="Why it left the sample (null when analysed); all reasons in analysis.exclusions"),
}, strict=True, description="One row per returned questionnaire: derived measures and analysis codings, with the reason where a measure is missing"))

register("analysis.exclusions", pa.DataFrameSchema({
    "wave": WAVE, "qid": QID,
    "stage": pa.Column(pl.String, pa.Check.isin(["invalid", "excluded"]), description="invalid: the returned questionnaire is not valid; excluded: valid but not analysed"),
    "primary_reason": pa.Column(pl.String, description="The first reason in the codebook's order (the one the sample flow counts)"),
    "reasons": pa.Column(pl.List(pl.String), description="Every reason that applies, in the codebook's order"),
    "detail": pa.Column(pl.String, nullable=True, description="What the reasons rest on, e.g. mother_edu=dont_know"),
    "school_id": pa.Column(pl.String, nullable=True, description="School identifier"),
}, strict=True, unique=["wave", "qid"], description="One row per returned questionnaire that left the sample, with all its reasons"))

register("analysis.sample_flow", pa.DataFrameSchema({
    "wave": WAVE,
    "step_order": pa.Column(pl.Int64, description="Order of the step (1 = handed out)"),
    "step": pa.Column(pl.String, description="distributed, returned, valid, parents_alive, analysed"),
    "n_before": pa.Column(pl.Int64, description="Questionnaires before the step"),
    "n_excluded": pa.Column(pl.Int64, description="Questionnaires that left at this step"),
    "n_after": pa.Column(pl.Int64, description="Questionnaires after the step"),
    "reason": pa.Column(pl.String, description="Why they left; per-reason counts in analysis.sample_flow_reasons"),
}, strict=True, checks=[pa.Check(lambda data: data.lazyframe.select(pl.col("n_before") == pl.col("n_excluded") + pl.col("n_after")), name="conservation")],
    description="One row per step from questionnaires handed out to children analysed"))

register("analysis.sample_flow_reasons", pa.DataFrameSchema({
    "wave": WAVE,
    "step": pa.Column(pl.String, description="The step of analysis.sample_flow"),
    "reason": pa.Column(pl.String, description="Exclusion or invalidity reason"),
    "reason_order": pa.Column(pl.Int64, description="Position of the reason in the codebook's order"),
    "n_primary": pa.Column(pl.Int64, description="Questionnaires whose primary reason this is (these add up to the step's n_excluded)"),
    "n_any": pa.Column(pl.Int64, description="Questionnaires for which this reason applies at all"),
}, strict=True, description="One row per step x reason"))

register("analysis.questionnaire_status", pa.DataFrameSchema({
    "wave": WAVE, "qid": QID,
    "school_id": pa.Column(pl.String, nullable=True, description="School identifier"),
    "status": pa.Column(pl.String, pa.Check.isin(["invalid", "excluded", "analysed"]), description="Where the questionnaire ended"),
    "primary_reason": pa.Column(pl.String, nullable=True, description="Why it left (null when analysed)"),
    "girl": pa.Column(pl.Int64, nullable=True, description="1 = girl"),
    "grade": pa.Column(pl.Int64, nullable=True, description="School grade"),
    "migration_group": pa.Column(pl.String, nullable=True, description="Parental migration group where known"),
}, strict=True, unique=["wave", "qid"], description="One row per returned questionnaire: where it ended, with the characteristics used to check differential attrition"))

ANALYTIC_COLUMNS = (
    "mother_away", "father_away", "both_away", "depression", "dep1", "dep2", "dep3", "dep4",
    "dep5", "dep6", "girl", "age", "grade", "siblings", "korean", "mother_edu", "father_edu",
    "belong", "ht_ask_life", "ht_talk_guardian", "ht_praise", "ht_satisfaction",
    "best_friends", "class_closeness", "peer_satisfaction",
)


def _analytic_schema() -> pa.DataFrameSchema:
    book = load_codebook()
    columns = {
        "wave": WAVE,
        "child_key": pa.Column(pl.String, unique=True, description="Pseudonymous child key: keyed hash (HMAC-SHA256) of wave and qid; the key is kept outside the repository"),
        "school_id": pa.Column(pl.String, description="School identifier"),
        "migration_group": pa.Column(pl.String, pa.Check.isin(list(book.migration_groups)), description="none, mother, father, both"),
    }
    described = {
        "mother_away": "1 = only the mother is away (6 months or more)",
        "father_away": "1 = only the father is away",
        "both_away": "1 = both parents are away",
        "depression": "Depression score, sum of dep1-dep6 (6-30)",
        "girl": "1 = girl, 0 = boy",
        "age": "Completed years at the survey",
        "grade": "School grade (5, 7, 8, 9)",
        "siblings": "0, 1, 2 = two or more",
        "korean": "1 = ethnic Korean",
        "mother_edu": "1 middle school or below, 2 technical middle / high school, 3 college or above",
        "father_edu": "as mother_edu",
    }
    for name in ANALYTIC_COLUMNS:
        if name in described:
            columns[name] = pa.Column(pl.Int64, description=described[name])
        else:
            var = book.variable(name)
            columns[name] = pa.Column(pl.Int64, pa.Check.isin(sorted(var.codes)), description=f"{var.en} ({var.zh})")
    columns["teacher_attitude"] = pa.Column(pl.Float64, description="Teacher's attitude factor score (standardised on all valid questionnaires)")
    return pa.DataFrameSchema(columns, strict=True, description="One row per child in the models (complete on every model variable)")


register("analysis.analytic_sample", _analytic_schema())


def schema_for(table: str) -> pa.DataFrameSchema:
    """The contract of a warehouse table (`schema.table`)."""
    if table == "staging.questionnaires":
        return staging_questionnaires_schema()
    return SCHEMAS[table]


# ------------------------------------------------------------------ documentation only
# Tables whose rows are not validated by a pandera contract here (the raw layer keeps what
# was delivered; diagnostics are written by the code that computes them) still carry their
# grain and a description of every column into DuckDB.
def _raw_docs(role: str, grain: str) -> tuple[str, dict[str, str]]:
    columns = {"wave": WAVE.description, "source_row": "Row number in the delivered file (1 = first data row)"}
    for var in load_codebook().file_variables(role):
        columns[var.name] = f"{var.en} ({var.zh}), as delivered (text)"
    return grain, columns


def documentation() -> dict[str, tuple[str, dict[str, str]]]:
    """Grain and column descriptions of tables without a contract (`contract_docs` fallback)."""
    return {
        "raw.questionnaires": _raw_docs(
            "questionnaires", "One row per keyed row of the questionnaires file, every value as delivered (text), "
            "personal data included: the only layer that holds names and roll numbers; extra columns kept"),
        "raw.distribution": _raw_docs("distribution", "One row per row of the distribution file, as delivered"),
        "raw.load_log": ("One row per file loaded for a wave (the latest load)", {
            "wave": WAVE.description, "file": "File name", "role": "questionnaires or distribution",
            "sha256": "SHA-256 of the file's bytes", "size_bytes": "File size in bytes", "rows": "Data rows read",
            "format": "csv, xlsx, sav, dta or parquet", "encoding": "Detected text encoding (csv: utf-8, utf-8-sig, gb18030)",
            "extra_columns": "Columns not in the codebook, kept in the raw layer",
            "value_labels": "Value labels stored in the file (sav/dta), as JSON", "loaded_at": "When it was loaded (UTC)",
        }),
        "raw.rejected_files": ("One row per rejected delivery attempt: the file, row and column at fault and why (history kept)", {
            "wave": WAVE.description, "file": "The file (or wave.yaml / folder) at fault",
            "source_row": "Data row of the file at fault (1 = first data row), where known",
            "column_name": "Column at fault, where known", "reason": "What is wrong",
            "message": "The full message: file, row, column and reason", "rejected_at": "When the delivery was rejected (UTC)",
        }),
        "analysis.teacher_attitude_efa": ("One row per head-teacher item: the one-factor EFA behind teacher_attitude", {
            "wave": WAVE.description, "item": "Head-teacher item", "n": "Valid questionnaires that answered all three items (the estimation sample)",
            "method": "Estimator (closed_form: l_i^2 = r_ij r_ik / r_jk, equal to maximum likelihood for three items; closed_form_heywood:<i>: item i has uniqueness 0 and is the factor)", "loading": "Standardised loading on the factor",
            "uniqueness": "1 - communality", "communality": "Share of the item's variance explained by the factor",
            "score_weight": "Regression-method score weight on the standardised item", "item_mean": "Item mean on the estimation sample",
            "item_sd": "Item SD (ddof=1) on the estimation sample", "eigenvalue": "Eigenvalues of the item correlation matrix, largest first",
            "variance_explained": "Share of the items' total variance the factor explains",
            "df": "Degrees of freedom of the factor model (0: three items and one factor are exactly identified, so no fit test applies)",
        }),
        "analysis.scale_reliability": ("One row per scale and sample: Cronbach's alpha with item statistics", {
            "wave": WAVE.description, "scale": "depression (six CEPS items) or teacher_items (three head-teacher items)",
            "sample": "analysed: the children in the models", "n": "Complete cases", "n_items": "Items in the scale",
            "cronbach_alpha": "Cronbach's alpha: k/(k-1) * (1 - sum of item variances / variance of the total)",
            "item_statistics": "Per item: mean, sd, corrected item-total correlation, alpha if the item is deleted",
        }),
    }
