"""The paper's regression models (Wang 2023, Tables 2-4) as data, and their OLS fits.

A model is a frozen `ModelSpec`; `model_specs` lists the fourteen models of one
specification:

- `as_published`: the coding the published numbers pin down. The school-support
  measure is mean-centred on the analysis sample in Table 3 and in Table 4 Models 2-6
  and enters raw (1-5) in Table 4 Model 1 (reference/inconsistencies.md, item 2).
- `harmonised`: every measure mean-centred on the analysis sample.

`fit_model` fits one spec with statsmodels OLS and reports each coefficient three
times, once per standard-error type: `nonrobust` (the paper's), `HC3`, and
`cluster_school` (clustered by school). With only four schools a cluster-robust
standard error is unreliable, so the `cluster_school` rows also carry a wild cluster
bootstrap-t p-value (Rademacher weights, null imposed: WCR).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import polars as pl

Specification = Literal["as_published", "harmonised"]
SPECIFICATIONS: tuple[Specification, ...] = ("as_published", "harmonised")

MIGRATION_TERMS = ("mother_away", "father_away", "both_away")
CONTROL_TERMS = (
    "girl",
    "age",
    "grade",
    "siblings",
    "korean",
    "mother_edu",
    "father_edu",
)
# Table 3 and Table 4 share this order: Models 1-6.
MODERATORS = (
    "belong",
    "teacher_attitude",
    "ht_satisfaction",
    "best_friends",
    "class_closeness",
    "peer_satisfaction",
)
CONST = "const"
OUTCOME = "depression"
CLUSTER_COLUMN = "school_id"

SE_TYPES = ("nonrobust", "HC3", "cluster_school")
STAR_RULE = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
CONFIDENCE_LEVEL = 0.95

# Wild cluster bootstrap: every Rademacher sign pattern is enumerated up to this many
# clusters (2**10 = 1024 patterns); above it, this many draws from a seeded generator.
WILD_BOOTSTRAP_ENUMERATE_MAX_CLUSTERS = 10
WILD_BOOTSTRAP_DRAWS = 9999
WILD_BOOTSTRAP_SEED = 20230113

NONROBUST_NOTE = "conventional OLS standard errors, as in the paper"
HC3_NOTE = "heteroskedasticity-robust standard errors (HC3)"

COEFFICIENT_SCHEMA_WITHOUT_WAVE = {
    "specification": pl.String,
    "table_no": pl.Int64,
    "model_no": pl.Int64,
    "term": pl.String,
    "estimate": pl.Float64,
    "std_error": pl.Float64,
    "t_value": pl.Float64,
    "p_value": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "stars": pl.String,
    "se_type": pl.String,
    "wild_bootstrap_p": pl.Float64,
    "note": pl.String,
}
FIT_SCHEMA = {
    "wave": pl.String,
    "specification": pl.String,
    "table_no": pl.Int64,
    "model_no": pl.Int64,
    "n_obs": pl.Int64,
    "r_squared": pl.Float64,
    "adj_r_squared": pl.Float64,
    "f_stat": pl.Float64,
    "f_p_value": pl.Float64,
    "moderator": pl.String,
    "centred": pl.Boolean,
}
COEFFICIENT_COLUMNS = ("wave", *COEFFICIENT_SCHEMA_WITHOUT_WAVE)
FIT_COLUMNS = tuple(FIT_SCHEMA)


@dataclass(frozen=True)
class ModelSpec:
    """One model of the paper: which table, which moderator, how it is coded.

    `terms` are the design-matrix columns in the paper's printing order (migration
    dummies, controls, moderator, interactions, `const`); an interaction is named
    `mother_away:belong`, migration dummy first.
    """

    table_no: int
    model_no: int
    moderator: str | None
    interactions: bool
    centre_moderator: bool
    terms: tuple[str, ...]
    specification: Specification

    @property
    def label(self) -> str:
        """The paper's name of the model, e.g. 'Table 4 Model 1'."""
        return f"Table {self.table_no} Model {self.model_no}"


@dataclass(frozen=True)
class FittedModel:
    """One fitted spec: fit statistics, estimates and a covariance matrix per SE type.

    `coefficients` has one row per term x SE type, with the columns of
    `marts.model_coefficients` except `wave`.
    """

    spec: ModelSpec
    n_obs: int
    r_squared: float
    adj_r_squared: float
    f_stat: float
    f_p_value: float
    moderator_mean: float | None
    covariances: dict[str, np.ndarray]
    coefficients: pl.DataFrame = field(repr=False)


def interaction_term(migration_term: str, moderator: str) -> str:
    """Name the interaction of a migration dummy with a moderator."""
    return f"{migration_term}:{moderator}"


def model_terms(moderator: str | None, controls: bool, interactions: bool) -> tuple[str, ...]:
    """List a model's terms in the paper's printing order."""
    terms = list(MIGRATION_TERMS)
    if controls:
        terms += CONTROL_TERMS
    if moderator is not None:
        terms.append(moderator)
        if interactions:
            terms += [interaction_term(m, moderator) for m in MIGRATION_TERMS]
    terms.append(CONST)
    return tuple(terms)


def model_specs(specification: Specification) -> list[ModelSpec]:
    """List the fourteen models of Tables 2-4 under one specification."""
    if specification not in SPECIFICATIONS:
        raise ValueError(f"unknown specification {specification!r}; expected one of {SPECIFICATIONS}")
    specs = [
        ModelSpec(2, 1, None, False, False, model_terms(None, False, False), specification),
        ModelSpec(2, 2, None, False, False, model_terms(None, True, False), specification),
    ]
    for table_no, interactions in ((3, False), (4, True)):
        for model_no, moderator in enumerate(MODERATORS, start=1):
            raw_in_paper = table_no == 4 and model_no == 1
            centre = specification == "harmonised" or not raw_in_paper
            terms = model_terms(moderator, True, interactions)
            specs.append(
                ModelSpec(table_no, model_no, moderator, interactions, centre, terms, specification)
            )
    return specs


def moderator_values(sample: pl.DataFrame, spec: ModelSpec) -> tuple[np.ndarray, float | None]:
    """Return the moderator as it enters the model and the sample mean subtracted (if any)."""
    raw = sample[spec.moderator].cast(pl.Float64).to_numpy()
    if not spec.centre_moderator:
        return raw, None
    mean = float(raw.mean())
    return raw - mean, mean


def design_matrix(sample: pl.DataFrame, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Build the outcome vector and the design matrix of one model.

    Rows are the sample's children in their order; the matrix's columns are
    `spec.terms` in order. A centred moderator is centred on this sample.
    """
    moderator = moderator_values(sample, spec)[0] if spec.moderator else None
    columns = []
    for term in spec.terms:
        if term == CONST:
            columns.append(np.ones(sample.height))
        elif term == spec.moderator:
            columns.append(moderator)
        elif ":" in term:
            dummy = term.split(":", 1)[0]
            columns.append(sample[dummy].cast(pl.Float64).to_numpy() * moderator)
        else:
            columns.append(sample[term].cast(pl.Float64).to_numpy())
    y = sample[OUTCOME].cast(pl.Float64).to_numpy()
    return y, np.column_stack(columns)


def significance_stars(p_value: float) -> str:
    """Return the paper's stars for a p-value: '***' < 0.001, '**' < 0.01, '*' < 0.05."""
    for cut, stars in STAR_RULE:
        if p_value < cut:
            return stars
    return ""


def cluster_codes(sample: pl.DataFrame) -> np.ndarray:
    """Return each child's school as an integer code 0..G-1."""
    return np.unique(sample[CLUSTER_COLUMN].cast(pl.String).to_numpy(), return_inverse=True)[1]


def rademacher_weights(n_clusters: int) -> tuple[np.ndarray, bool]:
    """Return Rademacher sign patterns (clusters x patterns) and whether they are all of them.

    Up to WILD_BOOTSTRAP_ENUMERATE_MAX_CLUSTERS clusters every one of the 2**G
    patterns is listed (an exact, seed-free distribution); above that,
    WILD_BOOTSTRAP_DRAWS patterns are drawn with WILD_BOOTSTRAP_SEED.
    """
    if n_clusters <= WILD_BOOTSTRAP_ENUMERATE_MAX_CLUSTERS:
        patterns = np.array(list(itertools.product((1.0, -1.0), repeat=n_clusters)))
        return patterns.T, True
    rng = np.random.default_rng(WILD_BOOTSTRAP_SEED)
    return rng.choice((-1.0, 1.0), size=(n_clusters, WILD_BOOTSTRAP_DRAWS)), False


@dataclass(frozen=True)
class ClusterDesign:
    """A design matrix with the per-cluster pieces the wild bootstrap reuses for every term."""

    X: np.ndarray
    onehot: np.ndarray  # rows x clusters, 1 where the row is in the cluster
    xtx_inv: np.ndarray
    hessians: np.ndarray  # clusters x k x k: X_g' X_g

    @property
    def n_clusters(self) -> int:
        return self.onehot.shape[1]


def cluster_design(X: np.ndarray, clusters: np.ndarray) -> ClusterDesign:
    """Precompute (X'X)^-1 and each cluster's X_g' X_g for the cluster codes 0..G-1."""
    n_clusters = int(clusters.max()) + 1
    onehot = (clusters[:, None] == np.arange(n_clusters)[None, :]).astype(float)
    hessians = np.stack([X[clusters == g].T @ X[clusters == g] for g in range(n_clusters)])
    return ClusterDesign(X, onehot, np.linalg.inv(X.T @ X), hessians)


def cluster_t_statistics(
    design: ClusterDesign,
    column: int,
    fitted: np.ndarray,
    residuals: np.ndarray,
    weights: np.ndarray,
) -> np.ndarray:
    """Return the cluster-robust t statistic of one coefficient in each wild bootstrap sample.

    Bootstrap sample b has outcome `fitted + weights[g, b] * residuals` (g = the
    row's cluster). The variance is the CR1 sandwich with statsmodels' small-sample
    factor G/(G-1) * (N-1)/(N-K), so a weight of all ones reproduces the t statistic
    of `fitted + residuals` regressed on X. Everything is computed for all samples at
    once from per-cluster sums, without refitting.
    """
    X, xtx_inv = design.X, design.xtx_inv
    n, k = X.shape
    a = xtx_inv[column]  # beta_j = a' X'y
    s = X.T @ (design.onehot * residuals[:, None])  # s[:, g] = X_g' u_g
    beta_fitted = xtx_inv @ (X.T @ fitted)
    q = a @ s
    numerator = beta_fitted[column] + q @ weights
    # a . (cluster g's score in sample b) = w_gb (a . s_g) - a' H_g (X'X)^-1 S w_b
    r = np.einsum("i,gij->gj", a, design.hessians) @ (xtx_inv @ s)
    scores = (np.diag(q) - r) @ weights
    g = design.n_clusters
    correction = g / (g - 1) * (n - 1) / (n - k)
    variance = correction * (scores**2).sum(axis=0)
    return numerator / np.sqrt(variance)


def wild_cluster_bootstrap_p(
    y: np.ndarray,
    X: np.ndarray,
    clusters: np.ndarray,
    column: int,
    design: ClusterDesign | None = None,
) -> tuple[float, int, bool]:
    """Return the wild cluster bootstrap-t p-value of H0: coefficient `column` = 0.

    WCR: the null is imposed (the model is refitted without the column), the
    restricted residuals are flipped by Rademacher signs per cluster, and the
    p-value is the share of bootstrap |t| at least the observed |t| (symmetric).
    `design` may carry the precomputed cluster pieces of X. Returns (p-value,
    number of sign patterns, whether all were enumerated).
    """
    design = design or cluster_design(X, clusters)
    restricted = np.delete(X, column, axis=1)
    coef_r = np.linalg.lstsq(restricted, y, rcond=None)[0]
    fitted_r = restricted @ coef_r
    residuals_r = y - fitted_r
    weights, enumerated = rademacher_weights(design.n_clusters)
    t_observed = cluster_t_statistics(
        design, column, fitted_r, residuals_r, np.ones((design.n_clusters, 1))
    )[0]
    t_boot = cluster_t_statistics(design, column, fitted_r, residuals_r, weights)
    tolerance = 1e-10 * max(1.0, abs(t_observed))
    p_value = float(np.mean(np.abs(t_boot) >= abs(t_observed) - tolerance))
    return p_value, weights.shape[1], enumerated


def cluster_note(n_clusters: int, n_patterns: int, enumerated: bool) -> str:
    """Say how the cluster_school rows were computed and how far to trust them."""
    if enumerated:
        bootstrap = (
            f"wild cluster bootstrap-t p (WCR: Rademacher weights, null imposed), all "
            f"{n_patterns} sign patterns of {n_clusters} clusters enumerated; smallest "
            f"attainable p = {2 / n_patterns:.4g}"
        )
    else:
        bootstrap = (
            f"wild cluster bootstrap-t p (WCR: Rademacher weights, null imposed), "
            f"{n_patterns} draws, seed {WILD_BOOTSTRAP_SEED}"
        )
    return (
        f"clustered by school ({n_clusters} clusters, CR1, t with {n_clusters - 1} df): "
        f"unreliable with so few clusters; {bootstrap}"
    )


def fit_model(sample: pl.DataFrame, spec: ModelSpec) -> FittedModel:
    """Fit one model by OLS; its coefficient rows cover every SE type in SE_TYPES.

    Each row is one term under one SE type, with estimate, std_error, t_value,
    p_value (t distribution), 95% ci_low/ci_high, stars (from p_value),
    wild_bootstrap_p (cluster_school rows only) and a note on the SE type.
    """
    from statsmodels.regression.linear_model import OLS  # slow to import: only where fitted

    y, X = design_matrix(sample, spec)
    clusters = cluster_codes(sample)
    n_clusters = int(clusters.max()) + 1
    if np.linalg.matrix_rank(X) < X.shape[1]:
        constant = [t for j, t in enumerate(spec.terms) if t != CONST and np.ptp(X[:, j]) == 0]
        raise ValueError(
            f"{spec.label} cannot be estimated on this sample: its design matrix is rank "
            f"deficient (terms without variation: {constant or 'none; collinear terms'})"
        )
    if n_clusters < 2:
        raise ValueError(f"{spec.label}: clustered standard errors need at least two schools")
    base = OLS(y, X).fit()
    results = {
        "nonrobust": base,
        "HC3": base.get_robustcov_results(cov_type="HC3", use_t=True),
        "cluster_school": base.get_robustcov_results(cov_type="cluster", groups=clusters, use_t=True),
    }
    design = cluster_design(X, clusters)
    bootstrap = [wild_cluster_bootstrap_p(y, X, clusters, j, design) for j in range(X.shape[1])]
    note = cluster_note(n_clusters, bootstrap[0][1], bootstrap[0][2])
    rows = []
    for se_type, res in results.items():
        ci = res.conf_int(alpha=1 - CONFIDENCE_LEVEL)
        for j, term in enumerate(spec.terms):
            rows.append(
                {
                    "specification": spec.specification,
                    "table_no": spec.table_no,
                    "model_no": spec.model_no,
                    "term": term,
                    "estimate": float(res.params[j]),
                    "std_error": float(res.bse[j]),
                    "t_value": float(res.tvalues[j]),
                    "p_value": float(res.pvalues[j]),
                    "ci_low": float(ci[j, 0]),
                    "ci_high": float(ci[j, 1]),
                    "stars": significance_stars(float(res.pvalues[j])),
                    "se_type": se_type,
                    "wild_bootstrap_p": bootstrap[j][0] if se_type == "cluster_school" else None,
                    "note": {"nonrobust": NONROBUST_NOTE, "HC3": HC3_NOTE}.get(se_type, note),
                }
            )
    return FittedModel(
        spec=spec,
        n_obs=int(base.nobs),
        r_squared=float(base.rsquared),
        adj_r_squared=float(base.rsquared_adj),
        f_stat=float(base.fvalue),
        f_p_value=float(base.f_pvalue),
        moderator_mean=moderator_values(sample, spec)[1] if spec.moderator else None,
        covariances={se: np.asarray(res.cov_params(), dtype=float) for se, res in results.items()},
        coefficients=pl.DataFrame(rows, schema=COEFFICIENT_SCHEMA_WITHOUT_WAVE),
    )


def check_single_wave(sample: pl.DataFrame, wave: str) -> None:
    """Refuse a sample that holds another wave's children, or no children."""
    if sample.height == 0:
        raise ValueError(f"the analysis sample of wave {wave!r} is empty")
    if "wave" in sample.columns:
        others = sorted(set(sample["wave"].cast(pl.String).to_list()) - {wave})
        if others:
            raise ValueError(f"the sample for wave {wave!r} also holds waves {others}")


def fit_every_model(sample: pl.DataFrame, wave: str) -> list[FittedModel]:
    """Fit every model of both specifications on one wave's analysis sample."""
    check_single_wave(sample, wave)
    return [fit_model(sample, spec) for specification in SPECIFICATIONS for spec in model_specs(specification)]


def model_frames(fitted: list[FittedModel], wave: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Collect fitted models into `marts.model_coefficients` and `marts.model_fit`.

    model_coefficients: one row per specification x model x term x SE type.
    model_fit: one row per specification x model, with n_obs, r_squared,
    adj_r_squared, f_stat, f_p_value (conventional F test), the moderator and
    whether it was centred (null for the Table 2 models, which have none).
    """
    fits = [
        {
            "wave": wave,
            "specification": f.spec.specification,
            "table_no": f.spec.table_no,
            "model_no": f.spec.model_no,
            "n_obs": f.n_obs,
            "r_squared": f.r_squared,
            "adj_r_squared": f.adj_r_squared,
            "f_stat": f.f_stat,
            "f_p_value": f.f_p_value,
            "moderator": f.spec.moderator,
            "centred": f.spec.centre_moderator if f.spec.moderator else None,
        }
        for f in fitted
    ]
    coefficients = (
        pl.concat([f.coefficients for f in fitted])
        .with_columns(pl.lit(wave, dtype=pl.String).alias("wave"))
        .select(COEFFICIENT_COLUMNS)
    )
    return coefficients, pl.DataFrame(fits, schema=FIT_SCHEMA)


def fit_all(sample: pl.DataFrame, wave: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fit every model of both specifications and return (model_coefficients, model_fit)."""
    return model_frames(fit_every_model(sample, wave), wave)


def sample_sha256(sample: pl.DataFrame) -> str:
    """Hash the sample's canonical CSV: columns in name order, rows by child_key."""
    canonical = sample.select(sorted(sample.columns)).sort("child_key")
    text = canonical.write_csv(line_terminator="\n", float_precision=10)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_artifact(
    fitted: FittedModel, spec: ModelSpec, sample_sha256: str, package_version: str
) -> dict:
    """Describe one fitted model as a JSON-serialisable record, enough to audit it later.

    Holds the spec, the terms, every coefficient row, the full covariance matrix
    per SE type (rows and columns in `terms` order), n, R-squared, the centring
    mean, the sample's sha256 and the package and statsmodels versions.
    """
    import statsmodels

    return {
        "spec": asdict(spec),
        "label": spec.label,
        "terms": list(spec.terms),
        "n_obs": fitted.n_obs,
        "r_squared": fitted.r_squared,
        "adj_r_squared": fitted.adj_r_squared,
        "f_stat": fitted.f_stat,
        "f_p_value": fitted.f_p_value,
        "moderator_mean": fitted.moderator_mean,
        "coefficients": fitted.coefficients.to_dicts(),
        "covariance": {se: cov.tolist() for se, cov in fitted.covariances.items()},
        "sample_sha256": sample_sha256,
        "package_version": package_version,
        "statsmodels_version": statsmodels.__version__,
    }
