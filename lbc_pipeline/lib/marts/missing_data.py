"""Do the findings survive the 321 questionnaires dropped for a missing value?

The paper analyses complete cases: 605 of the 926 valid questionnaires with both parents
alive, most of the others excluded because a parent's education was answered "don't know".
Two analyses, on those 926 (`sensitivity_frame`):

- Little's (1988) MCAR test on the model variables (migration group as three dummies):
  d2 = sum over missingness patterns j of n_j (ybar_j - mu_j)' Sigma_j^-1 (ybar_j - mu_j),
  with mu, Sigma the maximum-likelihood (EM) estimates under multivariate normality,
  chi-squared with sum_j p_j - p df. A small p says the data are not MCAR: complete-case
  estimates may be biased, multiple imputation (which assumes MAR) is the better guide.
- Multiple imputation by chained equations: M = N_IMPUTATIONS imputations, each its own
  seeded chain of N_ITERATIONS rounds. Every incomplete variable is imputed from all the
  others (the outcome and the moderators included) and the school:
  predictive mean matching (PMM, 5 donors, coefficients drawn from their posterior) for
  the numeric and ordinal variables, which keeps imputed values on the observed codes;
  linear discriminant analysis with a bootstrap of the observed rows for the nominal
  migration group. The migration dummies and the interactions are computed *passively*
  from the imputed group and moderator (in the design matrix), never imputed
  themselves, and each model centres its moderator on the imputed data set as the
  paper's coding does. teacher_attitude (a factor score) is imputed as a variable.
  The 14 models (as published) are fitted on each data set and pooled with Rubin's rules:
  total variance T = U + (1 + 1/M) B, Barnard-Rubin degrees of freedom, fraction of
  missing information.

The imputation model of every numeric variable also holds the products of the migration
dummies with the moderators (recomputed from the current values at each step), so that
it carries the interactions Table 4 estimates; without them the imputations would pull
the interactions towards zero.

Limits: the migration group is imputed from main effects only (LDA); MAR is assumed, not
tested; the imputation models are linear.

Tables: `marts.mcar_test` (one row per wave) and `marts.mi_coefficients` (one row per
wave x model x term, beside the complete-case estimate).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandera.polars as pa
import polars as pl
from scipy import stats

from lbc_pipeline.lib.contracts import WAVE, register
from lbc_pipeline.lib.marts.blas import single_blas_thread
from lbc_pipeline.lib.marts.models import MODERATORS, design_matrix, model_specs, significance_stars
from lbc_pipeline.lib.marts.sensitivity_frame import add_group_dummies, complete_cases, sensitivity_frame
from lbc_pipeline.lib.parallel import fork_imap

N_IMPUTATIONS = 20
N_ITERATIONS = 10
PMM_DONORS = 5
MI_SEED = 20230113
MI_SPECIFICATION = "as_published"
GROUP_LEVELS = ("none", "mother", "father", "both")
NUMERIC_VARIABLES = (
    "depression", "girl", "age", "grade", "siblings", "korean", "mother_edu", "father_edu",
    "belong", "teacher_attitude", "ht_satisfaction", "best_friends", "class_closeness", "peer_satisfaction",
)
MCAR_VARIABLES = (*NUMERIC_VARIABLES, "mother_away", "father_away", "both_away")
EM_TOLERANCE = 1e-10
EM_MAX_ITER = 5000
# Up to this many rows a chain uses the direct forms (a dummy column per school, `pmm_draw`,
# `lda_draw`); above it the school-effect forms of `SchoolEffectsChain`, which draw from the
# same posterior with a different use of the random numbers (see its docstring).
MI_DIRECT_MAX_ROWS = 5_000
# `pmm_draw` forms the missing x observed distance matrix (by blocks of missing rows, the
# same result) up to this many cells; above it the k nearest come from a sorted search.
PMM_DISTANCE_MAX_CELLS = 25_000_000
PMM_BLOCK_CELLS = 2_000_000
# `stable_argsort` sorts through integer keys from this length on (below it numpy's stable
# sort of the floats is as fast); the permutation is the same either way.
STABLE_ARGSORT_RADIX_MIN = 4096
# `nearest_by_sorting` looks up the predicted means of this many missing rows or more in
# increasing order (the same positions).
SEARCHSORTED_SORT_MIN = 4096


# ------------------------------------------------------------------ Little's MCAR test
@dataclass(frozen=True)
class MissingnessPatterns:
    """The rows of a matrix grouped by their pattern of observed values."""

    observed: np.ndarray  # patterns x columns, True where observed, in np.unique(axis=0)'s order
    blocks: list[np.ndarray]  # each pattern's rows, in their order in the matrix


def missingness_patterns(Y: np.ndarray) -> MissingnessPatterns:
    """Group the rows of Y by pattern, once: the patterns in the order of
    `np.unique(~np.isnan(Y), axis=0)` (lexicographic, the first column first, missing before
    observed), each pattern's rows in their order in Y, so that sums over a block are those
    over `Y[inverse == j]`, to the bit. Each row's pattern is a bit-packed integer key (up
    to 63 columns; the order is the same): sorting integers is much faster than sorting
    rows, and gathering every block once, not masking the whole matrix per pattern and per
    EM iteration, is what makes the test feasible at a million rows."""
    observed = ~np.isnan(Y)
    n, p = Y.shape
    if 0 < p < 64:
        keys = np.zeros(n, dtype=np.uint64)
        for c in range(p):
            keys |= observed[:, c].astype(np.uint64) << np.uint64(p - 1 - c)
        unique_keys, inverse = np.unique(keys, return_inverse=True)
        patterns = ((unique_keys[:, None] >> np.arange(p - 1, -1, -1, dtype=np.uint64)) & np.uint64(1)).astype(bool)
    else:
        patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    ends = np.cumsum(np.bincount(inverse, minlength=len(patterns)))
    grouped = Y[order]
    blocks = [grouped[start:stop] for start, stop in zip(np.concatenate([[0], ends[:-1]]), ends)]
    return MissingnessPatterns(patterns, blocks)


def em_mvn(Y: np.ndarray, tol: float = EM_TOLERANCE, max_iter: int = EM_MAX_ITER) -> tuple[np.ndarray, np.ndarray, int]:
    """Maximum-likelihood mean and covariance of multivariate normal data with NaNs (EM).

    Rows with every value missing are ignored. Returns (mu, sigma, iterations).
    """
    Y = Y[~np.isnan(Y).all(axis=1)]
    return _em_mvn(Y, missingness_patterns(Y), tol, max_iter)


def _em_mvn(Y: np.ndarray, groups: MissingnessPatterns, tol: float, max_iter: int) -> tuple[np.ndarray, np.ndarray, int]:
    """`em_mvn` on Y's rows grouped by pattern. A complete pattern's sums are the same at every
    iteration: computed once (the same expressions, the same numbers)."""
    n, p = Y.shape
    mu = np.nanmean(Y, axis=0)
    sigma = np.diag(np.nanvar(Y, axis=0))
    complete: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for iteration in range(1, max_iter + 1):
        t1 = np.zeros(p)
        t2 = np.zeros((p, p))
        for j, (pattern, rows) in enumerate(zip(groups.observed, groups.blocks)):
            o, m = pattern, ~pattern
            if not m.any():
                if j not in complete:
                    complete[j] = rows.sum(axis=0), rows.T @ rows + len(rows) * np.zeros((p, p))
                s1, s2 = complete[j]
                t1 += s1
                t2 += s2
                continue
            filled = rows.copy()
            correction = np.zeros((p, p))
            coef = sigma[np.ix_(m, o)] @ np.linalg.inv(sigma[np.ix_(o, o)])
            filled[:, m] = mu[m] + (rows[:, o] - mu[o]) @ coef.T
            correction[np.ix_(m, m)] = sigma[np.ix_(m, m)] - coef @ sigma[np.ix_(o, m)]
            t1 += filled.sum(axis=0)
            t2 += filled.T @ filled + len(rows) * correction
        new_mu = t1 / n
        new_sigma = t2 / n - np.outer(new_mu, new_mu)
        change = max(np.abs(new_mu - mu).max(), np.abs(new_sigma - sigma).max())
        mu, sigma = new_mu, new_sigma
        if change < tol:
            return mu, sigma, iteration
    raise ValueError(f"EM for Little's MCAR test did not converge in {max_iter} iterations")


@dataclass(frozen=True)
class McarResult:
    statistic: float
    df: int
    p_value: float
    n_patterns: int
    n_rows: int


def little_mcar_test(Y: np.ndarray) -> McarResult:
    """Little's (1988) chi-squared test that the values are missing completely at random."""
    Y = Y[~np.isnan(Y).all(axis=1)]
    n, p = Y.shape
    groups = missingness_patterns(Y)
    mu, sigma, _ = _em_mvn(Y, groups, EM_TOLERANCE, EM_MAX_ITER)
    d2, df = 0.0, 0
    for o, block in zip(groups.observed, groups.blocks):
        rows = block[:, o]
        diff = rows.mean(axis=0) - mu[o]
        d2 += len(rows) * float(diff @ np.linalg.solve(sigma[np.ix_(o, o)], diff))
        df += int(o.sum())
    df -= p
    if df == 0:  # one pattern, nothing missing: nothing to test
        return McarResult(0.0, 0, 1.0, len(groups.observed), n)
    return McarResult(d2, df, float(stats.chi2.sf(d2, df)), len(groups.observed), n)


MCAR_SCHEMA = {"wave": pl.String, "variables": pl.String, "n_rows": pl.Int64, "n_incomplete": pl.Int64,
               "n_patterns": pl.Int64, "statistic": pl.Float64, "df": pl.Int64, "p_value": pl.Float64,
               "conclusion": pl.String}


@single_blas_thread
def mcar_test(frame: pl.DataFrame, wave: str) -> pl.DataFrame:
    """`marts.mcar_test`: Little's test on the model variables of the sensitivity frame."""
    Y = frame.select(pl.col(c).cast(pl.Float64) for c in MCAR_VARIABLES).to_numpy()
    result = little_mcar_test(Y)
    incomplete = int(np.isnan(Y).any(axis=1).sum())
    conclusion = ("no missing values: nothing to test" if result.df == 0 else
                  "the values are not missing completely at random (p < 0.05): complete-case estimates may be biased"
                  if result.p_value < 0.05 else "no evidence against missing completely at random (p >= 0.05)")
    frame = pl.DataFrame([{"wave": wave, "variables": ", ".join(MCAR_VARIABLES), "n_rows": result.n_rows,
                           "n_incomplete": incomplete, "n_patterns": result.n_patterns,
                           "statistic": result.statistic, "df": result.df, "p_value": result.p_value,
                           "conclusion": conclusion}], schema=MCAR_SCHEMA)
    return MCAR_CONTRACT.validate(frame)


# ------------------------------------------------------------------ chained equations
def _with_const(Z: np.ndarray) -> np.ndarray:
    return np.column_stack([Z, np.ones(len(Z))])


def _covariance_root(cov: np.ndarray) -> np.ndarray:
    """A square root of a covariance matrix: its Cholesky factor, or, when collinear predictors
    (a small wave, a constant column) leave it only semi-definite, the eigen root with the
    negative rounding-error eigenvalues set to 0."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh((cov + cov.T) / 2)
        return vectors * np.sqrt(np.clip(values, 0.0, None))


def pmm_draw(y_obs: np.ndarray, Z_obs: np.ndarray, Z_mis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Predictive mean matching: a posterior draw of the coefficients, then for each missing
    row a random one of the PMM_DONORS observed rows with the closest predicted mean."""
    X, Xm = _with_const(Z_obs), _with_const(Z_mis)
    xtx_inv = np.linalg.pinv(X.T @ X)
    beta = xtx_inv @ X.T @ y_obs
    resid = y_obs - X @ beta
    df = max(len(y_obs) - X.shape[1], 1)
    sigma2 = resid @ resid / rng.chisquare(df)
    beta_star = beta + _covariance_root(sigma2 * xtx_inv + 1e-12 * np.eye(X.shape[1])) @ rng.standard_normal(X.shape[1])
    yhat_obs, yhat_mis = X @ beta, Xm @ beta_star
    k = min(PMM_DONORS, len(y_obs))
    if len(yhat_mis) * len(yhat_obs) <= PMM_DISTANCE_MAX_CELLS:
        donors = nearest_by_distance(yhat_obs, yhat_mis, k)
    else:
        donors = nearest_by_sorting(yhat_obs, yhat_mis, k)
    choice = donors[np.arange(len(Z_mis)), rng.integers(0, k, len(Z_mis))]
    return y_obs[choice]


def nearest_by_distance(yhat_obs: np.ndarray, yhat_mis: np.ndarray, k: int) -> np.ndarray:
    """Indices (missing rows x k) of the k observed rows with the closest predicted mean, from
    the missing x observed distance matrix and np.argpartition, formed PMM_BLOCK_CELLS cells
    at a time: each row's selection depends on that row only, so blocks give the same
    indices, in the same order, as the whole matrix. Ties are broken by argpartition's
    (deterministic) positions; the order among the k is argpartition's."""
    out = np.empty((len(yhat_mis), k), dtype=np.intp)
    step = max(1, PMM_BLOCK_CELLS // max(len(yhat_obs), 1))
    for start in range(0, len(yhat_mis), step):
        distance = np.abs(yhat_mis[start:start + step, None] - yhat_obs[None, :])
        out[start:start + step] = np.argpartition(distance, k - 1, axis=1)[:, :k]
    return out


def stable_argsort(a: np.ndarray) -> np.ndarray:
    """`np.argsort(a, kind="stable")` of a float64 vector, the same permutation (ties in index
    order), faster on a long one. Each float becomes an unsigned integer in the same order
    (a non-negative one with its sign bit set, a negative one with every bit flipped; -0.0 is
    made 0.0 first, the two being equal to the float sort), then a stable radix pass on the
    top 16 bits of their range (numpy's radix sort of 16-bit keys) and a stable sort of the
    integers, nearly in order by then (timsort). Equal floats have equal integers and equal
    top bits, so both passes keep them in index order. Short vectors, and any with a NaN,
    take numpy's stable sort directly, as does any other dtype."""
    if a.dtype != np.float64 or a.ndim != 1 or len(a) < STABLE_ARGSORT_RADIX_MIN or np.isnan(a).any():
        return np.argsort(a, kind="stable")
    bits = (a + 0.0).view(np.uint64)
    keys = np.where(bits >> np.uint64(63), ~bits, bits | np.uint64(1 << 63))
    keys -= keys.min()
    top = (keys >> np.uint64(max(0, int(keys.max()).bit_length() - 16))).astype(np.uint16)
    first = np.argsort(top, kind="stable")
    return first[np.argsort(keys[first], kind="stable")]


def observed_order(yhat_obs: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """The observed rows sorted by predicted mean (stable). `previous`: a permutation to sort
    from, e.g. the previous iteration's order of the same variable, nearly sorted already,
    which is faster; ties are then in that permutation's order (rows at the first sort), so a
    given chain's draws are the same from run to run."""
    if previous is None:
        return stable_argsort(yhat_obs)
    return previous[stable_argsort(yhat_obs[previous])]


def nearest_by_sorting(yhat_obs: np.ndarray, yhat_mis: np.ndarray, k: int,
                       order: np.ndarray | None = None) -> np.ndarray:
    """The k nearest observed rows of each missing row by a sorted search, O((obs + mis) log obs)
    time and O(mis x k) memory: in one dimension the k nearest lie within the k sorted
    neighbours on either side of the insertion point, so only that window of 2k is compared.
    On data without ties the set of k is that of `nearest_by_distance`; the order among them
    (which the random donor index picks from) is nearest first, ties by sorted position
    (predicted mean, then row), so the draws differ from the distance-matrix path.
    `order`: `observed_order(yhat_obs, ...)`, when the caller keeps it."""
    n = len(yhat_obs)
    order = observed_order(yhat_obs) if order is None else order
    ranked = yhat_obs[order]
    width = min(2 * k, n)
    start = np.clip(_searchsorted(ranked, yhat_mis) - k, 0, n - width)
    window = start[:, None] + np.arange(width)
    distance = np.abs(ranked[window] - yhat_mis[:, None])
    nearest = np.argsort(distance, axis=1, kind="stable")[:, :k]
    return order[np.take_along_axis(window, nearest, axis=1)]


def _searchsorted(ranked: np.ndarray, values: np.ndarray) -> np.ndarray:
    """np.searchsorted(ranked, values), the values looked up in increasing order (numpy then
    narrows each search from the last one, and memory is read in order): the same positions,
    faster for many values."""
    if len(values) < SEARCHSORTED_SORT_MIN:
        return np.searchsorted(ranked, values)
    by_value = np.argsort(values)
    out = np.empty(len(values), dtype=np.intp)
    out[by_value] = np.searchsorted(ranked, values[by_value])
    return out


def lda_draw(labels: np.ndarray, Z_obs: np.ndarray, Z_mis: np.ndarray, n_levels: int,
             rng: np.random.Generator) -> np.ndarray:
    """Nominal variable: linear discriminant analysis on a bootstrap sample of the observed
    rows, then each missing row's level drawn from its posterior probabilities."""
    boot = rng.integers(0, len(labels), len(labels))
    lab, Z = labels[boot], Z_obs[boot]
    priors = np.array([(lab == k).mean() for k in range(n_levels)])
    means = np.stack([Z[lab == k].mean(axis=0) if (lab == k).any() else Z.mean(axis=0) for k in range(n_levels)])
    centred = Z - means[lab]
    pooled = centred.T @ centred / max(len(lab) - n_levels, 1) + 1e-6 * np.eye(Z.shape[1])
    inv = np.linalg.inv(pooled)
    scores = Z_mis @ inv @ means.T - 0.5 * np.einsum("kj,jl,kl->k", means, inv, means) + np.log(np.maximum(priors, 1e-12))
    prob = np.exp(scores - scores.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    u = rng.random(len(Z_mis))[:, None]
    return (u > np.cumsum(prob, axis=1)).sum(axis=1).clip(0, n_levels - 1)


@dataclass(frozen=True)
class ImputationInput:
    """The numeric matrix the chained equations work on."""

    values: np.ndarray  # rows x NUMERIC_VARIABLES, NaN where missing
    group: np.ndarray  # level code 0..3 of GROUP_LEVELS, -1 where missing
    school: np.ndarray  # school code 0..n_schools-1 (sorted ids), always observed
    n_schools: int

    @cached_property
    def schools(self) -> np.ndarray:
        """rows x (schools - 1) dummies (the first school the reference): the direct form only."""
        if self.n_schools <= 1:
            return np.zeros((len(self.school), 0))
        return np.column_stack([(self.school == s).astype(float) for s in range(1, self.n_schools)])


def imputation_input(frame: pl.DataFrame) -> ImputationInput:
    values = frame.select(pl.col(c).cast(pl.Float64) for c in NUMERIC_VARIABLES).to_numpy().copy()
    group = frame["migration_group"].replace_strict({g: i for i, g in enumerate(GROUP_LEVELS)}, default=-1,
                                                    return_dtype=pl.Int64).to_numpy()
    ids, school = np.unique(frame["school_id"].cast(pl.String).to_numpy(), return_inverse=True)
    return ImputationInput(values, group, school.ravel(), len(ids))


def group_dummies(group: np.ndarray) -> np.ndarray:
    return np.column_stack([(group == k).astype(float) for k in range(1, len(GROUP_LEVELS))])


MODERATOR_COLUMNS = tuple(NUMERIC_VARIABLES.index(m) for m in MODERATORS)


def interaction_predictors(values: np.ndarray, group: np.ndarray, skip: int) -> np.ndarray:
    """Products of the group dummies with each moderator (except column `skip`), computed
    from the current values: the imputation model carries the Table 4 interactions."""
    dummies = group_dummies(group)
    return np.column_stack([dummies * values[:, [c]] for c in MODERATOR_COLUMNS if c != skip])


def _start(data: ImputationInput, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A chain's start: every missing value a random observed one; (values, group, miss, gmiss)."""
    values, group = data.values.copy(), data.group.copy()
    miss = np.isnan(values)
    gmiss = group < 0
    for j in range(values.shape[1]):  # start from random observed values
        obs = values[~miss[:, j], j]
        if obs.size == 0:
            raise ValueError(f"cannot impute {NUMERIC_VARIABLES[j]}: no questionnaire has a value")
        values[miss[:, j], j] = rng.choice(obs, miss[:, j].sum())
    group[gmiss] = rng.choice(group[~gmiss], gmiss.sum())
    return values, group, miss, gmiss


def impute_once(data: ImputationInput, rng: np.random.Generator, iterations: int = N_ITERATIONS) -> tuple[np.ndarray, np.ndarray]:
    """One chain of chained equations; returns the completed (values, group). Above
    MI_DIRECT_MAX_ROWS rows the school-effect forms (`SchoolEffectsChain`)."""
    if len(data.values) > MI_DIRECT_MAX_ROWS:
        return SchoolEffectsChain(data, rng).run(iterations)
    values, group, miss, gmiss = _start(data, rng)
    for _ in range(iterations):
        for j in range(values.shape[1]):
            if not miss[:, j].any():
                continue
            Z = np.column_stack([np.delete(values, j, axis=1), group_dummies(group),
                                 interaction_predictors(values, group, j), data.schools])
            values[miss[:, j], j] = pmm_draw(values[~miss[:, j], j], Z[~miss[:, j]], Z[miss[:, j]], rng)
        if gmiss.any():
            Z = np.column_stack([values, data.schools])
            group[gmiss] = lda_draw(group[~gmiss], Z[~gmiss], Z[gmiss], len(GROUP_LEVELS), rng)
    return values, group


# ------------------------------------------------------------------ chained equations at scale
# Column layout of SchoolEffectsChain.Z: the variables, the three group dummies, then the
# products of each dummy with each moderator (moderator-major, as interaction_predictors).
_P = len(NUMERIC_VARIABLES)
_DUMMIES = np.arange(_P, _P + len(GROUP_LEVELS) - 1)
_INTERACTIONS = {c: slice(_P + len(_DUMMIES) * (1 + i), _P + len(_DUMMIES) * (2 + i))
                 for i, c in enumerate(MODERATOR_COLUMNS)}
_WIDTH = _P + len(_DUMMIES) * (1 + len(MODERATOR_COLUMNS))
# Variable j's imputation model: its predictors (every column but j and j's interactions), and
# the columns that imputing j changes (j and its interactions).
_CHANGED = tuple(np.array([j, *(range(_WIDTH)[_INTERACTIONS[j]] if j in _INTERACTIONS else ())]) for j in range(_P))
_PREDICTORS = tuple(np.setdiff1d(np.arange(_WIDTH), changed) for changed in _CHANGED)


def _school_sums(columns, school: np.ndarray, n_schools: int) -> np.ndarray:
    """Each column's sums by school (schools x columns). `columns` iterates over the columns:
    `Z.T` (strided views, no copy), or `_transposed(block)` for a block of rows summed often
    (contiguous columns, a faster bincount); the sums are the same."""
    return np.stack([np.bincount(school, weights=column, minlength=n_schools) for column in columns], axis=1)


def _transposed(a: np.ndarray, step: int = 4096) -> np.ndarray:
    """a.T as a C-contiguous array (the same numbers), copied a block of rows at a time: each
    block's columns are in cache, much faster than one strided copy of a long matrix."""
    out = np.empty((a.shape[1], a.shape[0]), dtype=a.dtype)
    for start in range(0, len(a), step):
        out[:, start:start + step] = a[start:start + step].T
    return out


@dataclass(frozen=True)
class SchoolEffectsFit:
    """Least squares of y on predictors and an intercept per school, from sufficient statistics."""

    beta: np.ndarray  # the predictors' coefficients
    xtx_inv: np.ndarray  # (W~'W~)^+ of the within-school centred predictors
    intercept: np.ndarray  # per school (NaN for a school with no row)
    means: np.ndarray  # schools x predictors: the predictors' school means (NaN where no row)
    y_means: np.ndarray  # per school: the outcome's mean
    counts: np.ndarray  # rows per school
    df: int  # rows - predictors - schools with rows


def school_effects_fit(gram: np.ndarray, sums: np.ndarray, counts: np.ndarray, x: np.ndarray, y: int) -> SchoolEffectsFit:
    """OLS of column `y` on columns `x` and one intercept per school, from the Gram matrix of the
    rows (`gram` = Z'Z), their column sums by school (`sums`) and rows per school (`counts`).

    By Frisch-Waugh-Lovell the coefficients are those of the within-school centred columns:
    W~'W~ = (Z'Z)[x, x] - sum_s n_s wbar_s wbar_s', W~'y~ likewise; the school intercepts are
    ybar_s - wbar_s' beta. The same fit as the dummy-column form (constant + schools - 1
    dummies), without a rows x schools matrix."""
    present = counts > 0
    n_s = counts[present].astype(float)
    means = np.full((len(counts), len(x)), np.nan)
    means[present] = sums[np.ix_(present, x)] / n_s[:, None]
    y_means = np.full(len(counts), np.nan)
    y_means[present] = sums[present, y] / n_s
    centred = gram[np.ix_(x, x)] - (means[present] * n_s[:, None]).T @ means[present]
    cross = gram[x, y] - (means[present] * n_s[:, None]).T @ y_means[present]
    xtx_inv = np.linalg.pinv(centred)
    beta = xtx_inv @ cross
    return SchoolEffectsFit(beta, xtx_inv, y_means - means @ beta, means, y_means, counts,
                            int(counts.sum() - len(x) - present.sum()))


class SchoolEffectsChain:
    """One chain of the chained equations for a large wave: the same imputation models as
    `impute_once` (every other variable, the group dummies, the interactions, the school),
    with the school as one intercept per school instead of schools - 1 dummy columns.

    - PMM: the coefficients come from sufficient statistics (`school_effects_fit`): the Gram
      matrix of all rows and the column sums by school, kept up to date as values change
      (only the changed rows are added and removed), less the rows being imputed. The
      posterior draw is the direct form's N(b, sigma2 (X'X)^-1) factored: beta* from its
      marginal N(beta, sigma2 (W~'W~)^-1), then each school's intercept from its conditional
      N(ybar_s - wbar_s' beta*, sigma2 / n_s) (a school with no observed value takes the
      count-weighted mean of the others). The k nearest donors come from `nearest_by_sorting`,
      each variable's sort starting from its previous iteration's order (nearly sorted).
    - The migration group: `lda_draw`'s LDA on a bootstrap of the observed rows, with the
      school as codes (`lda_scores_by_school`: the school dummies solved through their
      structure, diagonal plus rank 4), a level drawn from each row's posterior.
    The draws follow the same distributions as the direct forms but use the random numbers
    differently, so a wave's imputations differ from what the direct forms would draw.
    """

    def __init__(self, data: ImputationInput, rng: np.random.Generator):
        self.data, self.rng = data, rng
        self.values, self.group, self.miss, self.gmiss = _start(data, rng)
        self.Z = np.empty((len(self.values), _WIDTH))
        self._fill(slice(None))
        self.gram = self.Z.T @ self.Z
        self.sums = _school_sums(self.Z.T, data.school, data.n_schools)
        self.counts = np.bincount(data.school, minlength=data.n_schools)
        self.orders: dict[int, np.ndarray] = {}  # each variable's last sort of its observed rows
        self.y_obs: dict[int, np.ndarray] = {}
        # the missing cells never change: each variable's rows to impute and observed rows
        # (as a contiguous mask per variable), the group's rows to impute and observed rows
        self.missing_rows = [np.flatnonzero(self.miss[:, j]) for j in range(_P)]
        self.observed = np.ascontiguousarray(~self.miss.T)
        self.group_missing, self.group_observed = np.flatnonzero(self.gmiss), np.flatnonzero(~self.gmiss)

    def _fill(self, rows) -> None:
        """Z's rows (a slice or an index array) from the current values and group."""
        self.Z[rows] = self._new_rows(rows)

    def _new_rows(self, rows) -> np.ndarray:
        """Z's rows `rows` (a slice or an index array) from the current values and group, as a block."""
        values = self.values[rows]
        dummies = group_dummies(self.group[rows])
        block = np.empty((len(values), _WIDTH))
        block[:, :_P] = values
        block[:, _P:_P + len(_DUMMIES)] = dummies
        for c, columns in _INTERACTIONS.items():
            block[:, columns] = dummies * values[:, c][:, None]
        return block

    def _replace(self, rows: np.ndarray, old: np.ndarray, columns: np.ndarray | slice = slice(None),
                 new: np.ndarray | None = None) -> None:
        """Update the Gram matrix and school sums for rows of Z that were `old` (and are now
        `new`, when the caller has them). `columns`: those that may have changed; the school
        sums of the others are left as they are, which is what adding their change would give
        (sums of zeros, and no sum is ever -0.0)."""
        new = np.take(self.Z, rows, axis=0) if new is None else new
        self.gram += new.T @ new - old.T @ old
        self.sums[:, columns] += _school_sums(_transposed(new[:, columns] - old[:, columns]), self.data.school[rows],
                                              self.data.n_schools)

    def pmm(self, j: int) -> np.ndarray:
        rows, observed, x = self.missing_rows[j], self.observed[j], _PREDICTORS[j]
        school = self.data.school
        old = np.take(self.Z, rows, axis=0)
        school_m = school[rows]
        fit = school_effects_fit(self.gram - old.T @ old,
                                 self.sums - _school_sums(_transposed(old), school_m, self.data.n_schools),
                                 self.counts - np.bincount(school_m, minlength=self.data.n_schools), x, j)
        full = np.zeros(_WIDTH)
        full[x] = fit.beta
        if j not in self.y_obs:  # observed values never change
            self.y_obs[j] = self.values[observed, j]
        y_obs = self.y_obs[j]
        yhat_obs = (self.Z @ full + fit.intercept[school])[observed]
        resid = y_obs - yhat_obs
        sigma2 = resid @ resid / self.rng.chisquare(max(fit.df, 1))
        beta_star = fit.beta + _covariance_root(sigma2 * fit.xtx_inv + 1e-12 * np.eye(len(x))) @ self.rng.standard_normal(len(x))
        present = fit.counts > 0
        intercept = np.empty(len(fit.counts))
        intercept[present] = (fit.y_means[present] - fit.means[present] @ beta_star
                              + np.sqrt(sigma2 / fit.counts[present]) * self.rng.standard_normal(int(present.sum())))
        intercept[~present] = np.average(intercept[present], weights=fit.counts[present])
        full[x] = beta_star
        yhat_mis = old @ full + intercept[school_m]
        k = min(PMM_DONORS, len(y_obs))
        self.orders[j] = observed_order(yhat_obs, self.orders.get(j))
        donors = nearest_by_sorting(yhat_obs, yhat_mis, k, self.orders[j])
        drawn = y_obs[donors[np.arange(len(rows)), self.rng.integers(0, k, len(rows))]]
        self.values[rows, j] = drawn
        new = old.copy()
        new[:, j] = drawn  # the column and its interactions: nothing else changed
        if j in _INTERACTIONS:
            new[:, _INTERACTIONS[j]] = old[:, _DUMMIES] * drawn[:, None]
        self.Z[rows] = new
        self._replace(rows, old, _CHANGED[j], new)
        return drawn

    def lda(self) -> None:
        """The group's imputations: a bootstrap of the observed rows (gathered straight from the
        chain's rows), `lda_scores_by_school`, then a level drawn per missing row."""
        rows, observed = self.group_missing, self.group_observed
        school = self.data.school
        boot = observed[self.rng.integers(0, len(observed), len(observed))]
        scores = lda_scores_by_school(self.group[boot], np.take(self.values, boot, axis=0), school[boot],
                                      np.take(self.values, rows, axis=0), school[rows], len(GROUP_LEVELS),
                                      self.data.n_schools)
        self.group[rows] = _draw_levels(scores, self.rng)
        old = np.take(self.Z, rows, axis=0)
        new = self._new_rows(rows)
        self.Z[rows] = new
        self._replace(rows, old, slice(_P, _WIDTH), new)  # the dummies and interactions changed

    def run(self, iterations: int) -> tuple[np.ndarray, np.ndarray]:
        for _ in range(iterations):
            for j in range(_P):
                if len(self.missing_rows[j]):
                    self.pmm(j)
            if len(self.group_missing):
                self.lda()
        return self.values, self.group


def _lda_fit(labels: np.ndarray, values: np.ndarray, school: np.ndarray, n_levels: int, n_schools: int):
    """Class means and the pooled within-class covariance of [values, school dummies 1..G-1]
    (+ 1e-6 I, as `lda_draw`), the school block kept as diagonal - U U' (rank n_levels)."""
    n, p = values.shape
    columns = _transposed(values)  # each column contiguous for bincount (the same sums)
    nk = np.bincount(labels, minlength=n_levels).astype(float)
    priors = nk / n
    sums_v = np.stack([np.bincount(labels, weights=columns[c], minlength=n_levels) for c in range(p)], axis=1)
    by_class = np.bincount(labels * n_schools + school, minlength=n_levels * n_schools).reshape(n_levels, n_schools)
    empty = nk == 0
    mean_v = sums_v / np.maximum(nk, 1)[:, None]
    if empty.any():  # an empty level: the overall mean
        mean_v = np.where(empty[:, None], values.mean(axis=0), mean_v)
    share = np.bincount(school, minlength=n_schools) / n
    mean_s = np.where(empty[:, None], share, by_class / np.maximum(nk, 1)[:, None])[:, 1:]
    c = 1 / max(n - n_levels, 1)
    school_v = np.stack([np.bincount(school, weights=columns[j], minlength=n_schools) for j in range(p)])[:, 1:]
    del columns
    vv = c * (values.T @ values - (mean_v * nk[:, None]).T @ mean_v) + 1e-6 * np.eye(p)
    vs = c * (school_v - (mean_v * nk[:, None]).T @ mean_s)
    diagonal = c * np.bincount(school, minlength=n_schools)[1:] + 1e-6
    U = (mean_s * np.sqrt(c * nk)[:, None]).T  # (G-1) x levels
    return priors, mean_v, mean_s, vv, vs, diagonal, U


def _structured_solve(vv, vs, diagonal, U, r_v, r_s):
    """Solve [[vv, vs], [vs', diag(diagonal) - U U']] x = [r_v; r_s] (Woodbury for the school block,
    then the Schur complement of the values block)."""
    def ss_solve(b):
        db = b / diagonal[:, None]
        du = U / diagonal[:, None]
        core = np.eye(U.shape[1]) - U.T @ du
        return db + du @ np.linalg.solve(core, U.T @ db)

    f = ss_solve(vs.T)  # (G-1) x p
    schur = vv - vs @ f
    x_v = np.linalg.solve(schur, r_v - vs @ ss_solve(r_s))
    x_s = ss_solve(r_s - vs.T @ x_v)
    return x_v, x_s


def lda_scores_by_school(labels, values_obs, school_obs, values_mis, school_mis, n_levels, n_schools) -> np.ndarray:
    """The discriminant scores of `lda_draw` (Z = values + school dummies) without the dummies:
    missing rows x levels."""
    priors, mean_v, mean_s, vv, vs, diagonal, U = _lda_fit(labels, values_obs, school_obs, n_levels, n_schools)
    x_v, x_s = _structured_solve(vv, vs, diagonal, U, mean_v.T, mean_s.T)  # p x K, (G-1) x K
    x_s = np.vstack([np.zeros((1, n_levels)), x_s])  # the first school: no dummy
    quadratic = (mean_v * x_v.T).sum(axis=1) + (mean_s * x_s[1:].T).sum(axis=1)
    return values_mis @ x_v + x_s[school_mis] - 0.5 * quadratic + np.log(np.maximum(priors, 1e-12))


def _draw_levels(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A level for each row of LDA scores (rows x levels), drawn from its posterior probabilities."""
    prob = np.exp(scores - scores.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    u = rng.random(len(scores))[:, None]
    return (u > np.cumsum(prob, axis=1)).sum(axis=1).clip(0, scores.shape[1] - 1)


def completed_frame(frame: pl.DataFrame, values: np.ndarray, group: np.ndarray) -> pl.DataFrame:
    """The sensitivity frame with one imputation filled in; dummies recomputed (passive)."""
    filled = frame.with_columns(
        *[pl.Series(c, values[:, j]) for j, c in enumerate(NUMERIC_VARIABLES)],
        pl.Series("migration_group", np.array(GROUP_LEVELS)[group]),
    )
    return add_group_dummies(filled)


def _imputed_cells(data: ImputationInput, seed: np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray]:
    """One chain's imputations, only the cells that were missing (what crosses processes)."""
    values, group = impute_once(data, np.random.default_rng(seed))
    return values[np.isnan(data.values)], group[data.group < 0]


def iter_completed(frame: pl.DataFrame, m: int = N_IMPUTATIONS, seed: int = MI_SEED,
                   workers: int | None = None) -> Iterator[pl.DataFrame]:
    """The M completed data sets, each from its own chain seeded from `seed`, one at a time.
    The chains are independent: they run on every core (forked processes, numpy only), with
    the same results as one after the other (`workers=1`); each returns only its imputed
    cells, and each completed frame is built when it is needed (a large wave's 20 frames
    are not held at once), as soon as its chain is done: the caller fits its models while
    the next chains run (`fork_imap`)."""
    data = imputation_input(frame)
    chains = np.random.SeedSequence(seed).spawn(m)
    miss, gmiss = np.isnan(data.values), data.group < 0
    for cells, groups in fork_imap(lambda s: _imputed_cells(data, s), chains, workers):
        values, group = data.values.copy(), data.group.copy()
        values[miss], group[gmiss] = cells, groups
        yield completed_frame(frame, values, group)


def impute(frame: pl.DataFrame, m: int = N_IMPUTATIONS, seed: int = MI_SEED,
           workers: int | None = None) -> list[pl.DataFrame]:
    """The M completed data sets of `iter_completed`, as a list."""
    return list(iter_completed(frame, m, seed, workers))


# ------------------------------------------------------------------ Rubin's rules
@dataclass(frozen=True)
class Pooled:
    estimate: float
    within: float
    between: float
    total: float
    riv: float  # relative increase in variance (1 + 1/M) B / U
    lambda_: float  # (1 + 1/M) B / T
    df: float  # Barnard-Rubin
    fmi: float  # fraction of missing information


def rubin_pool(estimates: np.ndarray, variances: np.ndarray, df_complete: float) -> Pooled:
    """Pool M estimates and their variances with Rubin's rules (Barnard-Rubin df; fmi as in mice)."""
    m = len(estimates)
    q = float(np.mean(estimates))
    u = float(np.mean(variances))
    b = float(np.var(estimates, ddof=1))
    t = u + (1 + 1 / m) * b
    riv = (1 + 1 / m) * b / u
    lam = (1 + 1 / m) * b / t
    df_old = (m - 1) / lam**2 if lam > 0 else np.inf
    df_obs = (df_complete + 1) / (df_complete + 3) * df_complete * (1 - lam)
    df = 1 / (1 / df_old + 1 / df_obs)
    fmi = (riv + 2 / (df + 3)) / (1 + riv)
    return Pooled(q, u, b, t, riv, lam, float(df), float(fmi))


MI_SCHEMA = {
    "wave": pl.String, "table_no": pl.Int64, "model_no": pl.Int64, "term": pl.String, "n_obs": pl.Int64,
    "n_imputations": pl.Int64, "estimate": pl.Float64, "std_error": pl.Float64, "within_variance": pl.Float64,
    "between_variance": pl.Float64, "total_variance": pl.Float64, "df": pl.Float64, "riv": pl.Float64,
    "fmi": pl.Float64, "t_value": pl.Float64, "p_value": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
    "stars": pl.String, "cc_estimate": pl.Float64, "cc_std_error": pl.Float64, "cc_p_value": pl.Float64,
    "cc_stars": pl.String, "stars_changed": pl.Boolean, "significance_changed": pl.Boolean,
}


def ols_fit(y: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """OLS coefficients, their conventional variances and the residual df (numpy).

    Up to MI_DIRECT_MAX_ROWS rows the coefficients come from `np.linalg.lstsq` (an SVD of
    X). Above, from the normal equations with one step of iterative refinement (Bjorck):
    beta = (X'X)^-1 X'y, then beta += (X'X)^-1 X'(y - X beta), which recovers the accuracy
    the squared condition number costs (tested against lstsq). An SVD of a million-row
    design takes some 20 times as long as X'X, and a wave's imputation fits 14 models on
    each of 20 completed data sets. The variances use X'X either way."""
    n, k = X.shape
    gram = X.T @ X
    if n <= MI_DIRECT_MAX_ROWS:
        beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    else:
        beta = np.linalg.solve(gram, X.T @ y)
        beta = beta + np.linalg.solve(gram, X.T @ (y - X @ beta))
    resid = y - X @ beta
    var = resid @ resid / (n - k) * np.diag(np.linalg.inv(gram))
    return beta, var, n - k


@single_blas_thread
def multiple_imputation(frame: pl.DataFrame, complete: pl.DataFrame, wave: str,
                        m: int = N_IMPUTATIONS, seed: int = MI_SEED) -> pl.DataFrame:
    """`marts.mi_coefficients`: the 14 models (as published) pooled over M imputations, beside
    their complete-case fit on `complete` (the analysis sample)."""
    specs = model_specs(MI_SPECIFICATION)
    fits_by_spec: list[list] = [[] for _ in specs]
    buffer = np.empty(frame.height * max(len(spec.terms) for spec in specs))  # every design in turn
    for completed in iter_completed(frame, m, seed):  # one completed data set at a time
        for fits, spec in zip(fits_by_spec, specs):
            fits.append(ols_fit(*design_matrix(completed, spec, buffer)))
    rows = []
    for spec, fits in zip(specs, fits_by_spec):
        betas = np.stack([f[0] for f in fits])
        variances = np.stack([f[1] for f in fits])
        df_complete = fits[0][2]
        cc_beta, cc_var, cc_df = ols_fit(*design_matrix(complete, spec))
        for j, term in enumerate(spec.terms):
            pooled = rubin_pool(betas[:, j], variances[:, j], df_complete)
            se = float(np.sqrt(pooled.total))
            t = pooled.estimate / se
            p = float(2 * stats.t.sf(abs(t), pooled.df))
            crit = stats.t.ppf(0.975, pooled.df)
            cc_se = float(np.sqrt(cc_var[j]))
            cc_p = float(2 * stats.t.sf(abs(cc_beta[j] / cc_se), cc_df))
            rows.append({
                "wave": wave, "table_no": spec.table_no, "model_no": spec.model_no, "term": term,
                "n_obs": frame.height, "n_imputations": m, "estimate": pooled.estimate, "std_error": se,
                "within_variance": pooled.within, "between_variance": pooled.between,
                "total_variance": pooled.total, "df": pooled.df, "riv": pooled.riv, "fmi": pooled.fmi,
                "t_value": t, "p_value": p, "ci_low": pooled.estimate - crit * se, "ci_high": pooled.estimate + crit * se,
                "stars": significance_stars(p), "cc_estimate": float(cc_beta[j]), "cc_std_error": cc_se,
                "cc_p_value": cc_p, "cc_stars": significance_stars(cc_p),
                "stars_changed": significance_stars(p) != significance_stars(cc_p),
                "significance_changed": (p < 0.05) != (cc_p < 0.05),
            })
    return MI_CONTRACT.validate(pl.DataFrame(rows, schema=MI_SCHEMA))


def missing_data_sensitivity(measures: pl.DataFrame, questionnaires: pl.DataFrame,
                             wave: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`marts.mcar_test` and `marts.mi_coefficients` of one wave."""
    frame = sensitivity_frame(measures, questionnaires, wave)
    return mcar_test(frame, wave), multiple_imputation(frame, complete_cases(frame), wave)


MCAR_CONTRACT = register("marts.mcar_test", pa.DataFrameSchema({
    "wave": WAVE,
    "variables": pa.Column(pl.String, description="The model variables tested (migration group as three dummies)"),
    "n_rows": pa.Column(pl.Int64, description="Valid questionnaires with both parents alive and at least one value"),
    "n_incomplete": pa.Column(pl.Int64, description="Of these, questionnaires missing at least one model variable"),
    "n_patterns": pa.Column(pl.Int64, description="Distinct patterns of missing values"),
    "statistic": pa.Column(pl.Float64, pa.Check.ge(0), description="Little's d2: sum over patterns of n_j (mean_j - mu_j)' Sigma_j^-1 (mean_j - mu_j), mu and Sigma by EM"),
    "df": pa.Column(pl.Int64, description="Degrees of freedom: observed variables summed over patterns minus the number of variables"),
    "p_value": pa.Column(pl.Float64, pa.Check.in_range(0, 1), description="Chi-squared p-value (small: not MCAR)"),
    "conclusion": pa.Column(pl.String, description="What the test says, in words"),
}, strict=True, unique=["wave"], description="One row per wave: Little's MCAR test on the model variables of the valid questionnaires with both parents alive"))

MI_CONTRACT = register("marts.mi_coefficients", pa.DataFrameSchema({
    "wave": WAVE,
    "table_no": pa.Column(pl.Int64, description="The paper's table: 2, 3 or 4"),
    "model_no": pa.Column(pl.Int64, description="The model's number within its table"),
    "term": pa.Column(pl.String, description="Term as in marts.model_coefficients (as_published coding)"),
    "n_obs": pa.Column(pl.Int64, description="Children in each imputed data set (valid, both parents alive)"),
    "n_imputations": pa.Column(pl.Int64, description="Imputed data sets pooled (M)"),
    "estimate": pa.Column(pl.Float64, description="Pooled estimate: mean over the imputations"),
    "std_error": pa.Column(pl.Float64, pa.Check.gt(0), description="sqrt(total_variance)"),
    "within_variance": pa.Column(pl.Float64, description="U: mean of the conventional sampling variances"),
    "between_variance": pa.Column(pl.Float64, description="B: variance of the estimates across imputations"),
    "total_variance": pa.Column(pl.Float64, description="T = U + (1 + 1/M) B (Rubin's rules)"),
    "df": pa.Column(pl.Float64, description="Barnard-Rubin degrees of freedom"),
    "riv": pa.Column(pl.Float64, description="Relative increase in variance due to nonresponse: (1 + 1/M) B / U"),
    "fmi": pa.Column(pl.Float64, description="Fraction of missing information: (riv + 2/(df + 3)) / (1 + riv)"),
    "t_value": pa.Column(pl.Float64, description="estimate / std_error"),
    "p_value": pa.Column(pl.Float64, pa.Check.in_range(0, 1), description="Two-sided p-value, t with df"),
    "ci_low": pa.Column(pl.Float64, description="Lower bound of the 95% confidence interval"),
    "ci_high": pa.Column(pl.Float64, description="Upper bound of the 95% confidence interval"),
    "stars": pa.Column(pl.String, description="Stars of the pooled p-value"),
    "cc_estimate": pa.Column(pl.Float64, description="Complete-case estimate (the analysis sample, conventional SE)"),
    "cc_std_error": pa.Column(pl.Float64, description="Complete-case standard error"),
    "cc_p_value": pa.Column(pl.Float64, description="Complete-case p-value"),
    "cc_stars": pa.Column(pl.String, description="Complete-case stars (as in the paper's table)"),
    "stars_changed": pa.Column(pl.Boolean, description="The stars differ between multiple imputation and complete cases"),
    "significance_changed": pa.Column(pl.Boolean, description="Significance at 0.05 differs between multiple imputation and complete cases"),
}, strict=True, unique=["wave", "table_no", "model_no", "term"],
    description="One row per wave x model x term: the paper's models after multiple imputation (chained equations), pooled with Rubin's rules, beside the complete-case fit"))
