"""Across waves: the paper's models pooled with wave fixed effects, and wave-over-wave drift.

The product processes one survey wave after another (the reference wave "2019", a
follow-up "2021", ...). Researchers want two things the per-wave marts do not give:

- `pooled_models`: the fourteen models of Tables 2-4 fitted once on every wave's
  analysis sample stacked, with a wave fixed effect (`marts.pooled_coefficients`,
  `marts.pooled_fit`);
- `compare_waves`: each wave beside the one before it, for the group sizes, the means of
  the outcome and the school-support measures, the reliability of the depression scale
  and the key coefficients (`marts.wave_comparison`); `check_drift` turns that table
  into a WARN-level data-quality outcome.

Waves are ordered by their manifests' fieldwork start, ties by id (`config.wave_order`,
passed in as `order`); without an order, by sorting their ids as strings. The first wave in
that order is the reference of the wave fixed effects and has no previous wave.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from lbc_pipeline.codebook import load_codebook
from lbc_pipeline.lib import contracts
from lbc_pipeline.lib.marts import models
from lbc_pipeline.study import load_study
from lbc_pipeline.lib.analysis.derive import cronbach_alpha
from lbc_pipeline.lib.quality.rules import WARN, Outcome

# A wave fixed effect is the dummy `wave_<id>` (1 for that wave's children), one per wave
# but the first; the same name is its term in marts.pooled_coefficients.
WAVE_TERM_PREFIX = "wave_"
# Pooled models carry the SE types that do not cluster (too few schools to cluster on).
POOLED_SE_TYPES = tuple(s for s in models.SE_TYPES if not s.startswith("cluster"))

# Measures whose wave means (and SDs, the scale drift is measured in) are compared.
MEAN_MEASURES = (load_study().outcome, *load_study().moderators)
TOTAL = "total"
ALPHA_STATISTIC = "cronbach_alpha"
COMPARED_SPECIFICATION = load_study().reference_specification
COMPARED_SE_TYPE = load_study().reference_se_type
# The paper's base model (all its terms) and, in Table 4, mother_away x each moderator.
BASE_MODEL = (2, 2)
INTERACTION_TABLE = load_study().hypothesis_table
INTERACTION_DUMMY = load_study().hypothesis_term

POOLED_COEFFICIENT_SCHEMA = contracts.dtypes("marts.pooled_coefficients", drop=("wave",))
POOLED_FIT_SCHEMA = contracts.dtypes("marts.pooled_fit", drop=("wave",))
STATISTIC_SCHEMA = {
    "wave": pl.String,
    "kind": pl.String,
    "measure": pl.String,
    "statistic": pl.String,
    "value": pl.Float64,
    "std_error": pl.Float64,
}
COMPARISON_COLUMNS = tuple(contracts.dtypes("marts.wave_comparison"))


def wave_ids(frame: pl.DataFrame, order: list[str] | None = None) -> list[str]:
    """List the waves of a frame's `wave` column in survey order (the first is the reference):
    as in `order` (`config.wave_order`), waves it does not list after them, sorted."""
    present = set(frame["wave"].cast(pl.String).to_list())
    ranked = [w for w in (order or []) if w in present]
    return ranked + sorted(present - set(ranked))


def wave_term(wave: str) -> str:
    """Name the fixed effect (dummy and term) of one wave, e.g. 'wave_2021'."""
    return f"{WAVE_TERM_PREFIX}{wave}"


def pooled_terms(spec: models.ModelSpec, waves: list[str]) -> tuple[str, ...]:
    """List a pooled model's terms: the spec's terms with the wave dummies before `const`."""
    at = spec.terms.index(models.CONST)
    return (*spec.terms[:at], *(wave_term(w) for w in waves[1:]), *spec.terms[at:])


def pooled_design(
    samples: pl.DataFrame, spec: models.ModelSpec, waves: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Build the outcome and the design matrix of a pooled model, columns in `pooled_terms` order.

    `models.design_matrix` on the stacked sample (so a centred moderator is centred on
    the pooled sample), plus one 0/1 column per wave but the first.
    """
    y, X = models.design_matrix(samples, spec)
    wave = samples["wave"].cast(pl.String).to_numpy()
    dummies = (wave[:, None] == np.array(waves[1:], dtype=object)[None, :]).astype(float)
    at = spec.terms.index(models.CONST)
    return y, np.hstack([X[:, :at], dummies, X[:, at:]])


def pooled_note(samples: pl.DataFrame, spec: models.ModelSpec, waves: list[str]) -> str:
    """Say how the waves and the moderator enter a pooled model."""
    if len(waves) > 1:
        effects = (
            f"wave fixed effects {', '.join(wave_term(w) for w in waves[1:])} "
            f"(reference wave {waves[0]})"
        )
    else:
        effects = f"one wave ({waves[0]}): no wave fixed effects, the wave's own model"
    if spec.moderator is None:
        return effects
    mean = models.moderator_values(samples, spec)[1]
    coding = (
        f"{spec.moderator} centred on the pooled sample (mean {mean:.4f})"
        if spec.centre_moderator
        else f"{spec.moderator} enters raw (not centred), as published"
    )
    return f"{effects}; {coding}"


def coefficient_table(result, terms: tuple[str, ...]) -> pl.DataFrame:
    """One row per term of a statsmodels OLS result: estimate to stars, 95% interval."""
    interval = np.asarray(result.conf_int(alpha=1 - models.CONFIDENCE_LEVEL))
    p_values = np.asarray(result.pvalues, dtype=float)
    return pl.DataFrame(
        {
            "term": list(terms),
            "estimate": np.asarray(result.params, dtype=float),
            "std_error": np.asarray(result.bse, dtype=float),
            "t_value": np.asarray(result.tvalues, dtype=float),
            "p_value": p_values,
            "ci_low": interval[:, 0],
            "ci_high": interval[:, 1],
            "stars": [models.significance_stars(p) for p in p_values],
        }
    )


def fit_pooled_model(
    samples: pl.DataFrame, spec: models.ModelSpec, waves: list[str]
) -> tuple[pl.DataFrame, dict]:
    """Fit one pooled model: its coefficient rows (term x SE type) and its fit row."""
    from statsmodels.regression.linear_model import OLS  # slow to import: only where fitted

    terms = pooled_terms(spec, waves)
    y, X = pooled_design(samples, spec, waves)
    with warnings.catch_warnings():  # a rank-deficient design is refused just below
        warnings.filterwarnings("ignore", message="The design matrix is rank-deficient")
        base = OLS(y, X).fit()
    if models.design_rank(base) < X.shape[1]:
        raise ValueError(
            f"pooled {spec.label} on waves {waves} cannot be estimated: its design matrix "
            "is rank deficient"
        )
    results = {se_type: models.robust_results(base, se_type) for se_type in POOLED_SE_TYPES}
    label = ",".join(waves)
    note = pooled_note(samples, spec, waves)
    se_notes = load_study().se_notes
    coefficients = pl.concat(
        [
            coefficient_table(res, terms).with_columns(
                pl.lit(label).alias("waves"),
                pl.lit(spec.specification).alias("specification"),
                pl.lit(spec.table_no, dtype=pl.Int64).alias("table_no"),
                pl.lit(spec.model_no, dtype=pl.Int64).alias("model_no"),
                pl.lit(se_type).alias("se_type"),
                pl.lit(int(base.nobs), dtype=pl.Int64).alias("n_obs"),
                pl.lit(f"{note}; {se_notes[se_type]}").alias("note"),
            )
            for se_type, res in results.items()
        ]
    ).select(list(POOLED_COEFFICIENT_SCHEMA))
    fit = {
        "waves": label,
        "specification": spec.specification,
        "table_no": spec.table_no,
        "model_no": spec.model_no,
        "n_obs": int(base.nobs),
        "n_waves": len(waves),
        "r_squared": float(base.rsquared),
        "adj_r_squared": float(base.rsquared_adj),
        "f_stat": float(base.fvalue),
        "f_p_value": float(base.f_pvalue),
    }
    return coefficients, fit


def pooled_models(
    samples: pl.DataFrame, specification: models.Specification = "as_published", order: list[str] | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fit the fourteen models of one specification on several waves stacked, with wave fixed effects.

    `samples` is `analysis.analytic_sample` of one or more waves stacked. Each model has
    the design of `models.design_matrix` on the stacked sample plus one dummy
    `wave_<id>` per wave but the first in sorted order (the reference wave); its term is
    named the same, placed before `const`. Where the spec centres the moderator it is
    centred on the POOLED sample (the `note` gives the mean), so the migration
    coefficients are effects at the pooled mean. With a single wave there is no
    fixed effect and the model is that wave's own model (the `note` says so).

    Standard errors: `nonrobust` (the paper's) and `HC3`. Clustering by school is left
    out: the waves survey the same few schools (four in the reference wave), so the
    stacked sample still has only a handful of clusters, and a CR1 sandwich with G-1
    degrees of freedom is unreliable at that count; the per-wave
    `marts.model_coefficients` keeps the `cluster_school` rows with a wild cluster
    bootstrap p-value.

    Returns (`marts.pooled_coefficients`, `marts.pooled_fit`):
    - pooled_coefficients: one row per model x term x SE type, with waves (the wave ids
      joined by commas, e.g. "2019,2021"), specification, table_no, model_no, term,
      estimate, std_error, t_value, p_value, ci_low, ci_high, stars, se_type, n_obs, note;
    - pooled_fit: one row per model, with waves, specification, table_no, model_no,
      n_obs, n_waves, r_squared, adj_r_squared, f_stat and f_p_value (the conventional F
      test of every term but `const`, the wave dummies included).
    """
    if samples.height == 0:
        raise ValueError("no analysis sample to pool: the stacked frame is empty")
    waves = wave_ids(samples, order)
    fitted = [fit_pooled_model(samples, spec, waves) for spec in models.model_specs(specification)]
    coefficients = pl.concat([c for c, _ in fitted])
    fits = pl.DataFrame([f for _, f in fitted], schema=POOLED_FIT_SCHEMA)
    return coefficients, fits


def group_size_statistics(samples: pl.DataFrame) -> pl.DataFrame:
    """One row per wave x migration group (and `total`): statistic 'n', the children in it."""
    groups = (*load_codebook().migration_groups, TOTAL)
    counts = pl.concat(
        [
            samples.group_by("wave", "migration_group").agg(pl.len().alias("value")),
            samples.group_by("wave").agg(pl.len().alias("value")).with_columns(
                pl.lit(TOTAL).alias("migration_group")
            ),
        ],
        how="diagonal",
    ).rename({"migration_group": "measure"})
    every_cell = pl.DataFrame({"wave": wave_ids(samples)}).join(
        pl.DataFrame({"measure": groups}), how="cross"
    )
    return every_cell.join(counts, on=["wave", "measure"], how="left", maintain_order="left").select(
        "wave",
        pl.lit("group_size").alias("kind"),
        "measure",
        pl.lit("n").alias("statistic"),
        pl.col("value").fill_null(0).cast(pl.Float64),
        pl.lit(None, dtype=pl.Float64).alias("std_error"),
    )


def moment_statistics(
    samples: pl.DataFrame, kind: str, measures: tuple[str, ...], statistics: dict[str, pl.Expr]
) -> pl.DataFrame:
    """One row per wave x measure x statistic, each statistic an expression of `value`."""
    long = samples.select(
        pl.col("wave").cast(pl.String), *(pl.col(m).cast(pl.Float64) for m in measures)
    ).unpivot(index="wave", variable_name="measure")
    return (
        long.group_by("wave", "measure", maintain_order=True)
        .agg(**statistics)
        .unpivot(index=["wave", "measure"], variable_name="statistic")
        .select(
            "wave",
            pl.lit(kind).alias("kind"),
            "measure",
            "statistic",
            "value",
            pl.lit(None, dtype=pl.Float64).alias("std_error"),
        )
    )


def alpha_statistics(samples: pl.DataFrame) -> pl.DataFrame:
    """One row per wave: Cronbach's alpha of the depression items (dep1..dep6)."""
    items = load_codebook().scale_items("depression")
    rows = [
        {
            "wave": wave,
            "kind": "alpha",
            "measure": "depression",
            "statistic": ALPHA_STATISTIC,
            "value": cronbach_alpha(
                samples.filter(pl.col("wave") == wave).select(items).cast(pl.Float64).to_numpy()
            ),
            "std_error": None,
        }
        for wave in wave_ids(samples)
    ]
    return pl.DataFrame(rows, schema=STATISTIC_SCHEMA)


def compared_coefficients() -> pl.DataFrame:
    """The coefficients compared across waves: (table_no, model_no, term, statistic label).

    Every term of Table 2 Model 2 and, in each Table 4 model, the interaction of
    mother_away with that model's moderator; the statistic is the model's label.
    """
    rows = []
    for spec in models.model_specs(COMPARED_SPECIFICATION):
        if (spec.table_no, spec.model_no) == BASE_MODEL:
            terms = spec.terms
        elif spec.table_no == INTERACTION_TABLE:
            terms = (models.interaction_term(INTERACTION_DUMMY, spec.moderator),)
        else:
            continue
        rows += [
            {"table_no": spec.table_no, "model_no": spec.model_no, "term": t, "statistic": spec.label}
            for t in terms
        ]
    schema = {"table_no": pl.Int64, "model_no": pl.Int64, "term": pl.String, "statistic": pl.String}
    return pl.DataFrame(rows, schema=schema)


def coefficient_statistics(coefficients: pl.DataFrame) -> pl.DataFrame:
    """One row per wave x compared coefficient: estimate as value, with its std_error."""
    return (
        compared_coefficients()
        .join(
            coefficients.filter(
                (pl.col("specification") == COMPARED_SPECIFICATION)
                & (pl.col("se_type") == COMPARED_SE_TYPE)
            ).with_columns(pl.col("wave").cast(pl.String)),
            on=["table_no", "model_no", "term"],
            how="inner",
        )
        .sort("wave", maintain_order=True)
        .select(
            "wave",
            pl.lit("coefficient").alias("kind"),
            pl.col("term").alias("measure"),
            "statistic",
            pl.col("estimate").cast(pl.Float64).alias("value"),
            pl.col("std_error").cast(pl.Float64),
        )
    )


def compare_waves(samples: pl.DataFrame, coefficients: pl.DataFrame, order: list[str] | None = None) -> pl.DataFrame:
    """Put each wave's key statistics beside the previous wave's: `marts.wave_comparison`.

    One row per wave x measure x statistic. `kind` says what the value is:
    - group_size: measure = a migration group or `total`, statistic `n`;
    - share: measure = mother_away / father_away / both_away, statistic `share` (mean of
      the dummy);
    - mean: measure = depression, teacher_attitude, belong, ht_satisfaction,
      best_friends, class_closeness or peer_satisfaction, statistic `mean` and `sd`
      (ddof 1; the scale `check_drift` measures a mean's shift in);
    - alpha: measure `depression`, statistic `cronbach_alpha` of dep1..dep6;
    - coefficient: measure = the term, statistic = the model ('Table 2 Model 2' for all
      of its terms; 'Table 4 Model k' for mother_away x that model's moderator), value =
      the as_published nonrobust estimate taken from `coefficients` (per-wave
      `marts.model_coefficients` of the same waves, stacked), with its std_error.

    Adds previous_wave (the wave before in `order`, see `wave_ids`; null for the first),
    previous_value, delta (value - previous_value), relative_change
    (delta / |previous_value|, null when that is 0), previous_std_error, and z_change
    (coefficients: delta / sqrt(std_error^2 + previous_std_error^2), treating the waves'
    samples as independent). A statistic missing in the previous wave has null
    previous columns.
    """
    waves = wave_ids(samples, order)
    coefficient_waves = wave_ids(coefficients, order)
    if coefficient_waves != waves:
        raise ValueError(
            f"the coefficients cover waves {coefficient_waves} but the samples cover {waves}"
        )
    samples = samples.with_columns(pl.col("wave").cast(pl.String))
    statistics = pl.concat(
        [
            group_size_statistics(samples),
            moment_statistics(samples, "share", models.MIGRATION_TERMS, {"share": pl.col("value").mean()}),
            moment_statistics(
                samples, "mean", MEAN_MEASURES, {"mean": pl.col("value").mean(), "sd": pl.col("value").std()}
            ),
            alpha_statistics(samples),
            coefficient_statistics(coefficients),
        ]
    ).sort("wave", maintain_order=True)
    order = pl.DataFrame(
        {"wave": waves, "previous_wave": [None, *waves[:-1]]},
        schema={"wave": pl.String, "previous_wave": pl.String},
    )
    previous = statistics.select(
        pl.col("wave").alias("previous_wave"),
        "kind",
        "measure",
        "statistic",
        pl.col("value").alias("previous_value"),
        pl.col("std_error").alias("previous_std_error"),
    )
    delta = pl.col("value") - pl.col("previous_value")
    keys = ["previous_wave", "kind", "measure", "statistic"]
    return (
        statistics.join(order, on="wave", how="left", maintain_order="left")
        .join(previous, on=keys, how="left", maintain_order="left")
        .with_columns(delta.alias("delta"))
        .with_columns(
            pl.when(pl.col("previous_value") != 0)
            .then(pl.col("delta") / pl.col("previous_value").abs())
            .alias("relative_change"),
            (pl.col("delta") / (pl.col("std_error") ** 2 + pl.col("previous_std_error") ** 2).sqrt())
            .alias("z_change"),
        )
        .select(COMPARISON_COLUMNS)
    )


@dataclass(frozen=True)
class DriftSettings:
    """Thresholds beyond which a wave-over-wave change is reported as drift (WARN)."""

    # |relative change| of a migration group's n (or the total) against the previous wave;
    # a group appearing from nothing counts as drift.
    max_group_size_change: float = 0.25
    # |change of a mean| in SDs of the previous wave (depression, teacher_attitude, the
    # school-support measures).
    max_mean_shift_sd: float = 0.3
    # |change| of Cronbach's alpha of the depression scale.
    max_alpha_change: float = 0.05
    # |z_change| of a compared coefficient (2.58: two-sided 1% if the waves are independent).
    max_coefficient_z: float = 2.58


def change_in_units(change: pl.Expr, unit: pl.Expr) -> pl.Expr:
    """|change| / unit; a change from a zero unit (a group from nothing, a constant
    measure that moves) is infinite, no change is 0."""
    return (
        pl.when(unit > 0)
        .then(change.abs() / unit)
        .when(change != 0)
        .then(float("inf"))
        .otherwise(0.0)
    )


def drift_rows(comparison: pl.DataFrame, settings: DriftSettings) -> pl.DataFrame:
    """The comparison rows that drift, with `size` (the change in the rule's unit),
    `threshold` and `rule`."""
    previous_sd = comparison.filter((pl.col("kind") == "mean") & (pl.col("statistic") == "sd")).select(
        "wave", "measure", pl.col("previous_value").alias("previous_sd")
    )
    compared = comparison.filter(pl.col("previous_wave").is_not_null()).join(
        previous_sd, on=["wave", "measure"], how="left", maintain_order="left"
    )
    kind, delta = pl.col("kind"), pl.col("delta")
    rules = (
        (
            kind == "group_size",
            change_in_units(delta, pl.col("previous_value")),
            settings.max_group_size_change,
            "relative change of n",
        ),
        (
            (kind == "mean") & (pl.col("statistic") == "mean"),
            change_in_units(delta, pl.col("previous_sd")),
            settings.max_mean_shift_sd,
            "change of the mean in SDs of the previous wave",
        ),
        (kind == "alpha", delta.abs(), settings.max_alpha_change, "absolute change of alpha"),
        (kind == "coefficient", pl.col("z_change").abs(), settings.max_coefficient_z, "|z| of the change"),
    )
    return pl.concat(
        [
            compared.filter(applies)
            .with_columns(
                size.alias("size"), pl.lit(threshold).alias("threshold"), pl.lit(rule).alias("rule")
            )
            .filter(pl.col("size") > pl.col("threshold"))
            for applies, size, threshold, rule in rules
        ]
    ).select(
        "wave", "previous_wave", "kind", "measure", "statistic", "value", "previous_value",
        "delta", "relative_change", "z_change", "size", "threshold", "rule",
    )


def check_drift(comparison: pl.DataFrame, settings: DriftSettings = DriftSettings()) -> Outcome:
    """WARN when a statistic of `marts.wave_comparison` moves beyond its threshold.

    Each wave is compared with the one before it: group sizes by relative change, means
    in SDs of the previous wave, alpha by absolute change, coefficients by |z_change|.
    Passes when nothing drifts, or when there is only one wave. Metadata: the waves, the
    thresholds and every flagged measure with its numbers.
    """
    waves = wave_ids(comparison)
    metadata = {"waves": waves, "thresholds": asdict(settings)}
    if len(waves) < 2:
        description = f"only one wave ({', '.join(waves) or 'none'}): nothing to compare"
        return Outcome(True, WARN, description, {**metadata, "flagged": []})
    flagged = drift_rows(comparison, settings).to_dicts()
    if not flagged:
        description = f"no statistic drifts between consecutive waves ({' -> '.join(waves)})"
    else:
        description = "drift between waves: " + "; ".join(
            f"{r['previous_wave']} -> {r['wave']} {r['kind']} {r['measure']} {r['statistic']}: "
            f"{r['previous_value']:.4g} -> {r['value']:.4g} ({r['rule']} {r['size']:.3g} > {r['threshold']})"
            for r in flagged
        )
    return Outcome(not flagged, WARN, description, {**metadata, "flagged": flagged})
