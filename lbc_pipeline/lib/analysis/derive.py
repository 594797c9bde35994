"""Derived measures: age, the depression score, the migration group, recodes, the
teacher's-attitude factor score and scale reliability.

Each measure is a function of the typed staging questionnaires (one row per returned
questionnaire) that adds columns; where a measure is missing, a `*_missing_reason` column
says why. Rules follow instrument.md sections 2 and 4 and take every code from the codebook.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from lbc_pipeline.codebook import load_codebook

YES, NO = 1, 2
DIVORCED = 2
CUSTODY_MOTHER, CUSTODY_FATHER = 1, 2
# statsmodels' ML factor fit draws its EM starting values at random: seed them, so that the
# same wave gives the same loadings (unseeded, two runs differed by about 1e-7).
FACTOR_SEED = 20230113


def add_age(frame: pl.DataFrame) -> pl.DataFrame:
    """Add `age`: completed years at `survey_date`, the birth day taken as the 15th.

    `age_missing_reason`: date_missing (no readable survey date), birth_date_missing
    (birth year or month missing), birth_after_survey (a birth date after the survey).
    """
    day = load_codebook().birth_day
    year_diff = pl.col("survey_date").dt.year() - pl.col("birth_year")
    before_birthday = (pl.col("survey_date").dt.month() < pl.col("birth_month")) | (
        (pl.col("survey_date").dt.month() == pl.col("birth_month"))
        & (pl.col("survey_date").dt.day() < day)
    )
    age = (year_diff - before_birthday.cast(pl.Int64)).cast(pl.Int64)
    reason = (
        pl.when(pl.col("survey_date").is_null()).then(pl.lit("date_missing"))
        .when(pl.col("birth_year").is_null() | pl.col("birth_month").is_null())
        .then(pl.lit("birth_date_missing"))
        .when(age < 0).then(pl.lit("birth_after_survey"))
        .otherwise(None)
    )
    return frame.with_columns(reason.alias("age_missing_reason")).with_columns(
        pl.when(pl.col("age_missing_reason").is_null()).then(age).otherwise(None).alias("age")
    )


def add_depression(frame: pl.DataFrame) -> pl.DataFrame:
    """Add `depression`: the sum of the six CEPS items (6-30), missing if any item is."""
    items = load_codebook().scale_items("depression")
    return frame.with_columns(
        pl.sum_horizontal(items).alias("depression"),
        pl.any_horizontal([pl.col(i).is_null() for i in items]).alias("__dep_missing"),
    ).with_columns(
        pl.when(pl.col("__dep_missing")).then(None).otherwise(pl.col("depression"))
        .cast(pl.Int64).alias("depression")
    ).drop("__dep_missing")


def add_migration_group(frame: pl.DataFrame) -> pl.DataFrame:
    """Add the parental-migration group and, where it is missing, why.

    - a parent is away when Q1 (`parent_away`) = yes and that parent's duration is at
      least 6 months (codes 3-5);
    - Q1 = no with a duration of 6 months or more for either parent: contradictory,
      the group is missing (`contradictory_migration`);
    - missing when Q1 is missing (`q1_missing`) or Q1 = yes and either duration is
      missing (`duration_missing`); Q1 = yes with both durations under 6 months: none;
    - divorced or separated parents: custody 1 counts only the mother's status (the
      father is treated as not away), custody 2 only the father's; joint or unknown
      custody counts both.
    Adds `migration_group` (none/mother/father/both), `migration_missing_reason`,
    `mother_counted_away` and `father_counted_away` (after the custody rule).
    """
    min_code = load_codebook().away_min_duration_code
    q1 = pl.col("parent_away")
    m_dur, f_dur = pl.col("mother_away_dur"), pl.col("father_away_dur")
    m_long = m_dur.fill_null(0) >= min_code
    f_long = f_dur.fill_null(0) >= min_code
    divorced = pl.col("parents_marital").fill_null(0) == DIVORCED
    custody = pl.col("custody").fill_null(0)
    mother_counts = ~(divorced & (custody == CUSTODY_FATHER))
    father_counts = ~(divorced & (custody == CUSTODY_MOTHER))
    reason = (
        pl.when(q1.is_null()).then(pl.lit("q1_missing"))
        .when((q1 == NO) & (m_long | f_long)).then(pl.lit("contradictory_migration"))
        .when((q1 == YES) & (m_dur.is_null() | f_dur.is_null())).then(pl.lit("duration_missing"))
        .otherwise(None)
    )
    mother_away = (q1 == YES) & m_long & mother_counts
    father_away = (q1 == YES) & f_long & father_counts
    group = (
        pl.when(mother_away & father_away).then(pl.lit("both"))
        .when(mother_away).then(pl.lit("mother"))
        .when(father_away).then(pl.lit("father"))
        .otherwise(pl.lit("none"))
    )
    return frame.with_columns(reason.alias("migration_missing_reason")).with_columns(
        pl.when(pl.col("migration_missing_reason").is_null()).then(group).otherwise(None)
        .alias("migration_group"),
        pl.when(pl.col("migration_missing_reason").is_null()).then(mother_away).otherwise(None)
        .alias("mother_counted_away"),
        pl.when(pl.col("migration_missing_reason").is_null()).then(father_away).otherwise(None)
        .alias("father_counted_away"),
    )


def add_recodes(frame: pl.DataFrame) -> pl.DataFrame:
    """Add the analysis codings: girl, korean, siblings 0/1/2, parents' education 1-3,
    deceased_parent, and the migration dummies."""
    book = load_codebook()
    group = pl.col("migration_group")
    return frame.with_columns(
        (pl.col("gender") == book.girl_code).cast(pl.Int64).alias("girl"),
        (pl.col("ethnicity") == book.korean_code).cast(pl.Int64).alias("korean"),
        pl.col("siblings").clip(upper_bound=book.siblings_cap).alias("siblings_3"),
        pl.col("mother_edu").replace_strict(book.education_map, default=None, return_dtype=pl.Int64).alias("mother_edu_3"),
        pl.col("father_edu").replace_strict(book.education_map, default=None, return_dtype=pl.Int64).alias("father_edu_3"),
        ((pl.col("mother_alive") == NO) | (pl.col("father_alive") == NO)).fill_null(False)
        .alias("deceased_parent"),
        (group == "mother").cast(pl.Int64).alias("mother_away"),
        (group == "father").cast(pl.Int64).alias("father_away"),
        (group == "both").cast(pl.Int64).alias("both_away"),
    )


def derive_measures(questionnaires: pl.DataFrame) -> pl.DataFrame:
    """Every derived measure of one wave's staging questionnaires (one row per qid)."""
    return add_recodes(add_migration_group(add_depression(add_age(questionnaires))))


# ------------------------------------------------------------------ teacher's attitude
@dataclass(frozen=True)
class FactorSolution:
    """A one-factor EFA: what the score rests on, for the record."""

    items: tuple[str, ...]
    n: int
    loadings: np.ndarray
    uniqueness: np.ndarray
    weights: np.ndarray  # regression-method score weights on standardised items
    item_means: np.ndarray
    item_sds: np.ndarray
    score_mean: float
    score_sd: float
    eigenvalues: np.ndarray
    method: str = "ml"

    @property
    def communality(self) -> np.ndarray:
        return 1.0 - self.uniqueness

    @property
    def variance_explained(self) -> float:
        return float(np.sum(self.loadings ** 2) / len(self.items))

    @property
    def degrees_of_freedom(self) -> int:
        p = len(self.items)
        return int(((p - 1) ** 2 - (p + 1)) / 2)  # 0 for three items: exactly identified

    def score(self, values: np.ndarray) -> np.ndarray:
        """Standardised factor scores (mean 0, SD 1 on the estimation sample) for item rows."""
        raw = ((values - self.item_means) / self.item_sds) @ self.weights
        return (raw - self.score_mean) / self.score_sd

    def as_rows(self, wave: str) -> list[dict]:
        """One row per item for `analysis.teacher_attitude_efa`."""
        return [
            {
                "wave": wave, "item": item, "n": self.n, "method": self.method,
                "loading": float(self.loadings[i]), "uniqueness": float(self.uniqueness[i]),
                "communality": float(self.communality[i]), "score_weight": float(self.weights[i]),
                "item_mean": float(self.item_means[i]), "item_sd": float(self.item_sds[i]),
                "eigenvalue": float(self.eigenvalues[i]),
                "variance_explained": self.variance_explained, "df": self.degrees_of_freedom,
            }
            for i, item in enumerate(self.items)
        ]


FACTOR_SEED = 20230113


def fit_one_factor(values: np.ndarray, items: tuple[str, ...]) -> FactorSolution:
    """One-factor maximum-likelihood EFA (statsmodels) and regression-method score weights.

    `values`: complete item rows (n x p). Loadings are oriented so that higher scores mean
    more of the trait (a positive sum of loadings). The scores are standardised (ddof=1) on
    these rows.
    """
    from statsmodels.multivariate.factor import Factor

    if values.shape[0] < values.shape[1] + 2:
        raise ValueError(f"{values.shape[0]} complete rows are too few for a factor model")
    # a fixed seed for the random start: unseeded, two runs gave scores ~3e-7 apart, which
    # moved every model estimate in the last digits and the imputations of the missing-data
    # analysis (predictive mean matching picks other donors) by up to 0.15
    fitted = Factor(values, n_factor=1, method="ml").fit(rng=FACTOR_SEED)
    loadings = np.asarray(fitted.loadings).ravel()
    if loadings.sum() < 0:
        loadings = -loadings
    corr = np.corrcoef(values, rowvar=False)
    weights = np.linalg.solve(corr, loadings)
    means = values.mean(axis=0)
    sds = values.std(axis=0, ddof=1)
    raw = ((values - means) / sds) @ weights
    return FactorSolution(
        items=items, n=values.shape[0], loadings=loadings,
        uniqueness=np.asarray(fitted.uniqueness).ravel(), weights=weights,
        item_means=means, item_sds=sds, score_mean=float(raw.mean()),
        score_sd=float(raw.std(ddof=1)),
        eigenvalues=np.sort(np.linalg.eigvalsh(corr))[::-1],
    )


def add_teacher_attitude(measures: pl.DataFrame, valid: pl.Series) -> tuple[pl.DataFrame, FactorSolution]:
    """Add `teacher_attitude`, estimated and standardised on the valid questionnaires
    (`valid` is a boolean mask) that answered the three head-teacher items, and scored for
    every questionnaire that answered them."""
    items = load_codebook().scale_items("teacher_attitude")
    complete = pl.all_horizontal([pl.col(i).is_not_null() for i in items])
    est = measures.filter(valid & measures.select(complete).to_series())
    solution = fit_one_factor(est.select(items).to_numpy().astype(float), items)
    answered = measures.select(complete).to_series()
    all_values = measures.select([pl.col(i).fill_null(0) for i in items]).to_numpy().astype(float)
    scores = solution.score(all_values)
    return measures.with_columns(
        pl.Series("teacher_attitude", np.where(answered.to_numpy(), scores, np.nan))
        .fill_nan(None)
    ), solution


# ------------------------------------------------------------------ reliability
@dataclass(frozen=True)
class Reliability:
    """Cronbach's alpha of a scale with its item statistics."""

    scale: str
    n: int
    items: tuple[str, ...]
    alpha: float
    item_means: tuple[float, ...]
    item_sds: tuple[float, ...]
    item_total_r: tuple[float, ...]  # corrected: item vs the sum of the other items
    alpha_if_deleted: tuple[float, ...]

    def as_row(self, wave: str, sample: str) -> dict:
        return {
            "wave": wave, "scale": self.scale, "sample": sample, "n": self.n,
            "n_items": len(self.items), "cronbach_alpha": self.alpha,
            "item_statistics": [
                {"item": item, "mean": self.item_means[i], "sd": self.item_sds[i],
                 "item_total_r": self.item_total_r[i], "alpha_if_deleted": self.alpha_if_deleted[i]}
                for i, item in enumerate(self.items)
            ],
        }


def cronbach_alpha(values: np.ndarray) -> float:
    """k/(k-1) * (1 - sum of item variances / variance of the total), ddof=1."""
    k = values.shape[1]
    item_var = values.var(axis=0, ddof=1).sum()
    total_var = values.sum(axis=1).var(ddof=1)
    return float(k / (k - 1) * (1 - item_var / total_var))


def scale_reliability(frame: pl.DataFrame, scale: str, items: tuple[str, ...]) -> Reliability:
    """Alpha, corrected item-total correlations and alpha-if-item-deleted on complete rows."""
    values = frame.select(items).drop_nulls().to_numpy().astype(float)
    total = values.sum(axis=1)
    item_total = tuple(
        float(np.corrcoef(values[:, i], total - values[:, i])[0, 1]) for i in range(len(items))
    )
    if_deleted = tuple(
        cronbach_alpha(np.delete(values, i, axis=1)) if len(items) > 2 else float("nan")
        for i in range(len(items))
    )
    return Reliability(
        scale=scale, n=values.shape[0], items=items, alpha=cronbach_alpha(values),
        item_means=tuple(float(x) for x in values.mean(axis=0)),
        item_sds=tuple(float(x) for x in values.std(axis=0, ddof=1)),
        item_total_r=item_total, alpha_if_deleted=if_deleted,
    )
