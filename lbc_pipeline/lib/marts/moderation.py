"""What the Table 4 interactions mean: simple slopes and Johnson-Neyman regions.

A Table 4 model regresses depression on the migration dummies D_g, the controls, the
support measure M (as it enters the model: raw, or centred at c) and D_g x M. The effect
of being in migration group g (against `none`) at a raw moderator value v is

    effect_g(v) = b_g + b_{g:M} (v - c)          (c = 0 when M enters raw)

with variance a' V a for a = (1 at g, v - c at g:M) (the delta method; exact here, the
effect being linear in the coefficients). The moderator's slope within group g is
b_M + b_{g:M} (b_M for `none`). These are invariant to how M is coded, so one
specification (`as_published`) is enough.

Tables:
- `marts.simple_slopes`: one row per wave x model x migration group x quantity x point x
  SE type (nonrobust, HC3).
- `marts.johnson_neyman`: one row per wave x model x group x SE type x region of the
  observed moderator range, the regions cut where |effect_g(v)| / SE = t_crit(0.975, df).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandera.polars as pa
import polars as pl
from scipy import stats

from lbc_pipeline.lib.contracts import WAVE, register
from lbc_pipeline.lib.marts.blas import single_blas_thread
from lbc_pipeline.lib.marts.models import (
    CONFIDENCE_LEVEL,
    CONST,
    ModelSpec,
    design_matrix,
    interaction_term,
    model_specs,
)

SPECIFICATION = "as_published"
MODERATION_TABLE = 4
SLOPE_SE_TYPES = ("nonrobust", "HC3")
GROUP_TERMS = {"mother": "mother_away", "father": "father_away", "both": "both_away"}
GROUPS = ("none", *GROUP_TERMS)
ALPHA = 1 - CONFIDENCE_LEVEL
# A moderator with integer values and at most this many distinct ones is discrete: its
# simple slopes are also given at each observed value.
DISCRETE_MAX_VALUES = 10


@dataclass(frozen=True)
class ModerationFit:
    """One Table 4 model fitted for moderation: coefficients and covariances by term name."""

    spec: ModelSpec
    beta: dict[str, float]
    covariances: dict[str, np.ndarray]  # se_type -> k x k, rows/columns in spec.terms order
    df_resid: int
    centre: float  # subtracted from the raw moderator (0 when it enters raw)
    moderator_raw: np.ndarray  # each child's raw moderator value
    x_means: np.ndarray  # column means of the design matrix
    groups: np.ndarray  # each child's migration group

    def index(self, term: str) -> int:
        return self.spec.terms.index(term)


def ols_covariances(y: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """OLS by least squares: coefficients, nonrobust and HC3 covariances, residual df."""
    n, k = X.shape
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    resid = y - X @ beta
    xtx_inv = np.linalg.inv(X.T @ X)
    sigma2 = resid @ resid / (n - k)
    leverage = np.einsum("ij,jk,ik->i", X, xtx_inv, X)
    scaled = X * (resid / (1 - leverage))[:, None]
    hc3 = xtx_inv @ (scaled.T @ scaled) @ xtx_inv
    return beta, {"nonrobust": sigma2 * xtx_inv, "HC3": hc3}, n - k


def fit_for_moderation(sample: pl.DataFrame, spec: ModelSpec) -> ModerationFit:
    """Fit one Table 4 model by least squares, keeping what simple slopes need."""
    y, X = design_matrix(sample, spec)
    beta, covariances, df = ols_covariances(y, X)
    raw = sample[spec.moderator].cast(pl.Float64).to_numpy()
    centre = float(raw.mean()) if spec.centre_moderator else 0.0
    return ModerationFit(spec, dict(zip(spec.terms, beta.tolist())), covariances, df, centre, raw, X.mean(axis=0),
                         sample["migration_group"].to_numpy())


def group_effect_gradient(fit: ModerationFit, group: str, value: float) -> np.ndarray:
    """The gradient a of effect_g(value) = a' beta (1 at g, value - c at g:M)."""
    term = GROUP_TERMS[group]
    a = np.zeros(len(fit.spec.terms))
    a[fit.index(term)] = 1.0
    a[fit.index(interaction_term(term, fit.spec.moderator))] = value - fit.centre
    return a


def group_effect_gradients(fit: ModerationFit, group: str, values: np.ndarray) -> np.ndarray:
    """`group_effect_gradient` at each of `values` (rows x terms), without a Python loop."""
    term = GROUP_TERMS[group]
    A = np.zeros((len(values), len(fit.spec.terms)))
    A[:, fit.index(term)] = 1.0
    A[:, fit.index(interaction_term(term, fit.spec.moderator))] = np.asarray(values, dtype=float) - fit.centre
    return A


def slope_gradient(fit: ModerationFit, group: str) -> np.ndarray:
    """The gradient of the moderator's slope within a group (b_M, plus b_{g:M} if g != none)."""
    a = np.zeros(len(fit.spec.terms))
    a[fit.index(fit.spec.moderator)] = 1.0
    if group != "none":
        a[fit.index(interaction_term(GROUP_TERMS[group], fit.spec.moderator))] = 1.0
    return a


def linear_inference(fit: ModerationFit, a: np.ndarray, se_type: str) -> dict[str, float]:
    """Estimate a' beta with SE sqrt(a' V a), t, two-sided p and 95% CI (t with residual df)."""
    beta = np.array([fit.beta[t] for t in fit.spec.terms])
    estimate = float(a @ beta)
    se = float(np.sqrt(a @ fit.covariances[se_type] @ a))
    t = estimate / se
    crit = stats.t.ppf(1 - ALPHA / 2, fit.df_resid)
    return {
        "estimate": estimate, "std_error": se, "t_value": t,
        "p_value": float(2 * stats.t.sf(abs(t), fit.df_resid)),
        "ci_low": estimate - crit * se, "ci_high": estimate + crit * se,
    }


def is_discrete(values: np.ndarray) -> bool:
    """Integer values with at most DISCRETE_MAX_VALUES distinct ones."""
    return bool(np.all(values == np.round(values)) and np.unique(values).size <= DISCRETE_MAX_VALUES)


def evaluation_points(values: np.ndarray) -> list[tuple[str, float]]:
    """(label, raw value): mean - 1 SD, mean, mean + 1 SD (SD with ddof=1), then each observed
    value of a discrete moderator ('value')."""
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    points = [("mean_minus_1sd", mean - sd), ("mean", mean), ("mean_plus_1sd", mean + sd)]
    if is_discrete(values):
        points += [("value", float(v)) for v in np.unique(values)]
    return points


def fit_table4(sample: pl.DataFrame) -> list[ModerationFit]:
    """Fit the six Table 4 models (as_published) for moderation."""
    return [fit_for_moderation(sample, s) for s in model_specs(SPECIFICATION) if s.table_no == MODERATION_TABLE]


SIMPLE_SLOPES_SCHEMA = {
    "wave": pl.String, "model_no": pl.Int64, "moderator": pl.String, "migration_group": pl.String,
    "quantity": pl.String, "point": pl.String, "moderator_value": pl.Float64, "se_type": pl.String,
    "estimate": pl.Float64, "std_error": pl.Float64, "t_value": pl.Float64, "p_value": pl.Float64,
    "ci_low": pl.Float64, "ci_high": pl.Float64, "df": pl.Int64,
}


def simple_slopes(sample: pl.DataFrame, wave: str, fits: list[ModerationFit] | None = None) -> pl.DataFrame:
    """Compute `marts.simple_slopes` for the six Table 4 models.

    quantity `group_effect`: the group's effect on depression against `none` at each
    evaluation point (moderator_value on the raw scale); quantity `moderator_slope`: the
    moderator's slope within the group (point `all`, moderator_value null), also for `none`.
    """
    rows = []
    for fit in fits or fit_table4(sample):
        spec = fit.spec
        base = {"wave": wave, "model_no": spec.model_no, "moderator": spec.moderator, "df": fit.df_resid}
        for se_type in SLOPE_SE_TYPES:
            for group in GROUPS:
                if group != "none":
                    for point, value in evaluation_points(fit.moderator_raw):
                        rows.append({**base, "migration_group": group, "quantity": "group_effect", "point": point,
                                     "moderator_value": value, "se_type": se_type,
                                     **linear_inference(fit, group_effect_gradient(fit, group, value), se_type)})
                rows.append({**base, "migration_group": group, "quantity": "moderator_slope", "point": "all",
                             "moderator_value": None, "se_type": se_type,
                             **linear_inference(fit, slope_gradient(fit, group), se_type)})
    frame = pl.DataFrame(rows, schema=SIMPLE_SLOPES_SCHEMA)
    return SIMPLE_SLOPES_CONTRACT.validate(frame)


def jn_bounds(fit: ModerationFit, group: str, se_type: str) -> list[float]:
    """Raw moderator values where |effect_g| / SE equals t_crit, sorted (0, 1 or 2 of them).

    Solves (b_gM^2 - t^2 V22) u^2 + 2 (b_g b_gM - t^2 V12) u + (b_g^2 - t^2 V11) = 0
    for u = v - c and returns the real roots.
    """
    i, j = fit.index(GROUP_TERMS[group]), fit.index(interaction_term(GROUP_TERMS[group], fit.spec.moderator))
    V = fit.covariances[se_type]
    b1, b2 = fit.beta[GROUP_TERMS[group]], fit.beta[interaction_term(GROUP_TERMS[group], fit.spec.moderator)]
    t2 = stats.t.ppf(1 - ALPHA / 2, fit.df_resid) ** 2
    qa, qb, qc = b2**2 - t2 * V[j, j], 2 * (b1 * b2 - t2 * V[i, j]), b1**2 - t2 * V[i, i]
    if abs(qa) < 1e-14:
        roots = [] if abs(qb) < 1e-14 else [-qc / qb]
    else:
        disc = qb**2 - 4 * qa * qc
        if disc < 0:
            roots = []
        else:
            s = np.sqrt(disc)
            roots = [(-qb - s) / (2 * qa), (-qb + s) / (2 * qa)]
    return sorted(float(u + fit.centre) for u in roots)


JOHNSON_NEYMAN_SCHEMA = {
    "wave": pl.String, "model_no": pl.Int64, "moderator": pl.String, "migration_group": pl.String,
    "se_type": pl.String, "region_order": pl.Int64, "low": pl.Float64, "high": pl.Float64,
    "significant": pl.Boolean, "effect_sign": pl.String, "n_children": pl.Int64, "share_children": pl.Float64,
    "verdict": pl.String, "bounds": pl.String, "observed_min": pl.Float64, "observed_max": pl.Float64,
}


def significant_at(fit: ModerationFit, group: str, se_type: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether the group's effect is significant at each raw value, and the effect itself."""
    V = fit.covariances[se_type]
    beta = np.array([fit.beta[t] for t in fit.spec.terms])
    crit = stats.t.ppf(1 - ALPHA / 2, fit.df_resid)
    A = group_effect_gradients(fit, group, values)
    effect = A @ beta
    se = np.sqrt(np.einsum("ij,jk,ik->i", A, V, A))
    return np.abs(effect) >= crit * se, effect


def johnson_neyman(sample: pl.DataFrame, wave: str, fits: list[ModerationFit] | None = None) -> pl.DataFrame:
    """Compute `marts.johnson_neyman`: where each group's effect is significant at 0.05.

    The observed range [min, max] of the raw moderator is cut at the JN bounds inside it;
    each piece is a region (significant or not, sign of the effect at its midpoint) with the
    children whose value lies in it (a child on a bound counts where its own value is
    significant or not). verdict: `everywhere`, `none`, or `partly` over the observed range.
    """
    rows = []
    for fit in fits or fit_table4(sample):
        spec = fit.spec
        lo, hi = float(fit.moderator_raw.min()), float(fit.moderator_raw.max())
        for se_type in SLOPE_SE_TYPES:
            for group in GROUP_TERMS:
                bounds = jn_bounds(fit, group, se_type)
                inside = [b for b in bounds if lo < b < hi]
                edges = [lo, *inside, hi]
                child_sig, _ = significant_at(fit, group, se_type, fit.moderator_raw)
                mids = np.array([(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])])
                mid_sig, mid_effect = significant_at(fit, group, se_type, mids)
                verdict = "everywhere" if mid_sig.all() else "none" if not mid_sig.any() else "partly"
                for r, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
                    within = (fit.moderator_raw >= a) & (fit.moderator_raw <= b)
                    if r > 0:  # a child on the lower bound belongs to the region matching its significance
                        within &= (fit.moderator_raw > a) | (child_sig == mid_sig[r])
                    if r < len(mids) - 1:
                        within &= (fit.moderator_raw < b) | (child_sig == mid_sig[r])
                    rows.append({
                        "wave": wave, "model_no": spec.model_no, "moderator": spec.moderator, "migration_group": group,
                        "se_type": se_type, "region_order": r + 1, "low": a, "high": b,
                        "significant": bool(mid_sig[r]), "effect_sign": "positive" if mid_effect[r] > 0 else "negative",
                        "n_children": int(within.sum()), "share_children": float(within.mean()),
                        "verdict": verdict, "bounds": ", ".join(f"{x:.4f}" for x in bounds) or "none",
                        "observed_min": lo, "observed_max": hi,
                    })
    frame = pl.DataFrame(rows, schema=JOHNSON_NEYMAN_SCHEMA)
    return JOHNSON_NEYMAN_CONTRACT.validate(frame)


@single_blas_thread
def explain_moderation(sample: pl.DataFrame, wave: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`marts.simple_slopes` and `marts.johnson_neyman` of one wave (the models fitted once)."""
    fits = fit_table4(sample)
    return simple_slopes(sample, wave, fits), johnson_neyman(sample, wave, fits)


def prediction_lines(fit: ModerationFit, se_type: str = "nonrobust", points: int = 41) -> pl.DataFrame:
    """Predicted depression against the raw moderator for each group over the range of the
    moderator observed in that group (no line where the group has no children).

    Controls are held at their sample means; one row per group x grid point with the
    prediction and its 95% CI (delta method). For the interaction plots.
    """
    spec = fit.spec
    beta = np.array([fit.beta[t] for t in spec.terms])
    V = fit.covariances[se_type]
    crit = stats.t.ppf(1 - ALPHA / 2, fit.df_resid)
    rows = []
    for group in GROUPS:
        observed = fit.moderator_raw[fit.groups == group]
        if observed.size == 0:
            continue
        for v in np.linspace(observed.min(), observed.max(), points):
            x = fit.x_means.copy()
            u = v - fit.centre
            for g, term in GROUP_TERMS.items():
                x[fit.index(term)] = 1.0 if g == group else 0.0
                x[fit.index(interaction_term(term, spec.moderator))] = u if g == group else 0.0
            x[fit.index(spec.moderator)] = u
            x[fit.index(CONST)] = 1.0
            pred, se = float(x @ beta), float(np.sqrt(x @ V @ x))
            rows.append({"model_no": spec.model_no, "moderator": spec.moderator, "migration_group": group,
                         "moderator_value": float(v), "predicted": pred,
                         "ci_low": pred - crit * se, "ci_high": pred + crit * se})
    return pl.DataFrame(rows)


_COMMON = {
    "wave": WAVE,
    "model_no": pa.Column(pl.Int64, pa.Check.isin(list(range(1, 7))), description="Table 4 model number (1-6)"),
    "moderator": pa.Column(pl.String, description="The support measure that moderates the migration effects"),
    "se_type": pa.Column(pl.String, pa.Check.isin(list(SLOPE_SE_TYPES)), description="nonrobust (the paper's) or HC3"),
}
SIMPLE_SLOPES_CONTRACT = register("marts.simple_slopes", pa.DataFrameSchema({
    **_COMMON,
    "migration_group": pa.Column(pl.String, pa.Check.isin(list(GROUPS)), description="Migration group: mother, father, both (effects against none); none has only the moderator slope"),
    "quantity": pa.Column(pl.String, pa.Check.isin(["group_effect", "moderator_slope"]),
                          description="group_effect: the group's difference in depression from children with no parent away at moderator_value; moderator_slope: change in depression per unit of the moderator within the group"),
    "point": pa.Column(pl.String, pa.Check.isin(["mean_minus_1sd", "mean", "mean_plus_1sd", "value", "all"]),
                       description="Where the effect is evaluated: mean - 1 SD, mean, mean + 1 SD of the moderator in the analysis sample, an observed value of a discrete moderator, or all (slopes)"),
    "moderator_value": pa.Column(pl.Float64, nullable=True, description="The moderator's value on its raw scale (null for slopes)"),
    "estimate": pa.Column(pl.Float64, description="Linear combination of the Table 4 coefficients (as_published coding; invariant to centring)"),
    "std_error": pa.Column(pl.Float64, pa.Check.gt(0), description="sqrt(a' V a): delta method with the model's covariance of the given se_type"),
    "t_value": pa.Column(pl.Float64, description="estimate / std_error"),
    "p_value": pa.Column(pl.Float64, pa.Check.in_range(0, 1), description="Two-sided p-value, t distribution with df"),
    "ci_low": pa.Column(pl.Float64, description="Lower bound of the 95% confidence interval"),
    "ci_high": pa.Column(pl.Float64, description="Upper bound of the 95% confidence interval"),
    "df": pa.Column(pl.Int64, description="Residual degrees of freedom of the model"),
}, strict=True, unique=["wave", "model_no", "migration_group", "quantity", "point", "moderator_value", "se_type"],
    description="One row per wave x Table 4 model x migration group x quantity x evaluation point x SE type: simple slopes of the interactions"))

JOHNSON_NEYMAN_CONTRACT = register("marts.johnson_neyman", pa.DataFrameSchema({
    **_COMMON,
    "migration_group": pa.Column(pl.String, pa.Check.isin(list(GROUP_TERMS)), description="Migration group whose effect (against none) is tested"),
    "region_order": pa.Column(pl.Int64, pa.Check.ge(1), description="Position of the region from the lowest moderator value"),
    "low": pa.Column(pl.Float64, description="Lower end of the region (raw moderator scale)"),
    "high": pa.Column(pl.Float64, description="Upper end of the region"),
    "significant": pa.Column(pl.Boolean, description="The group's effect is significant at 0.05 throughout the region"),
    "effect_sign": pa.Column(pl.String, pa.Check.isin(["positive", "negative"]), description="Sign of the group's effect in the region (at its midpoint)"),
    "n_children": pa.Column(pl.Int64, pa.Check.ge(0), description="Children of the analysis sample whose moderator value lies in the region"),
    "share_children": pa.Column(pl.Float64, pa.Check.in_range(0, 1), description="n_children / children in the model"),
    "verdict": pa.Column(pl.String, pa.Check.isin(["everywhere", "none", "partly"]), description="Over the observed range the effect is significant everywhere, nowhere, or partly"),
    "bounds": pa.Column(pl.String, description="Johnson-Neyman bounds (raw scale, inside or outside the observed range), comma-separated, or 'none'"),
    "observed_min": pa.Column(pl.Float64, description="Smallest observed moderator value"),
    "observed_max": pa.Column(pl.Float64, description="Largest observed moderator value"),
}, strict=True, unique=["wave", "model_no", "migration_group", "se_type", "region_order"],
    description="One row per wave x Table 4 model x migration group x SE type x Johnson-Neyman region of the observed moderator range"))
