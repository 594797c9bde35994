"""Derived measures: age, the depression score, the migration group, recodes, the
teacher's-attitude factor score and scale reliability.

Each measure is a function of the typed staging questionnaires (one row per returned
questionnaire) that adds columns; where a measure is missing, a `*_missing_reason` column
says why. Rules follow instrument.md sections 2 and 4 and take every code from the codebook.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from lbc_pipeline.codebook import load_codebook

YES, NO = 1, 2
DIVORCED = 2
CUSTODY_MOTHER, CUSTODY_FATHER = 1, 2


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
    method: str = "closed_form"

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
        raw = _weighted_sum((values - self.item_means) / self.item_sds, self.weights)
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


class FactorError(ValueError):
    """The head-teacher items cannot carry a one-factor score (too few rows, no variance,
    correlations whose signs no single factor can produce)."""


# Below this uniqueness an item is a Heywood case: the factor is that item (see fit_one_factor).
HEYWOOD_UNIQUENESS = 1e-9


def one_factor_loadings(corr: np.ndarray) -> tuple[np.ndarray, str]:
    """Loadings of the exactly identified one-factor model of three standardised items.

    With three items the model has as many parameters (three loadings) as the correlation
    matrix has off-diagonal entries, so the loadings reproduce them exactly:
    r_ij = l_i l_j, hence l_i^2 = r_ij r_ik / r_jk. This is also the maximum-likelihood
    solution whenever every l_i^2 lies in (0, 1). Rules at the edges:

    - r_12 r_13 r_23 <= 0 (or a zero correlation): no single factor gives these signs;
      `FactorError`.
    - a Heywood case, l_i^2 >= 1 (uniqueness <= 0): the ML boundary solution, item i's
      uniqueness is 0, its loading 1, and the others load r_ij (the factor is item i).
      The returned method says so ("closed_form_heywood:<index>").
    Signs: the first item's loading is taken positive, the others follow from r_1j = l_1 l_j;
    the caller orients the whole vector.
    """
    if corr.shape != (3, 3):
        raise FactorError(f"the closed form needs exactly three items, got {corr.shape[0]}")
    r12, r13, r23 = corr[0, 1], corr[0, 2], corr[1, 2]
    if not np.all(np.isfinite([r12, r13, r23])):
        raise FactorError("an item has no variance on the estimation rows: no factor score")
    if r12 * r13 * r23 <= 0:
        raise FactorError(
            f"item correlations {r12:.3f}, {r13:.3f}, {r23:.3f}: their product is not positive, "
            "so no single factor reproduces them")
    squared = np.array([r12 * r13 / r23, r12 * r23 / r13, r13 * r23 / r12])
    if np.any(squared >= 1.0 - HEYWOOD_UNIQUENESS):
        i = int(np.argmax(squared))
        loadings = corr[i].copy()
        loadings[i] = 1.0
        return loadings * np.sign(loadings[0]), f"closed_form_heywood:{i}"
    l1 = np.sqrt(squared[0])
    return np.array([l1, r12 / l1, r13 / l1]), "closed_form"


def exact_moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column means, SDs (ddof=1) and the correlation matrix, every sum exactly rounded
    (`math.fsum`), so the result does not depend on summation order, memory alignment or BLAS."""
    n, p = values.shape
    means = np.array([math.fsum(values[:, j]) / n for j in range(p)])
    centred = values - means
    cov = np.array([[math.fsum(centred[:, i] * centred[:, j]) / (n - 1) for j in range(p)] for i in range(p)])
    sds = np.sqrt(np.diag(cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sds, sds)
    np.fill_diagonal(corr, 1.0)
    return means, sds, corr


def _weighted_sum(z: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """z @ weights as an element-wise sum in item order (no BLAS: the same bits on every run)."""
    total = np.zeros(z.shape[0])
    for j, w in enumerate(weights):
        total = total + z[:, j] * w
    return total


def fit_one_factor(values: np.ndarray, items: tuple[str, ...]) -> FactorSolution:
    """One-factor EFA of three items in closed form, and regression-method score weights.

    `values`: complete item rows (n x 3). The loadings are those of `one_factor_loadings` on
    the items' correlation matrix (equal to statsmodels' maximum-likelihood fit to its
    tolerance, but exact and the same on every run). They are oriented so that higher
    scores mean more of the trait (a positive sum of loadings). Score weights are R^-1 l
    (Thurstone's regression method); the scores are standardised (ddof=1) on these rows.
    """
    n, p = values.shape
    if n < p + 2:
        raise FactorError(f"{n} complete rows are too few for a factor model (at least {p + 2} needed)")
    means, sds, corr = exact_moments(values)
    loadings, method = one_factor_loadings(corr)
    if loadings.sum() < 0:
        loadings = -loadings
    uniqueness = 1.0 - loadings ** 2
    if method.startswith("closed_form_heywood"):
        i = int(method.rsplit(":", 1)[1])
        weights = np.zeros(p)
        weights[i] = np.sign(loadings[i])
    else:
        weights = np.linalg.solve(corr, loadings)
    raw = _weighted_sum((values - means) / sds, weights)
    raw_mean = math.fsum(raw) / n
    return FactorSolution(
        items=items, n=n, loadings=loadings, uniqueness=uniqueness, weights=weights,
        item_means=means, item_sds=sds, score_mean=raw_mean,
        score_sd=math.sqrt(math.fsum((raw - raw_mean) ** 2) / (n - 1)),
        eigenvalues=np.sort(np.linalg.eigvalsh(corr))[::-1], method=method,
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
