"""Contracts of the marts: fitted models, Table 1, the replication, the hypotheses and the
cross-wave tables. Marts are validated against these before they are written."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from lbc_pipeline.lib.contracts.base import WAVE, register
from lbc_pipeline.study import load_study

_STUDY = load_study()
_STARS = ["", *[stars for _, stars in _STUDY.star_rule]]
_LEVEL = f"{_STUDY.confidence_level:.0%}"


def _col(dtype, description: str, *checks: pa.Check, nullable: bool = False) -> pa.Column:
    return pa.Column(dtype, list(checks), nullable=nullable, description=description)


def _model_keys() -> dict[str, pa.Column]:
    specs = _STUDY.specifications
    return {
        "specification": _col(pl.String, "; ".join(f"{s}: {_STUDY.specification_notes[s]}" for s in specs), pa.Check.isin(list(specs))),
        "table_no": _col(pl.Int64, "The paper's table: " + ", ".join(map(str, _STUDY.regression_tables))),
        "model_no": _col(pl.Int64, "The model's number within its table"),
    }


def _estimates(p_note: str) -> dict[str, pa.Column]:
    return {
        "estimate": _col(pl.Float64, "OLS coefficient"),
        "std_error": _col(pl.Float64, "Standard error of the given se_type"),
        "t_value": _col(pl.Float64, "estimate / std_error"),
        "p_value": _col(pl.Float64, f"Two-sided p-value ({p_note})", pa.Check.in_range(0.0, 1.0)),
        "ci_low": _col(pl.Float64, f"Lower bound of the {_LEVEL} confidence interval"),
        "ci_high": _col(pl.Float64, f"Upper bound of the {_LEVEL} confidence interval"),
        "stars": _col(pl.String, _STUDY.star_legend(" "), pa.Check.isin(_STARS)),
    }


_TERM = ("Term: " + ", ".join([_STUDY.constant, *_STUDY.migration_terms]) + ", the controls, the moderator, "
         "or an interaction such as " + f"{_STUDY.hypothesis_term}:{_STUDY.moderators[0]}")

register("marts.model_coefficients", pa.DataFrameSchema({
    "wave": WAVE, **_model_keys(),
    "term": _col(pl.String, _TERM),
    **_estimates("t with n - k df; t with G - 1 df for cluster_school"),
    "se_type": _col(pl.String, "; ".join(f"{s}: {_STUDY.se_table_notes[s]}" for s in _STUDY.se_types), pa.Check.isin(list(_STUDY.se_types))),
    "wild_bootstrap_p": _col(pl.Float64, "cluster_school rows: wild cluster bootstrap p-value (Rademacher weights, null imposed); null otherwise", nullable=True),
    "note": _col(pl.String, "What to keep in mind about this SE type (e.g. only four schools: cluster-robust SEs are unreliable)"),
}, strict=True, unique=["wave", "specification", "table_no", "model_no", "term", "se_type"],
    description="One row per wave x specification x model x term x SE type: OLS estimates of the depression score"))

register("marts.model_fit", pa.DataFrameSchema({
    "wave": WAVE, **_model_keys(),
    "n_obs": _col(pl.Int64, "Children in the model"),
    "r_squared": _col(pl.Float64, "R-squared"),
    "adj_r_squared": _col(pl.Float64, "Adjusted R-squared"),
    "f_stat": _col(pl.Float64, "F statistic of the model against the constant only"),
    "f_p_value": _col(pl.Float64, "p-value of the F statistic"),
    "moderator": _col(pl.String, "School-support measure of Tables 3-4 (null in Table 2)", nullable=True),
    "centred": _col(pl.Boolean, "Whether the moderator is mean-centred on the analysis sample (null without a moderator)", nullable=True),
}, strict=True, unique=["wave", "specification", "table_no", "model_no"],
    description="One row per wave x specification x model: fit statistics"))

register("marts.table1", pa.DataFrameSchema({
    "wave": WAVE,
    "variable": _col(pl.String, "Variable (observations = group sizes)"),
    "level": _col(pl.String, "Category code as text (null for continuous variables)", nullable=True),
    "migration_group": _col(pl.String, ", ".join([*_STUDY.groups, _STUDY.all_groups]), pa.Check.isin([*_STUDY.groups, _STUDY.all_groups])),
    "statistic": _col(pl.String, "mean, sd (ddof=1), percent or n", pa.Check.isin(["mean", "sd", "percent", "n"])),
    "value": _col(pl.Float64, "The statistic's value", nullable=True),
}, strict=True, description="One row per wave x variable x level x migration group x statistic: the paper's Table 1 on the analysis sample"))

_TOL = _STUDY.tolerances
register("marts.replication", pa.DataFrameSchema({
    "wave": WAVE,
    "table_no": _col(pl.Int64, "The paper's table"),
    "model_no": _col(pl.Int64, "The model within the table"),
    "term": _col(pl.String, "Coefficient term, or r_squared / n_obs"),
    "published_estimate": _col(pl.Float64, "As printed in Wang (2023)"),
    "published_se": _col(pl.Float64, "Standard error as printed (null for r_squared and n_obs)", nullable=True),
    "published_stars": _col(pl.String, "Stars as printed", nullable=True),
    "estimate": _col(pl.Float64, f"Our estimate ({_STUDY.reference_specification} specification, {_STUDY.reference_se_type} SEs)", nullable=True),
    "std_error": _col(pl.Float64, "Our standard error", nullable=True),
    "stars": _col(pl.String, "Our stars", nullable=True),
    "delta": _col(pl.Float64, "estimate - published_estimate", nullable=True),
    "delta_in_se": _col(pl.Float64, "delta / published_se", nullable=True),
    "se_ratio": _col(pl.Float64, "std_error / published_se", nullable=True),
    "stars_match": _col(pl.Boolean, "Our stars equal the printed ones", nullable=True),
    "within_tolerance": _col(pl.Boolean, (
        f"Within the replication tolerance (coefficient {_TOL.estimate_in_se:g} SE and SE {_TOL.se_ratio:.0%}; "
        f"R-squared {_TOL.r_squared:g}" + "".join(f", Table {t} Model {m} {r:g}" for (t, m), r in _TOL.r_squared_overrides.items())
        + "; N exact)"), nullable=True),
}, strict=True, unique=['wave', 'table_no', 'model_no', 'term'], description="One row per wave x published number of Tables 2-4 (coefficients, R-squared, N): ours beside the paper's"))

register("marts.hypotheses", pa.DataFrameSchema({
    "wave": WAVE,
    "hypothesis": _col(pl.String, ", ".join(f"{h.id} {h.topic}" for h in _STUDY.hypotheses)),
    "measure": _col(pl.String, "The school-support measure"),
    "term": _col(pl.String, f"The {_STUDY.hypothesis_term} interaction term tested"),
    "table_no": _col(pl.Int64, f"Table of the model ({_STUDY.hypothesis_table})"),
    "model_no": _col(pl.Int64, f"Model within Table {_STUDY.hypothesis_table}"),
    "estimate": _col(pl.Float64, "Interaction estimate"),
    "std_error": _col(pl.Float64, f"Its {_STUDY.reference_se_type} standard error"),
    "p_value": _col(pl.Float64, "Its p-value", pa.Check.in_range(0.0, 1.0)),
    "buffering": _col(pl.Boolean, f"Negative and p < {_STUDY.hypothesis_alpha:g}: the measure buffers the {_STUDY.hypothesis_term} effect"),
    "supported": _col(pl.Boolean, "The hypothesis is supported: at least one of its measures buffers"),
    "sentence": _col(pl.String, "What the numbers say, generated from them"),
}, strict=True, unique=["wave", "hypothesis", "measure"],
    description="One row per wave x hypothesis x school-support measure: the buffering interaction and the verdict"))

# ------------------------------------------------------------------ cross-wave marts
_POOLED = {
    "wave": _col(pl.String, "'pooled': rows computed on every wave together"),
    "waves": _col(pl.String, "The waves pooled, comma-separated"),
}
_POOLED_SE = ("nonrobust", "HC3")
register("marts.pooled_coefficients", pa.DataFrameSchema({
    **_POOLED, **_model_keys(),
    "term": _col(pl.String, "Term as in marts.model_coefficients, plus wave_<id> fixed effects (the first wave is the reference)"),
    **_estimates("t with n - k df"),
    "se_type": _col(pl.String, "nonrobust or HC3 (no cluster SEs: too few schools)", pa.Check.isin(list(_POOLED_SE))),
    "n_obs": _col(pl.Int64, "Children in the pooled model"),
    "note": _col(pl.String, "Fixed effects used, reference wave, centring of the moderator on the pooled sample"),
}, strict=True, unique=['wave', 'specification', 'table_no', 'model_no', 'term', 'se_type'], description="One row per specification x model x term x SE type: the paper's models on all waves stacked, with wave fixed effects"))

register("marts.pooled_fit", pa.DataFrameSchema({
    **_POOLED, **_model_keys(),
    "n_obs": _col(pl.Int64, "Children in the pooled model"),
    "n_waves": _col(pl.Int64, "Waves pooled"),
    "r_squared": _col(pl.Float64, "R-squared"),
    "adj_r_squared": _col(pl.Float64, "Adjusted R-squared"),
    "f_stat": _col(pl.Float64, "F statistic (wave dummies included)"),
    "f_p_value": _col(pl.Float64, "p-value of the F statistic"),
}, strict=True, unique=['wave', 'specification', 'table_no', 'model_no'], description="One row per specification x model: fit of the pooled model"))

register("marts.wave_comparison", pa.DataFrameSchema({
    "wave": WAVE,
    "previous_wave": _col(pl.String, "The wave before (in wave order); null for the first", nullable=True),
    "kind": _col(pl.String, "group_size, share, mean, alpha or coefficient"),
    "measure": _col(pl.String, "Group, measure or model term"),
    "statistic": _col(pl.String, "n, share, mean, sd, cronbach_alpha, or the model label for coefficients"),
    "value": _col(pl.Float64, "This wave's number", nullable=True),
    "previous_value": _col(pl.Float64, "The previous wave's number", nullable=True),
    "delta": _col(pl.Float64, "value - previous_value", nullable=True),
    "relative_change": _col(pl.Float64, "delta / |previous_value| (null when it is 0)", nullable=True),
    "std_error": _col(pl.Float64, "Coefficient standard error (coefficients only)", nullable=True),
    "previous_std_error": _col(pl.Float64, "The previous wave's standard error", nullable=True),
    "z_change": _col(pl.Float64, "delta / sqrt(se^2 + previous se^2) (coefficients only)", nullable=True),
}, strict=True, description="One row per wave x kind x measure x statistic, beside the same number of the previous wave"))

