"""Contracts of the analysis layer: derived measures, the sample flow and its reasons, the
exclusions, the analysis sample, the teacher factor and the scales' reliability."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from lbc_pipeline.codebook import load_codebook
from lbc_pipeline.lib.contracts.base import QID, WAVE, describe_codes, register
from lbc_pipeline.study import load_study

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
}, strict=True, unique=['wave', 'qid'], description="One row per returned questionnaire: derived measures and analysis codings, with the reason where a measure is missing"))

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
    unique=['wave', 'step'], description="One row per step from questionnaires handed out to children analysed"))

register("analysis.sample_flow_reasons", pa.DataFrameSchema({
    "wave": WAVE,
    "step": pa.Column(pl.String, description="The step of analysis.sample_flow"),
    "reason": pa.Column(pl.String, description="Exclusion or invalidity reason"),
    "reason_order": pa.Column(pl.Int64, description="Position of the reason in the codebook's order"),
    "n_primary": pa.Column(pl.Int64, description="Questionnaires whose primary reason this is (these add up to the step's n_excluded)"),
    "n_any": pa.Column(pl.Int64, description="Questionnaires for which this reason applies at all"),
}, strict=True, unique=['wave', 'step', 'reason'], description="One row per step x reason"))

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
    """The analysis sample: every column's allowed values come from the codebook (analysis
    codings, questionnaire codes, the population, the depression scale), so the
    great-expectations suite that is built from this contract checks the same ranges."""
    book = load_codebook()
    study = load_study()
    groups = list(book.migration_groups)
    columns = {
        "wave": WAVE,
        "child_key": pa.Column(pl.String, unique=True, description="Pseudonymous child key: keyed hash (HMAC-SHA256) of wave and qid; the key is kept outside the repository"),
        "school_id": pa.Column(pl.String, description="School identifier"),
        "migration_group": pa.Column(pl.String, pa.Check.isin(groups), description=", ".join(
            f"{g} ({book.migration_group_labels[g][0]})" for g in groups)),
    }
    dep_items = book.scale_items("depression")
    dep_codes = [sorted(book.variable(i).codes) for i in dep_items]
    dep_range = (sum(c[0] for c in dep_codes), sum(c[-1] for c in dep_codes))
    group_of_term = {t: g for g, t in study.group_terms.items()}
    low_age, high_age = book.population_age
    for name in ANALYTIC_COLUMNS:
        if name in group_of_term:
            check, text = pa.Check.isin([0, 1]), f"1 = {book.migration_group_labels[group_of_term[name]][0].lower()} (6 months or more), else 0"
        elif name == "depression":
            check, text = pa.Check.in_range(*dep_range), f"Depression score, sum of {', '.join(dep_items)} ({dep_range[0]}-{dep_range[1]})"
        elif name == "age":
            check, text = pa.Check.in_range(low_age, high_age), f"Completed years at the survey ({low_age}-{high_age})"
        elif name == "grade":
            grades = list(book.population_grades)
            check, text = pa.Check.isin(grades), f"School grade ({', '.join(map(str, grades))})"
        elif name in book.analysis_codings:
            source, codes = book.analysis_codings[name]
            check, text = pa.Check.isin(sorted(codes)), f"Analysis coding of {source}: {describe_codes(codes)}"
        else:
            var = book.variable(name)
            check, text = pa.Check.isin(sorted(var.codes)), f"{var.en} ({var.zh}): {describe_codes(var.codes)}"
        columns[name] = pa.Column(pl.Int64, check, description=text)
    columns["teacher_attitude"] = pa.Column(pl.Float64, description="Teacher's attitude factor score (standardised on all valid questionnaires)")
    return pa.DataFrameSchema(columns, strict=True, unique=["wave", "child_key"],
                              description="One row per child in the models (complete on every model variable)")


register("analysis.analytic_sample", _analytic_schema())

register("analysis.teacher_attitude_efa", pa.DataFrameSchema({
    "wave": WAVE,
    "item": pa.Column(pl.String, description="Head-teacher item"),
    "n": pa.Column(pl.Int64, description="Valid questionnaires that answered all three items (the estimation sample)"),
    "method": pa.Column(pl.String, description="Estimator (closed_form: l_i^2 = r_ij r_ik / r_jk, equal to maximum likelihood for three items; closed_form_heywood:<i>: item i has uniqueness 0 and is the factor)"),
    "loading": pa.Column(pl.Float64, description="Standardised loading on the factor"),
    "uniqueness": pa.Column(pl.Float64, description="1 - communality"),
    "communality": pa.Column(pl.Float64, description="Share of the item's variance explained by the factor"),
    "score_weight": pa.Column(pl.Float64, description="Regression-method score weight on the standardised item"),
    "item_mean": pa.Column(pl.Float64, description="Item mean on the estimation sample"),
    "item_sd": pa.Column(pl.Float64, description="Item SD (ddof=1) on the estimation sample"),
    "eigenvalue": pa.Column(pl.Float64, description="Eigenvalues of the item correlation matrix, largest first"),
    "variance_explained": pa.Column(pl.Float64, description="Share of the items' total variance the factor explains"),
    "df": pa.Column(pl.Int64, description="Degrees of freedom of the factor model (0: three items and one factor are exactly identified, so no fit test applies)"),
}, strict=False, unique=['wave', 'item'], description="One row per head-teacher item: the one-factor EFA behind teacher_attitude"))

register("analysis.scale_reliability", pa.DataFrameSchema({
    "wave": WAVE,
    "scale": pa.Column(pl.String, description="depression (six CEPS items) or teacher_items (three head-teacher items)"),
    "sample": pa.Column(pl.String, description="analysed: the children in the models"),
    "n": pa.Column(pl.Int64, description="Complete cases"),
    "n_items": pa.Column(pl.Int64, description="Items in the scale"),
    "cronbach_alpha": pa.Column(pl.Float64, description="Cronbach's alpha: k/(k-1) * (1 - sum of item variances / variance of the total)"),
    "item_statistics": pa.Column(pl.List(pl.Struct({"item": pl.String, "mean": pl.Float64, "sd": pl.Float64, "item_total_r": pl.Float64, "alpha_if_deleted": pl.Float64})),
                                 description="Per item: mean, sd, corrected item-total correlation, alpha if the item is deleted"),
}, strict=True, unique=['wave', 'scale', 'sample'], description="One row per scale and sample: Cronbach's alpha with item statistics"))

register("analysis.check_results", pa.DataFrameSchema({
    "wave": WAVE,
    "check_order": pa.Column(pl.Int64, description="Order in which the report lists the check"),
    "check_name": pa.Column(pl.String, description="The Dagster asset check, e.g. sample_flow_conservation"),
    "asset": pa.Column(pl.String, description="The table the check guards, e.g. analysis.sample_flow"),
    "severity": pa.Column(pl.String, pa.Check.isin(["ERROR", "WARN"]), description="ERROR: a failure blocks everything downstream (marts, report, publication); WARN: reported only"),
    "passed": pa.Column(pl.Boolean, description="Whether the check passed"),
    "description": pa.Column(pl.String, description="What the check found, in one sentence"),
}, strict=True, unique=["wave", "check_name"], description="One row per data-quality check on the sample flow and the analysis sample: the outcome the run's asset checks reported, stated again in the report and by lbc replication"))
