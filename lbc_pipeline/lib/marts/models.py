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

import functools
import hashlib
import itertools
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from lbc_pipeline.lib import contracts
from lbc_pipeline.study import ModelSpec, interaction_term, load_study  # noqa: F401  (re-exported)

_STUDY = load_study()
Specification = str
SPECIFICATIONS: tuple[str, ...] = _STUDY.specifications
MIGRATION_TERMS = _STUDY.migration_terms
CONTROL_TERMS = _STUDY.controls
MODERATORS = _STUDY.moderators
CONST = _STUDY.constant
OUTCOME = _STUDY.outcome
CLUSTER_COLUMN = _STUDY.cluster
SE_TYPES = _STUDY.se_types
CONFIDENCE_LEVEL = _STUDY.confidence_level

# Wild cluster bootstrap: every Rademacher sign pattern is enumerated up to this many
# clusters (2**10 = 1024 patterns); above it, this many draws from a seeded generator.
WILD_BOOTSTRAP_ENUMERATE_MAX_CLUSTERS = 10
WILD_BOOTSTRAP_DRAWS = 9999
WILD_BOOTSTRAP_SEED = 20230113
# Below this many children the models are fitted in-line (the reference wave's numbers stay
# those of one process): there the 28 fits take about 0.16 s in-line or on two forked
# workers alike; at 617,347 children the forked workers take 37 s (in-line fits with forked
# bootstraps took 83 s). Measured alternately on 2 cores, 2026-12-01.
FORK_FITS_MIN_ROWS = 20_000
# design_matrix fills a buffer this many rows at a time (3 times as fast as a column at a time)
DESIGN_FILL_ROWS = 8192


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


def model_specs(specification: Specification) -> list[ModelSpec]:
    """List the models of Tables 2-4 (study.yaml) under one specification."""
    return load_study().model_specs(specification)


def moderator_values(sample: pl.DataFrame, spec: ModelSpec) -> tuple[np.ndarray, float | None]:
    """Return the moderator as it enters the model and the sample mean subtracted (if any)."""
    return _moderator_of(sample[spec.moderator].cast(pl.Float64).to_numpy(), spec)


def _moderator_of(raw: np.ndarray, spec: ModelSpec) -> tuple[np.ndarray, float | None]:
    if not spec.centre_moderator:
        return raw, None
    mean = float(raw.mean())
    return raw - mean, mean


def design_matrix(sample: pl.DataFrame, spec: ModelSpec,
                  buffer: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Build the outcome vector and the design matrix of one model.

    Rows are the sample's children in their order; the matrix's columns are
    `spec.terms` in order. A centred moderator is centred on this sample.
    `buffer`: a float64 array of at least rows x terms elements to hold the matrix (the same
    numbers and C layout as a new one), for a caller that builds many designs of a large
    sample in turn: a new array of that size is fresh memory, its pages faulted in each time.
    The matrix returned is then a view of the buffer, overwritten by the next call.
    """
    return design_from_columns(lambda name: sample[name].cast(pl.Float64).to_numpy(), sample.height, spec, buffer)


def design_columns(sample: pl.DataFrame, specs: list[ModelSpec]) -> dict[str, np.ndarray]:
    """Every sample column the designs of `specs` read, as float64 arrays (for
    `design_from_columns` where polars cannot run, e.g. in a forked worker)."""
    names = {OUTCOME}
    for spec in specs:
        names |= {t.split(":", 1)[0] for t in spec.terms if t != CONST}
        names |= {spec.moderator} if spec.moderator else set()
    return {name: sample[name].cast(pl.Float64).to_numpy() for name in sorted(names)}


def design_from_columns(column, n: int, spec: ModelSpec,
                        buffer: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`design_matrix` from `column(name)`, each column of the sample as a float64 array of
    `n` rows (the same numbers from a polars frame or from `design_columns`)."""
    moderator = _moderator_of(column(spec.moderator), spec)[0] if spec.moderator else None
    columns = []
    for term in spec.terms:
        if term == CONST:
            columns.append(np.ones(n))
        elif term == spec.moderator:
            columns.append(moderator)
        elif ":" in term:
            dummy = term.split(":", 1)[0]
            columns.append(column(dummy) * moderator)
        else:
            columns.append(column(term))
    y = column(OUTCOME)
    if buffer is None:
        return y, np.column_stack(columns)
    X = buffer[:n * len(columns)].reshape(n, len(columns))
    for start in range(0, n, DESIGN_FILL_ROWS):  # a block of rows at a time: in cache
        block = slice(start, start + DESIGN_FILL_ROWS)
        for j, column_values in enumerate(columns):
            X[block, j] = column_values[block]
    return y, X


def significance_stars(p_value: float) -> str:
    """Return the paper's stars for a p-value (study.yaml's star rule)."""
    return load_study().stars(p_value)


def robust_results(base, se_type: str, clusters: np.ndarray | None = None):
    """The OLS results `base` with the covariance of one SE type of study.yaml."""
    if se_type == "nonrobust":
        return base
    if se_type == "cluster_school":
        return base.get_robustcov_results(cov_type="cluster", groups=clusters, use_t=True)
    return base.get_robustcov_results(cov_type=se_type, use_t=True)


def cluster_codes(sample: pl.DataFrame) -> np.ndarray:
    """Return each child's school as an integer code 0..G-1 (in sorted school order)."""
    return group_codes(sample[CLUSTER_COLUMN])


def group_codes(values: pl.Series) -> np.ndarray:
    """Integer codes 0..G-1 of a grouping column (sorted labels, as strings: the codes of
    `np.unique(labels, return_inverse=True)`, from polars' dense rank, ten times as fast on
    a large wave). A missing label is refused."""
    labels = values.cast(pl.String)
    if labels.null_count():
        raise ValueError(f"{values.name}: {labels.null_count()} rows without a value cannot be grouped")
    return (labels.rank("dense") - 1).cast(pl.Int64).to_numpy()


@functools.lru_cache(maxsize=4)
def rademacher_weights(n_clusters: int) -> tuple[np.ndarray, bool]:
    """Return Rademacher sign patterns (clusters x patterns) and whether they are all of them.

    Up to WILD_BOOTSTRAP_ENUMERATE_MAX_CLUSTERS clusters every one of the 2**G
    patterns is listed (an exact, seed-free distribution); above that,
    WILD_BOOTSTRAP_DRAWS patterns are drawn with WILD_BOOTSTRAP_SEED. The patterns are
    drawn once per number of clusters and shared (read-only) by every term and model.
    """
    if n_clusters <= WILD_BOOTSTRAP_ENUMERATE_MAX_CLUSTERS:
        patterns = np.array(list(itertools.product((1.0, -1.0), repeat=n_clusters))).T
        enumerated = True
    else:
        rng = np.random.default_rng(WILD_BOOTSTRAP_SEED)
        patterns = rng.choice((-1.0, 1.0), size=(n_clusters, WILD_BOOTSTRAP_DRAWS))
        enumerated = False
    patterns.setflags(write=False)
    return patterns, enumerated


@dataclass(frozen=True)
class ClusterDesign:
    """A design matrix with what the wild bootstrap reuses for every term.

    `order` sorts the rows by cluster and `starts` is where each cluster begins in that
    order, so per-cluster sums are one pass over contiguous rows.
    """

    X: np.ndarray
    n_clusters: int
    order: np.ndarray
    starts: np.ndarray
    xtx: np.ndarray
    xtx_inv: np.ndarray



def cluster_design(X: np.ndarray, clusters: np.ndarray) -> ClusterDesign:
    """Precompute X'X, its inverse and the rows' cluster order for the codes 0..G-1
    (every code must occur)."""
    n_clusters = int(clusters.max()) + 1
    order = np.argsort(clusters, kind="stable")
    starts = np.searchsorted(clusters[order], np.arange(n_clusters))
    xtx = X.T @ X
    return ClusterDesign(X, n_clusters, order, starts, xtx, np.linalg.inv(xtx))


def cluster_hessians(design: ClusterDesign) -> np.ndarray:
    """Each cluster's X_g'X_g (clusters x k x k), from one sorted pass per column."""
    Xs = design.X[design.order]
    k = Xs.shape[1]
    H = np.empty((design.n_clusters, k, k))
    for j in range(k):
        block = np.add.reduceat(Xs[:, j:j + 1] * Xs[:, j:], design.starts, axis=0)
        H[:, j, j:] = block
        H[:, j:, j] = block
    return H


@dataclass(frozen=True)
class RestrictedScores:
    """What the wild cluster bootstrap-t of H0: coefficient j = 0 needs, over the clusters
    (see `wild_cluster_bootstrap_ps` for the algebra)."""

    constant: float  # a'X'f_j: the restricted fit's share of coefficient j (0 up to rounding)
    q: np.ndarray  # clusters: q_g = a'X_g'u_j
    z_rows: np.ndarray  # k x clusters: (X'X)^-1 X_g'u_j
    qa_rows: np.ndarray  # k x clusters: (q_g a'H_g)'
    aH: np.ndarray  # clusters x k: a'H_g


def restricted_scores(y: np.ndarray, X: np.ndarray, design: ClusterDesign) -> list[RestrictedScores]:
    """Per column j, the restricted residuals' cluster scores X_g'u_j = X_g'e + b_j H_g c_j
    (Frisch-Waugh-Lovell) and what the bootstrap-t is built from; no refit, no rows x
    clusters matrix. Shared by the published models and the clustering sensitivity."""
    k = X.shape[1]
    xtx, xtx_inv = design.xtx, design.xtx_inv
    beta = xtx_inv @ (X.T @ y)
    Xs = X[design.order]
    residuals = y[design.order] - Xs @ beta
    S_e = np.add.reduceat(Xs * residuals[:, None], design.starts, axis=0)  # clusters x k
    del Xs
    H = cluster_hessians(design)
    pieces = []
    for j in range(k):
        keep = np.arange(k) != j
        c = np.zeros(k)
        c[j] = 1.0
        c[keep] = -np.linalg.solve(xtx[np.ix_(keep, keep)], xtx[keep, j])
        S = (S_e + beta[j] * (H @ c)).T  # k x clusters: X_g'u_j
        a = xtx_inv[j]
        q = a @ S
        aH = H @ a  # clusters x k: a'H_g (H_g symmetric)
        constant = float(a @ (xtx @ (beta - beta[j] * c)))  # a'X'f_j (0 up to rounding)
        pieces.append(RestrictedScores(constant, q, xtx_inv @ S, (q[:, None] * aH).T, aH))
    return pieces


def wild_cluster_bootstrap_ps(y: np.ndarray, X: np.ndarray, clusters: np.ndarray,
                              design: ClusterDesign | None = None) -> list[tuple[float, int, bool]]:
    """Return the wild cluster bootstrap-t p-value of H0: coefficient j = 0 for every column j.

    WCR: the null is imposed (the model is refitted without the column), the
    restricted residuals are flipped by Rademacher signs per cluster, and the
    p-value is the share of bootstrap |t| at least the observed |t| (symmetric).
    Returns (p-value, number of sign patterns, whether all were enumerated) per column.

    Nothing is refitted and no rows x clusters or clusters x clusters matrix is formed:
    - the restricted residuals are u_j = e + b_j X c_j (Frisch-Waugh-Lovell: e the full
      model's residuals, b_j its coefficient, X c_j = x_j minus its projection on the
      other columns), so each cluster's X_g'u_j = X_g'e + b_j H_g c_j (H_g = X_g'X_g);
    - with a = row j of (X'X)^-1, sample b's coefficient is a'X'f_j + sum_g w_gb q_g
      (q_g = a'X_g'u_j, f_j = the restricted fitted values) and its CR1 variance is the
      sum over clusters of the squared score w_gb q_g - (a'H_g) z_b, z_b = (X'X)^-1 S w_b;
      with w_gb = +-1 that sum is q'q - 2 z_b'y_b + z_b'(aH'aH) z_b, y_b = (q aH)' w_b;
    - so every term's statistics are rows over clusters (q, (X'X)^-1 S, (q aH)') times
      the sign patterns: one matrix product for all terms of the model.
    """
    design = design or cluster_design(X, clusters)
    n, k = X.shape
    g = design.n_clusters
    weights, enumerated = rademacher_weights(g)
    pieces = restricted_scores(y, X, design)
    stacked = np.vstack([np.vstack([p.q[None, :], p.z_rows, p.qa_rows]) for p in pieces])
    projected_all = stacked @ weights  # (k (2k + 1)) x samples
    observed_all = stacked.sum(axis=1)  # the all-ones pattern: the original sample
    correction = g / (g - 1) * (n - 1) / (n - k)
    out = []
    height = 2 * k + 1
    for j, piece in enumerate(pieces):
        constant, q, gram = piece.constant, piece.q, piece.aH.T @ piece.aH

        def t_of(projected: np.ndarray) -> np.ndarray:
            z, yq = projected[1:k + 1], projected[k + 1:]
            total = q @ q - 2 * (z * yq).sum(axis=0) + (z * (gram @ z)).sum(axis=0)
            return (constant + projected[0]) / np.sqrt(correction * total)

        block = slice(j * height, (j + 1) * height)
        t_observed = t_of(observed_all[block][:, None])[0]
        t_boot = t_of(projected_all[block])
        tolerance = 1e-10 * max(1.0, abs(t_observed))
        out.append((float(np.mean(np.abs(t_boot) >= abs(t_observed) - tolerance)), weights.shape[1], enumerated))
    return out


def wild_cluster_bootstrap_p(
    y: np.ndarray,
    X: np.ndarray,
    clusters: np.ndarray,
    column: int,
    design: ClusterDesign | None = None,
) -> tuple[float, int, bool]:
    """Return the wild cluster bootstrap-t p-value of H0: coefficient `column` = 0
    (see `wild_cluster_bootstrap_ps`)."""
    return wild_cluster_bootstrap_ps(y, X, clusters, design)[column]


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


def design_rank(fitted) -> int:
    """The design matrix's rank as `np.linalg.matrix_rank` computes it (singular values above
    S.max() * max(N, K) * eps), from the singular values statsmodels' fit has already computed
    (a second SVD of an N x K matrix costs as much as the fit)."""
    values = np.asarray(fitted.model.wexog_singular_values)
    exog = fitted.model.wexog
    tolerance = values.max() * max(exog.shape) * np.finfo(values.dtype).eps
    return int(np.count_nonzero(values > tolerance))


@dataclass(frozen=True)
class ModelNumbers:
    """One model's OLS fit as numbers only (numpy, picklable): what `fit_model` reports, per SE
    type the estimates, standard errors, t and p values, 95% intervals and covariance."""

    n_obs: int
    n_clusters: int
    r_squared: float
    adj_r_squared: float
    f_stat: float
    f_p_value: float
    params: dict[str, np.ndarray]
    bse: dict[str, np.ndarray]
    tvalues: dict[str, np.ndarray]
    pvalues: dict[str, np.ndarray]
    conf_int: dict[str, np.ndarray]
    covariances: dict[str, np.ndarray]
    bootstrap: list[tuple[float, int, bool]]


def fit_numbers(y: np.ndarray, X: np.ndarray, clusters: np.ndarray, spec: ModelSpec) -> ModelNumbers:
    """Fit one model's design by OLS (statsmodels) under every SE type of SE_TYPES, with the
    wild bootstrap p-values. No polars: it runs in forked workers. A rank-deficient design,
    or fewer than two schools, is refused."""
    from statsmodels.regression.linear_model import OLS  # slow to import: only where fitted

    n_clusters = int(clusters.max()) + 1
    with warnings.catch_warnings():  # a rank-deficient design is refused just below
        warnings.filterwarnings("ignore", message="The design matrix is rank-deficient")
        base = OLS(y, X).fit()
    if design_rank(base) < X.shape[1]:
        constant = [t for j, t in enumerate(spec.terms) if t != CONST and np.ptp(X[:, j]) == 0]
        raise ValueError(
            f"{spec.label} cannot be estimated on this sample: its design matrix is rank "
            f"deficient (terms without variation: {constant or 'none; collinear terms'})"
        )
    if n_clusters < 2:
        raise ValueError(f"{spec.label}: clustered standard errors need at least two schools")
    results = {se_type: robust_results(base, se_type, clusters) for se_type in SE_TYPES}
    bootstrap = wild_cluster_bootstrap_ps(y, X, clusters, cluster_design(X, clusters))
    return ModelNumbers(
        n_obs=int(base.nobs), n_clusters=n_clusters, r_squared=float(base.rsquared),
        adj_r_squared=float(base.rsquared_adj), f_stat=float(base.fvalue), f_p_value=float(base.f_pvalue),
        params={se: np.asarray(res.params) for se, res in results.items()},
        bse={se: np.asarray(res.bse) for se, res in results.items()},
        tvalues={se: np.asarray(res.tvalues) for se, res in results.items()},
        pvalues={se: np.asarray(res.pvalues) for se, res in results.items()},
        conf_int={se: np.asarray(res.conf_int(alpha=1 - CONFIDENCE_LEVEL)) for se, res in results.items()},
        covariances={se: np.asarray(res.cov_params(), dtype=float) for se, res in results.items()},
        bootstrap=bootstrap,
    )


def fit_model(sample: pl.DataFrame, spec: ModelSpec) -> FittedModel:
    """Fit one model by OLS; its coefficient rows cover every SE type in SE_TYPES.

    Each row is one term under one SE type, with estimate, std_error, t_value,
    p_value (t distribution), 95% ci_low/ci_high, stars (from p_value),
    wild_bootstrap_p (cluster_school rows only) and a note on the SE type.
    """
    y, X = design_matrix(sample, spec)
    return fitted_model(sample, spec, fit_numbers(y, X, cluster_codes(sample), spec))


def fitted_model(sample: pl.DataFrame, spec: ModelSpec, numbers: ModelNumbers) -> FittedModel:
    """The `FittedModel` of `fit_numbers`' numbers: the coefficient rows as a frame."""
    bootstrap = numbers.bootstrap
    note = cluster_note(numbers.n_clusters, bootstrap[0][1], bootstrap[0][2])
    rows = []
    for se_type in SE_TYPES:
        params, bse, tvalues, pvalues = (numbers.params[se_type], numbers.bse[se_type],
                                         numbers.tvalues[se_type], numbers.pvalues[se_type])
        ci = numbers.conf_int[se_type]
        for j, term in enumerate(spec.terms):
            rows.append(
                {
                    "specification": spec.specification,
                    "table_no": spec.table_no,
                    "model_no": spec.model_no,
                    "term": term,
                    "estimate": float(params[j]),
                    "std_error": float(bse[j]),
                    "t_value": float(tvalues[j]),
                    "p_value": float(pvalues[j]),
                    "ci_low": float(ci[j, 0]),
                    "ci_high": float(ci[j, 1]),
                    "stars": significance_stars(float(pvalues[j])),
                    "se_type": se_type,
                    "wild_bootstrap_p": bootstrap[j][0] if se_type == "cluster_school" else None,
                    "note": load_study().se_notes[se_type] or note,
                }
            )
    return FittedModel(
        spec=spec,
        n_obs=numbers.n_obs,
        r_squared=numbers.r_squared,
        adj_r_squared=numbers.adj_r_squared,
        f_stat=numbers.f_stat,
        f_p_value=numbers.f_p_value,
        moderator_mean=moderator_values(sample, spec)[1] if spec.moderator else None,
        covariances=numbers.covariances,
        coefficients=contracts.frame("marts.model_coefficients", rows, drop=("wave",)),
    )


def check_single_wave(sample: pl.DataFrame, wave: str) -> None:
    """Refuse a sample that holds another wave's children, or no children."""
    if sample.height == 0:
        raise ValueError(f"the analysis sample of wave {wave!r} is empty")
    if "wave" in sample.columns:
        others = sorted(set(sample["wave"].cast(pl.String).to_list()) - {wave})
        if others:
            raise ValueError(f"the sample for wave {wave!r} also holds waves {others}")


def fit_every_model(sample: pl.DataFrame, wave: str, workers: int | None = None) -> list[FittedModel]:
    """Fit every model of both specifications on one wave's analysis sample.

    On a wave of FORK_FITS_MIN_ROWS children or more each model's numbers (`fit_numbers`:
    the OLS fit, every SE type and the wild bootstrap, numpy and statsmodels) are computed on
    every core (forked workers, `workers` at a time, one BLAS thread each), each design built
    in its worker from the sample's columns (`design_columns`: polars stays in this process,
    and no more than one design per worker is in memory), with the same results as in-line;
    `workers` set forks whatever the size."""
    from threadpoolctl import threadpool_limits

    from lbc_pipeline.lib.parallel import default_workers, fork_map

    check_single_wave(sample, wave)
    specs = [spec for specification in SPECIFICATIONS for spec in model_specs(specification)]
    if workers is None:
        workers = default_workers() if sample.height >= FORK_FITS_MIN_ROWS else 1
    if workers <= 1:
        return [fit_model(sample, spec) for spec in specs]
    clusters = cluster_codes(sample)
    columns = design_columns(sample, specs)

    def numbers_of(spec: ModelSpec) -> ModelNumbers:
        return fit_numbers(*design_from_columns(columns.__getitem__, sample.height, spec), clusters, spec)

    with threadpool_limits(limits=1, user_api="blas"):
        numbers = fork_map(numbers_of, specs, workers)
    return [fitted_model(sample, spec, n) for spec, n in zip(specs, numbers)]


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
        .select(list(contracts.dtypes("marts.model_coefficients")))
    )
    return coefficients, contracts.frame("marts.model_fit", fits)


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
