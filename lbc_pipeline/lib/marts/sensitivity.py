"""Do the findings survive the clustering of children in classes and schools?

Children sit in 34 classes in 4 schools. Three analyses of the focal models (Table 2
Model 2, the main mother-away effect, and the six Table 4 models, as published):

- School fixed effects: the model with a dummy per school (the first is the reference),
  conventional and HC3 standard errors. Any school-level confounding is absorbed;
  ethnic Korean is nearly a school trait, so its coefficient becomes within-school.
- The wild cluster bootstrap (WCR: null imposed, bootstrap-t, symmetric p) by school with
  two weight distributions. Rademacher (+1/-1) has only 2**G sign patterns; with G = 4
  schools that is 16, and the 2 constant patterns always reproduce |t_observed|, so
  p >= 2/16 = 0.125 whatever the data: it can never reject at 0.05. Webb's six-point
  weights (+-sqrt(1/2), +-1, +-sqrt(3/2)) give 6**4 = 1296 patterns, all enumerated
  here; the 6 constant patterns reproduce |t_observed|, so p >= 6/1296 = 0.0046. Webb
  makes a small p *attainable*, but with four clusters the bootstrap distribution is
  still built from four cluster scores and the test can over- or under-reject,
  especially when one school dominates a term (MacKinnon and Webb 2017): read it as a
  check, not as a precise p-value.
- A random-intercept model for class (statsmodels MixedLM, REML): children nested in
  classes (class ids are unique within a school, so a class is school + class id), the
  same fixed effects; the intra-class correlation (ICC) of depression from an empty
  model and the residual ICC of each model.

Tables: `marts.cluster_sensitivity` (one row per wave x model x term x analysis) and
`marts.multilevel_icc` (one row per wave x model, plus the empty model).
"""

from __future__ import annotations

import functools
import itertools
import warnings
from dataclasses import dataclass

import numpy as np
import pandera.polars as pa
import polars as pl
from scipy import optimize, stats
from statsmodels.regression.mixed_linear_model import MixedLM

from lbc_pipeline.lib.contracts import WAVE, register
from lbc_pipeline.lib.marts.blas import single_blas_thread
from lbc_pipeline.lib.marts.models import (
    CONST,
    ModelSpec,
    cluster_design,
    design_matrix,
    group_codes,
    model_specs,
    rademacher_weights,
    restricted_scores,
    significance_stars,
)
from lbc_pipeline.lib.marts.moderation import ols_covariances
from lbc_pipeline.lib.marts.sensitivity_frame import complete_cases, sensitivity_frame
from lbc_pipeline.lib.parallel import fork_map

FOCAL_SPECIFICATION = "as_published"
FOCAL_MODELS = ((2, 2), (4, 1), (4, 2), (4, 3), (4, 4), (4, 5), (4, 6))
WEBB_WEIGHTS = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])
# Webb patterns are enumerated up to this many clusters (6**5 = 7776); above, seeded draws.
WEBB_ENUMERATE_MAX_CLUSTERS = 5
BOOTSTRAP_DRAWS = 9999
BOOTSTRAP_SEED = 20230113
# Up to this many children the analyses use their direct forms (a dummy column per school,
# the bootstrap samples refitted in blocks, statsmodels MixedLM); above it the same
# estimators from per-school and per-class sums (`*_by_sums`), which need no rows x schools
# matrix and no per-class Python loop. Tests check each pair against each other.
CLUSTER_DIRECT_MAX_ROWS = 20_000
CLASS_COLUMN = "class_key"
SCHOOL_COLUMN = "school_id"

ANALYSES = ("school_fe", "school_fe_hc3", "wild_rademacher", "wild_webb", "multilevel_class")
ANALYSIS_NOTES = {
    "school_fe": "school fixed effects (first school the reference), conventional SEs",
    "school_fe_hc3": "school fixed effects, HC3 SEs",
    "wild_rademacher": "OLS estimate, CR1 school-clustered SE, wild cluster bootstrap-t p (WCR, Rademacher)",
    "wild_webb": "OLS estimate, CR1 school-clustered SE, wild cluster bootstrap-t p (WCR, Webb six-point)",
    "multilevel_class": "random intercept for class (MixedLM, REML), z-based p",
}


def focal_specs() -> list[ModelSpec]:
    """The models whose findings the sensitivity analyses re-examine."""
    return [s for s in model_specs(FOCAL_SPECIFICATION) if (s.table_no, s.model_no) in FOCAL_MODELS]


@functools.lru_cache(maxsize=4)
def webb_weights(n_clusters: int) -> tuple[np.ndarray, bool]:
    """Return Webb six-point weight patterns (clusters x patterns) and whether all are enumerated
    (drawn once per number of clusters and shared, read-only, by every term and model)."""
    if n_clusters <= WEBB_ENUMERATE_MAX_CLUSTERS:
        patterns, enumerated = np.array(list(itertools.product(WEBB_WEIGHTS, repeat=n_clusters))).T, True
    else:
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        patterns, enumerated = rng.choice(WEBB_WEIGHTS, size=(n_clusters, BOOTSTRAP_DRAWS)), False
    patterns.setflags(write=False)
    return patterns, enumerated


def wild_bootstrap_p(y: np.ndarray, X: np.ndarray, clusters: np.ndarray, column: int, weights: np.ndarray) -> float:
    """WCR wild cluster bootstrap-t p-value of H0: coefficient `column` = 0 with the given weights.

    The restricted model (without the column) gives fitted values and residuals; sample b is
    fitted + w_gb * residual (g the row's cluster), refitted by least squares, and its t uses
    the CR1 sandwich. Unlike models.wild_cluster_bootstrap_ps (which relies on w = +-1), any
    weights are allowed (Webb's six points). Patterns are processed in blocks, so memory is
    rows x block, not rows x patterns.
    """
    n, k = X.shape
    g = int(clusters.max()) + 1
    restricted = np.delete(X, column, axis=1)
    fitted_r = restricted @ np.linalg.lstsq(restricted, y, rcond=None)[0]
    residuals_r = y - fitted_r
    xtx_inv = np.linalg.inv(X.T @ X)
    a = xtx_inv[column]
    correction = g / (g - 1) * (n - 1) / (n - k)
    onehot = np.zeros((n, g))
    onehot[np.arange(n), clusters] = 1.0

    def t_stats(w: np.ndarray) -> np.ndarray:
        Y = fitted_r[:, None] + w[clusters] * residuals_r[:, None]  # rows x patterns
        beta = xtx_inv @ (X.T @ Y)
        U = Y - X @ beta
        scores = onehot.T @ ((X @ a)[:, None] * U)  # clusters x patterns: a'X_g'u_g
        return beta[column] / np.sqrt(correction * (scores ** 2).sum(axis=0))

    t_obs = t_stats(np.ones((g, 1)))[0]
    t_boot = np.concatenate([t_stats(weights[:, i:i + 256]) for i in range(0, weights.shape[1], 256)])
    return float(np.mean(np.abs(t_boot) >= abs(t_obs) - 1e-10 * max(1.0, abs(t_obs))))


def cr1_standard_errors(y: np.ndarray, X: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS coefficients and CR1 cluster-robust SEs (G/(G-1) * (N-1)/(N-K), as statsmodels)."""
    n, k = X.shape
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    u = y - X @ beta
    xtx_inv = np.linalg.inv(X.T @ X)
    g = int(clusters.max()) + 1
    scores = np.stack([X[clusters == c].T @ u[clusters == c] for c in range(g)])
    meat = scores.T @ scores
    cov = g / (g - 1) * (n - 1) / (n - k) * xtx_inv @ meat @ xtx_inv
    return beta, np.sqrt(np.diag(cov))


def cr1_standard_errors_by_sums(y: np.ndarray, X: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`cr1_standard_errors` with the cluster scores X_g'u_g from one sorted pass (no mask per
    cluster)."""
    n, k = X.shape
    design = cluster_design(X, clusters)
    beta = design.xtx_inv @ (X.T @ y)
    u = y - X @ beta
    scores = np.add.reduceat((X * u[:, None])[design.order], design.starts, axis=0)
    g = design.n_clusters
    cov = g / (g - 1) * (n - 1) / (n - k) * design.xtx_inv @ (scores.T @ scores) @ design.xtx_inv
    return beta, np.sqrt(np.diag(cov))


def wild_bootstrap_ps_by_sums(y: np.ndarray, X: np.ndarray, clusters: np.ndarray) -> dict[str, list[float]]:
    """`wild_bootstrap_ps` from per-cluster sums: the same bootstrap-t (WCR, any weights).

    With H_g = X_g'X_g, the restricted residuals of column j are u_j = e + b_j X c_j
    (Frisch-Waugh-Lovell: e and b the full fit, X c_j the part of x_j the other columns do
    not explain), so each cluster's X_g'u_j = X_g'e + b_j H_g c_j. The restricted fitted
    values lie in the span of X, so sample b's coefficient is a'X'f_j + z_b[j] (the first
    term 0 up to rounding; a = row j of (X'X)^-1, z_b = (X'X)^-1 sum_g w_gb X_g'u_j) and its
    cluster scores are w_gb q_g - (a'H_g) z_b (q_g = a'X_g'u_j). Their sum of squares is
    (q^2)'(w_b^2) - 2 z_b'(q aH)'w_b + z_b'(aH'aH) z_b: every term's statistics are rows over
    clusters times the weight patterns, one matrix product per weight distribution, never a
    rows x patterns or clusters x patterns x terms array.
    """
    n, k = X.shape
    design = cluster_design(X, clusters)
    g = design.n_clusters
    correction = g / (g - 1) * (n - 1) / (n - k)
    pieces = restricted_scores(y, X, design)
    stacked = np.vstack([np.vstack([p.z_rows, p.qa_rows]) for p in pieces])  # (2k k) x clusters
    squares = np.vstack([p.q ** 2 for p in pieces])  # k x clusters
    grams = [p.aH.T @ p.aH for p in pieces]

    def t_stats(w: np.ndarray) -> list[np.ndarray]:
        """Every term's bootstrap t for the patterns w (clusters x patterns)."""
        projected, projected_sq = stacked @ w, squares @ (w ** 2)
        out = []
        for j, (piece, gram) in enumerate(zip(pieces, grams)):
            z, qaw = projected[2 * k * j:2 * k * j + k], projected[2 * k * j + k:2 * k * (j + 1)]
            total = projected_sq[j] - 2 * (z * qaw).sum(axis=0) + (z * (gram @ z)).sum(axis=0)
            out.append((piece.constant + z[j]) / np.sqrt(correction * total))
        return out

    observed = [t[0] for t in t_stats(np.ones((g, 1)))]
    out: dict[str, list[float]] = {}
    for analysis, (weights, _) in wild_bootstrap_weights(g).items():
        out[analysis] = [float(np.mean(np.abs(t_boot) >= abs(t_obs) - 1e-10 * max(1.0, abs(t_obs))))
                         for t_obs, t_boot in zip(observed, t_stats(weights))]
    return out


def school_dummies(sample: pl.DataFrame) -> tuple[np.ndarray, list[str]]:
    """A 0/1 column per school except the first (sorted ids)."""
    schools = sorted(sample[SCHOOL_COLUMN].unique().to_list())
    ids = sample[SCHOOL_COLUMN].to_numpy()
    return np.column_stack([(ids == s).astype(float) for s in schools[1:]]), [f"school_{s}" for s in schools[1:]]


def row(wave: str, spec: ModelSpec, term: str, analysis: str, estimate: float, se: float, p: float,
        n_obs: int, n_groups: int, note: str) -> dict:
    return {"wave": wave, "table_no": spec.table_no, "model_no": spec.model_no, "term": term, "analysis": analysis,
            "estimate": float(estimate), "std_error": float(se), "p_value": float(p),
            "stars": significance_stars(float(p)), "n_obs": n_obs, "n_groups": n_groups, "note": note}


def school_fixed_effects(sample: pl.DataFrame, spec: ModelSpec, wave: str,
                         design: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """The model with school dummies: conventional and HC3 rows for the model's own terms.

    A term that is constant within every school (e.g. ethnic Korean in a wave whose schools
    are all one ethnicity) cannot be estimated beside school dummies: it is left out of the
    model, and its rows are absent; the other rows say so in their note. `design`: the
    model's `design_matrix`, when the caller has it.
    """
    y, X = design if design is not None else design_matrix(sample, spec)
    dummies, names = school_dummies(sample)
    keep, dropped = [], []
    const = spec.terms.index(CONST)
    for j in [const, *(j for j in range(len(spec.terms)) if j != const)]:  # the constant first: it stays
        trial = np.column_stack([X[:, keep + [j]], dummies])
        (keep if np.linalg.matrix_rank(trial) == trial.shape[1] else dropped).append(j)
    keep.sort()
    if 0 in dropped:
        raise ValueError(f"{spec.label} with school fixed effects: {spec.terms[0]} is constant within schools")
    Xfe = np.column_stack([X[:, keep], dummies])
    beta, covs, df = ols_covariances(y, Xfe)
    suffix = f"; left out (constant within schools): {', '.join(spec.terms[j] for j in dropped)}" if dropped else ""
    rows = []
    for analysis, se_type in (("school_fe", "nonrobust"), ("school_fe_hc3", "HC3")):
        se = np.sqrt(np.diag(covs[se_type]))
        for i, j in enumerate(keep):
            p = 2 * stats.t.sf(abs(beta[i] / se[i]), df)
            rows.append(row(wave, spec, spec.terms[j], analysis, beta[i], se[i], p, len(y), len(names) + 1,
                            ANALYSIS_NOTES[analysis] + suffix))
    return rows


def _full_column_rank(R: np.ndarray, n_rows: int) -> bool:
    """Whether the columns A[:, S] of a matrix A = QR (n_rows rows) have full rank, from R[:, S]:
    its singular values are A[:, S]'s, and the tolerance is `np.linalg.matrix_rank`'s
    (largest singular value x max(rows, columns) x machine epsilon)."""
    values = np.linalg.svd(R, compute_uv=False)
    tolerance = values.max(initial=0.0) * max(n_rows, R.shape[1]) * np.finfo(R.dtype).eps
    return int(np.count_nonzero(values > tolerance)) == R.shape[1]


def _by_group(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Group sums of each column of `values` (groups x columns)."""
    values = values.reshape(len(values), -1)
    return np.stack([np.bincount(groups, weights=values[:, c], minlength=n_groups)
                     for c in range(values.shape[1])], axis=1)


def school_fixed_effects_by_sums(sample: pl.DataFrame, spec: ModelSpec, wave: str,
                                 design: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """`school_fixed_effects` without the school dummy columns (Frisch-Waugh-Lovell).

    The terms' coefficients are those of the within-school centred columns; the constant is
    the first school's intercept, ybar_0 - xbar_0' beta; the residuals are the dummy model's.
    Conventional SEs: s2 (W~'W~)^-1, and s2 (1/n_0 + xbar_0' (W~'W~)^-1 xbar_0) for the
    constant. HC3: each estimate is a linear function l'y, its variance sum_i l_i^2 u_i^2 /
    (1 - h_i)^2 with the dummy model's leverage h_i = 1/n_s(i) + w~_i' (W~'W~)^-1 w~_i. A term
    is left out when its centred column adds no rank to the centred columns already kept
    (the dummy form's rank test, `np.linalg.matrix_rank`'s tolerance, on the R of one QR of
    the centred columns: the same singular values as the columns themselves, without an SVD
    of a long matrix per term)."""
    y, X = design if design is not None else design_matrix(sample, spec)
    school = group_codes(sample[SCHOOL_COLUMN])
    g = int(school.max()) + 1
    counts = np.bincount(school, minlength=g).astype(float)
    x_means = _by_group(X, school, g) / counts[:, None]
    y_means = _by_group(y, school, g)[:, 0] / counts
    Xw, yw = X - x_means[school], y - y_means[school]
    const = spec.terms.index(CONST)
    keep, dropped = [], []
    R = np.linalg.qr(Xw, mode="r")
    for j in (j for j in range(len(spec.terms)) if j != const):
        (keep if _full_column_rank(R[:, keep + [j]], len(Xw)) else dropped).append(j)
    if 0 in dropped:
        raise ValueError(f"{spec.label} with school fixed effects: {spec.terms[0]} is constant within schools")
    W = Xw[:, keep]
    inv = np.linalg.inv(W.T @ W)
    beta = inv @ (W.T @ yw)
    u = yw - W @ beta
    n = len(y)
    df = n - len(keep) - g
    sigma2 = u @ u / df
    m0 = x_means[0, keep]
    intercept = y_means[0] - m0 @ beta
    L = W @ inv  # rows x terms: l_i of each coefficient
    leverage = 1 / counts[school] + (L * W).sum(axis=1)
    omega = (u / (1 - leverage)) ** 2
    l_const = (school == 0) / counts[0] - L @ m0
    estimates = dict(zip(keep, beta)) | {const: intercept}
    conventional = dict(zip(keep, np.sqrt(sigma2 * np.diag(inv)))) | {const: np.sqrt(sigma2 * (1 / counts[0] + m0 @ inv @ m0))}
    hc3 = dict(zip(keep, np.sqrt((L ** 2 * omega[:, None]).sum(axis=0)))) | {const: np.sqrt((l_const ** 2 * omega).sum())}
    kept = sorted([const, *keep])
    suffix = f"; left out (constant within schools): {', '.join(spec.terms[j] for j in sorted(dropped))}" if dropped else ""
    rows = []
    for analysis, se in (("school_fe", conventional), ("school_fe_hc3", hc3)):
        for j in kept:
            p = 2 * stats.t.sf(abs(estimates[j] / se[j]), df)
            rows.append(row(wave, spec, spec.terms[j], analysis, estimates[j], se[j], p, n, g,
                            ANALYSIS_NOTES[analysis] + suffix))
    return rows


BY_SUMS_NOTE = (f"; above {CLUSTER_DIRECT_MAX_ROWS:,} children the same REML estimator and MixedLM's standard errors "
                "computed from per-class sums, not by MixedLM")
WILD_ANALYSES = ("wild_rademacher", "wild_webb")


def wild_bootstrap_weights(g: int) -> dict[str, tuple[np.ndarray, bool]]:
    return {"wild_rademacher": rademacher_weights(g), "wild_webb": webb_weights(g)}


def wild_bootstrap_ps(y: np.ndarray, X: np.ndarray, clusters: np.ndarray) -> dict[str, list[float]]:
    """Every term's wild cluster bootstrap p-value under each weight distribution (numpy only)."""
    g = int(clusters.max()) + 1
    return {analysis: [wild_bootstrap_p(y, X, clusters, j, weights) for j in range(X.shape[1])]
            for analysis, (weights, _) in wild_bootstrap_weights(g).items()}


def wild_bootstrap_rows(sample: pl.DataFrame, spec: ModelSpec, wave: str,
                        p_values: dict[str, list[float]] | None = None,
                        design: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """OLS with CR1 SEs and wild cluster bootstrap p-values (Rademacher and Webb) by school
    (`p_values`: as `wild_bootstrap_ps` gives them, computed elsewhere; `design`: the model's
    `design_matrix`, when the caller has it)."""
    y, X = design if design is not None else design_matrix(sample, spec)
    clusters = group_codes(sample[SCHOOL_COLUMN])
    g = int(clusters.max()) + 1
    direct = len(y) <= CLUSTER_DIRECT_MAX_ROWS
    beta, se = (cr1_standard_errors if direct else cr1_standard_errors_by_sums)(y, X, clusters)
    if p_values is None:
        p_values = (wild_bootstrap_ps if direct else wild_bootstrap_ps_by_sums)(y, X, clusters)
    rows = []
    for analysis, (weights, enumerated) in wild_bootstrap_weights(g).items():
        how = (f"all {weights.shape[1]} patterns of {g} clusters enumerated; smallest attainable p "
               f"{(2 if analysis == 'wild_rademacher' else 6) / weights.shape[1]:.4g}" if enumerated
               else f"{weights.shape[1]} draws, seed {BOOTSTRAP_SEED}")
        for j, term in enumerate(spec.terms):
            rows.append(row(wave, spec, term, analysis, beta[j], se[j], p_values[analysis][j], len(y), g,
                            f"{ANALYSIS_NOTES[analysis]}; {how}"))
    return rows


def fit_random_intercept(y: np.ndarray, X: np.ndarray, groups: np.ndarray):
    """MixedLM random-intercept fit (REML) and the warnings statsmodels raised.

    Powell first (Nelder-Mead as fallback): at a class variance on the boundary (0) the
    gradient optimisers (lbfgs, bfgs) stopped with wrong fixed effects on the reference
    wave, while Powell and Nelder-Mead reached the OLS solution the zero variance implies.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = MixedLM(y, X, groups=groups).fit(reml=True, method=["powell", "nm"])
    return result, [str(w.message) for w in caught]


def icc(result) -> tuple[float, float, float]:
    """(class variance, residual variance, ICC = class / (class + residual))."""
    between = float(result.cov_re.iloc[0, 0]) if hasattr(result.cov_re, "iloc") else float(np.asarray(result.cov_re)[0, 0])
    within = float(result.scale)
    return between, within, between / (between + within)


@dataclass(frozen=True)
class RandomInterceptFit:
    """What the tables keep of a MixedLM random-intercept fit (small: it crosses processes)."""

    fe_params: np.ndarray
    bse_fe: np.ndarray
    between: float
    within: float
    icc: float
    converged: bool
    warnings: tuple[str, ...]
    by_sums: bool = False  # fitted by random_intercept_fit_by_sums, not MixedLM


def random_intercept_fit_by_sums(y: np.ndarray, X: np.ndarray, groups: np.ndarray) -> RandomInterceptFit:
    """The REML random-intercept fit of `fit_random_intercept`, from per-class sums.

    With psi = class variance / residual variance, V_g = I + psi 11' and V_g^-1 = I - c_g 11',
    c_g = psi / (1 + n_g psi), so X'V^-1X = X'X - sum_g c_g s_g s_g' (s_g = X_g'1), X'V^-1y and
    y'V^-1y likewise: the restricted likelihood with the residual variance profiled out,
    -1/2 [(N - p) log q(psi) + sum_g log(1 + n_g psi) + log det X'V^-1X], q the GLS residual
    quadratic form, is a function of psi through class sums only, maximised on psi >= 0 where
    its derivative is 0 (Brent's root search; psi = 0 when it falls from there). The residual variance is q / (N - p), the
    class variance psi times it, the fixed effects GLS. Their standard errors are statsmodels'
    (MixedLM.hessian for one random intercept, written with the class sums): the inverse of
    minus the Hessian of the profile likelihood in (beta, psi), cross terms included. The
    warnings are MixedLM's: a class variance under 0.01 ('on the boundary'), a Hessian
    whose diagonal is not negative."""
    n, p = X.shape
    n_groups = int(groups.max()) + 1
    n_g = np.bincount(groups, minlength=n_groups).astype(float)
    S = _by_group(X, groups, n_groups)  # classes x p
    t_y = np.bincount(groups, weights=y, minlength=n_groups)
    xtx, xty, yy = X.T @ X, X.T @ y, float(y @ y)
    fac = n - p

    def gls(psi: float):
        c = psi / (1 + n_g * psi)
        xtvix = xtx - (S * c[:, None]).T @ S
        xtviy = xty - S.T @ (c * t_y)
        beta = np.linalg.solve(xtvix, xtviy)
        q = yy - float(c @ t_y ** 2) - float(xtviy @ beta)
        return beta, xtvix, q

    def slope(psi: float) -> float:
        """d/dpsi of minus the profile log-likelihood: with d_g = 1/(1 + n_g psi), dc_g/dpsi = d_g^2,
        so d log det X'V^-1X = -sum d_g^2 s_g'(X'V^-1X)^-1 s_g and (envelope) dq = -sum d_g^2 t_g^2,
        t_g the class's sum of GLS residuals."""
        beta, xtvix, q = gls(psi)
        d = 1 / (1 + n_g * psi)
        t = t_y - S @ beta
        lever = np.einsum("gi,gi->g", S, np.linalg.solve(xtvix, S.T).T)
        return 0.5 * (-fac * float((d ** 2 * t ** 2).sum()) / q + float((n_g * d).sum()) - float((d ** 2 * lever).sum()))

    converged = True
    if slope(0.0) >= 0:  # the likelihood falls from psi = 0: the class variance is on the boundary
        psi = 0.0
    else:
        upper = 1.0
        while slope(upper) < 0 and upper < 1e8:
            upper *= 10
        psi, info = optimize.brentq(slope, 0.0, upper, xtol=1e-14, rtol=4 * np.finfo(float).eps, full_output=True)
        converged = bool(info.converged)
    beta, xtvix, q = gls(psi)
    scale = q / fac
    # statsmodels' Hessian (MixedLM.hessian) at (beta, psi), residual variance profiled
    d = 1 / (1 + n_g * psi)
    t = t_y - S @ beta  # per class: sum of residuals
    rvir = q
    hess_fe = -fac * xtvix / rvir
    hess_fere = -fac * ((d ** 2 * t) @ S) / rvir
    B = float((d ** 2 * t ** 2).sum())
    D = float((2 * d ** 3 * n_g * t ** 2).sum())
    hess_re = float((d ** 2 * n_g ** 2).sum() / 2) - 0.5 * fac * (D / rvir - B ** 2 / rvir ** 2)
    xtax = (S * (d ** 2)[:, None]).T @ S
    F = 2 * (S * (d ** 3 * n_g)[:, None]).T @ S
    QL = np.linalg.solve(xtvix, xtax)
    hess_re += 0.5 * (float((QL.T * QL).sum()) - float(np.trace(np.linalg.solve(xtvix, F))))
    hess = np.zeros((p + 1, p + 1))
    hess[:p, :p] = hess_fe
    hess[:p, p] = hess[p, :p] = hess_fere
    hess[p, p] = hess_re
    cov = np.linalg.inv(-hess)
    between = scale * psi
    caught = []
    if between < 0.01:
        caught.append("The MLE may be on the boundary of the parameter space.")
    if np.any(np.diag(hess) >= 0):
        caught.append("The Hessian matrix at the estimated parameter values is not positive definite.")
    return RandomInterceptFit(beta, np.sqrt(np.diag(cov)[:p]), between, scale, between / (between + scale),
                              converged, tuple(caught), by_sums=True)


def random_intercept_fit(design: tuple[np.ndarray, np.ndarray, np.ndarray]) -> RandomInterceptFit:
    """`fit_random_intercept` on (y, X, groups), summarised (numpy and statsmodels only); above
    CLUSTER_DIRECT_MAX_ROWS rows `random_intercept_fit_by_sums`."""
    y, X, groups = design
    if len(y) > CLUSTER_DIRECT_MAX_ROWS:
        return random_intercept_fit_by_sums(y, X, groups)
    result, caught = fit_random_intercept(y, X, groups)
    between, within, value = icc(result)
    return RandomInterceptFit(np.asarray(result.fe_params), np.asarray(result.bse_fe), between, within, value,
                              bool(result.converged), tuple(caught))


def multilevel_rows(sample: pl.DataFrame, spec: ModelSpec, wave: str,
                    fit: RandomInterceptFit | None = None,
                    design: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[list[dict], dict]:
    """The model with a random intercept for class: coefficient rows and its ICC row (`fit`:
    `random_intercept_fit` of its design, computed elsewhere; `design`: its `design_matrix`)."""
    y, X = design if design is not None else design_matrix(sample, spec)
    groups = group_codes(sample[CLASS_COLUMN])
    fit = fit if fit is not None else random_intercept_fit((y, X, groups))
    k = X.shape[1]
    params, bse = fit.fe_params, fit.bse_fe
    n_classes = int(groups.max()) + 1
    note = ANALYSIS_NOTES["multilevel_class"] + (BY_SUMS_NOTE if fit.by_sums else "")
    rows = [row(wave, spec, term, "multilevel_class", params[j], bse[j], 2 * stats.norm.sf(abs(params[j] / bse[j])),
                len(y), n_classes, note) for j, term in enumerate(spec.terms)]
    assert len(rows) == k
    return rows, {"wave": wave, "model": spec.label, "table_no": spec.table_no, "model_no": spec.model_no,
                  "n_obs": len(y), "n_classes": n_classes, "class_variance": fit.between,
                  "residual_variance": fit.within, "icc": fit.icc, "converged": fit.converged,
                  "warnings": "; ".join(sorted(set(fit.warnings))) or None}


def empty_model_design(sample: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = sample["depression"].cast(pl.Float64).to_numpy()
    return y, np.ones((len(y), 1)), group_codes(sample[CLASS_COLUMN])


def empty_model_icc(sample: pl.DataFrame, wave: str, fit: RandomInterceptFit | None = None) -> dict:
    """ICC of depression itself: the random-intercept model with only a constant."""
    y, X, groups = empty_model_design(sample)
    fit = fit if fit is not None else random_intercept_fit((y, X, groups))
    return {"wave": wave, "model": "Empty model (depression only)", "table_no": 0, "model_no": 0,
            "n_obs": len(y), "n_classes": int(groups.max()) + 1, "class_variance": fit.between,
            "residual_variance": fit.within, "icc": fit.icc, "converged": fit.converged,
            "warnings": "; ".join(sorted(set(fit.warnings))) or None}


def _numeric_work(task: tuple[str, tuple]):
    """One independent numeric piece of the clustering analyses (run in a forked worker)."""
    kind, arrays = task
    if kind == "multilevel":
        return random_intercept_fit(arrays)
    return (wild_bootstrap_ps if len(arrays[0]) <= CLUSTER_DIRECT_MAX_ROWS else wild_bootstrap_ps_by_sums)(*arrays)


CLUSTER_SCHEMA = {
    "wave": pl.String, "table_no": pl.Int64, "model_no": pl.Int64, "term": pl.String, "analysis": pl.String,
    "estimate": pl.Float64, "std_error": pl.Float64, "p_value": pl.Float64, "stars": pl.String,
    "n_obs": pl.Int64, "n_groups": pl.Int64, "note": pl.String,
}
ICC_SCHEMA = {
    "wave": pl.String, "model": pl.String, "table_no": pl.Int64, "model_no": pl.Int64, "n_obs": pl.Int64,
    "n_classes": pl.Int64, "class_variance": pl.Float64, "residual_variance": pl.Float64, "icc": pl.Float64,
    "converged": pl.Boolean, "warnings": pl.String,
}


@single_blas_thread
def clustering_sensitivity(sample: pl.DataFrame, wave: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`marts.cluster_sensitivity` and `marts.multilevel_icc` for the focal models.

    `sample` is the analysis sample with `school_id` and `class_key` (school + class).
    """
    missing = {SCHOOL_COLUMN, CLASS_COLUMN} - set(sample.columns)
    if missing:
        raise ValueError(f"the clustering sensitivity needs columns {sorted(missing)} in the sample of wave {wave!r}")
    # The random-intercept fits and the bootstrap p-values are independent numpy work: they
    # run on every core (forked workers), on arrays built here (polars stays in this process).
    specs = focal_specs()
    schools, classes = group_codes(sample[SCHOOL_COLUMN]), group_codes(sample[CLASS_COLUMN])
    designs = [design_matrix(sample, spec) for spec in specs]
    tasks = [("multilevel", empty_model_design(sample))]
    tasks += [("multilevel", (y, X, classes)) for y, X in designs]
    tasks += [("wild", (y, X, schools)) for y, X in designs]
    done = fork_map(_numeric_work, tasks)
    fits, p_values = done[:len(specs) + 1], done[len(specs) + 1:]
    rows, iccs = [], [empty_model_icc(sample, wave, fits[0])]
    for spec, fit, ps, design in zip(specs, fits[1:], p_values, designs):
        rows += (school_fixed_effects if sample.height <= CLUSTER_DIRECT_MAX_ROWS
                 else school_fixed_effects_by_sums)(sample, spec, wave, design)
        rows += wild_bootstrap_rows(sample, spec, wave, ps, design)
        ml_rows, icc_row = multilevel_rows(sample, spec, wave, fit, design)
        rows += ml_rows
        iccs.append(icc_row)
    order = {a: i for i, a in enumerate(ANALYSES)}
    frame = (pl.DataFrame(rows, schema=CLUSTER_SCHEMA)
             .with_columns(pl.col("analysis").replace_strict(order).alias("__o"))
             .sort("table_no", "model_no", "__o", maintain_order=True).drop("__o"))
    return (CLUSTER_CONTRACT.validate(frame),
            ICC_CONTRACT.validate(pl.DataFrame(iccs, schema=ICC_SCHEMA)))


def clustering_sensitivity_of_wave(measures: pl.DataFrame, questionnaires: pl.DataFrame,
                                   wave: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The clustering analyses on the wave's analysed children (with their class)."""
    return clustering_sensitivity(complete_cases(sensitivity_frame(measures, questionnaires, wave)), wave)


CLUSTER_CONTRACT = register("marts.cluster_sensitivity", pa.DataFrameSchema({
    "wave": WAVE,
    "table_no": pa.Column(pl.Int64, description="The paper's table (2 or 4)"),
    "model_no": pa.Column(pl.Int64, description="The model's number within its table"),
    "term": pa.Column(pl.String, description="Term as in marts.model_coefficients (school dummies not listed)"),
    "analysis": pa.Column(pl.String, pa.Check.isin(list(ANALYSES)), description="; ".join(f"{k}: {v}" for k, v in ANALYSIS_NOTES.items())),
    "estimate": pa.Column(pl.Float64, description="Coefficient (as_published coding)"),
    "std_error": pa.Column(pl.Float64, pa.Check.gt(0), description="Standard error of the analysis (CR1 clustered for the wild bootstrap rows)"),
    "p_value": pa.Column(pl.Float64, pa.Check.in_range(0, 1), description="Two-sided p-value: t (fixed effects), bootstrap (wild), normal (multilevel)"),
    "stars": pa.Column(pl.String, description="*** p < 0.001, ** p < 0.01, * p < 0.05"),
    "n_obs": pa.Column(pl.Int64, description="Children in the model"),
    "n_groups": pa.Column(pl.Int64, description="Schools (fixed effects, wild bootstrap) or classes (multilevel)"),
    "note": pa.Column(pl.String, description="How the row was computed and its limits (smallest attainable bootstrap p)"),
}, strict=True, unique=["wave", "table_no", "model_no", "term", "analysis"],
    description="One row per wave x focal model x term x clustering analysis: school fixed effects, wild cluster bootstrap (Rademacher, Webb) and a random intercept for class"))

ICC_CONTRACT = register("marts.multilevel_icc", pa.DataFrameSchema({
    "wave": WAVE,
    "model": pa.Column(pl.String, description="The model: the empty model (depression only) or a focal model of the paper"),
    "table_no": pa.Column(pl.Int64, description="The paper's table (0 for the empty model)"),
    "model_no": pa.Column(pl.Int64, description="The model's number (0 for the empty model)"),
    "n_obs": pa.Column(pl.Int64, description="Children"),
    "n_classes": pa.Column(pl.Int64, description="Classes (school + class id)"),
    "class_variance": pa.Column(pl.Float64, pa.Check.ge(0), description="Variance of the class random intercept (REML)"),
    "residual_variance": pa.Column(pl.Float64, pa.Check.gt(0), description="Residual (within-class) variance"),
    "icc": pa.Column(pl.Float64, pa.Check.in_range(0, 1), description="Intra-class correlation: class_variance / (class_variance + residual_variance)"),
    "converged": pa.Column(pl.Boolean, description="The optimiser reported convergence"),
    "warnings": pa.Column(pl.String, nullable=True, description="Warnings statsmodels raised during the fit (e.g. a variance on the boundary)"),
}, strict=True, unique=["wave", "table_no", "model_no"],
    description="One row per wave x model (and the empty model): the class random-intercept variance and the intra-class correlation"))
