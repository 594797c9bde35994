"""Calibrate the SYNTHETIC analysis-level state of the reference wave 2019.

The real data of Wang (2023) are not public. This module builds, deterministically from a
seed, analysis-coded data for the 605 analysed children (plus the teacher items of 300
excluded valid questionnaires) such that the paper's analysis reproduces the published
Tables 1-4 and Cronbach's alpha. The raw-format generator turns this state into
questionnaire files.

Procedure:

1. Per migration group, exact multisets: every categorical variable of the 601 children
   Table 1 describes gets exactly Table 1's implied counts; depression totals and ages get
   integer sums and sums of squares that reproduce Table 1's means and SDs to the printed
   decimals; the four extra children (inconsistencies.md item 1) score depression 25 (no
   parent away) and 6, 6, 10 (father away). 905 teacher-item triples (605 analysed + 300
   excluded) come from an ordinal one-factor model; their factor weights are fixed from then
   on, because every later move only permutes triples among the 905 rows.
2. Per group, a Gaussian copula with a hand-set correlation structure (group-specific
   depression slopes taken from Table 4) assigns those multisets to children by rank.
3. Annealed swap search: batches of random candidate moves (swap one variable's values
   between two children of the same group; swap age and grade, or both parents' education,
   jointly; swap teacher triples within a group or with the excluded pool; re-draw a
   covariate of one of the four extra children) are scored by a loss on all fourteen models
   (coefficients in published SEs, SE ratios, R-squared, star intervals), Table 1
   teacher's-attitude means and SDs, and plausibility of correlations. The best improving
   candidate of a batch is applied, else a worsening one with the Metropolis probability of
   a falling temperature; a greedy polish follows. The models are computed from a 36 x 36
   Gram matrix updated by rank-one changes, all candidates of a batch at once.
4. Each depression total is split into six items 1-5 so that Cronbach's alpha is 0.9131
   (the split changes no model).

Run: `python -m lbc_pipeline.synthetic.calibrate --seed 2019 --out
lbc_pipeline/synthetic/state`.
"""

from __future__ import annotations

import os

# The hot loop works on batches of tiny matrices, where BLAS threads only add overhead and
# contention; this must be set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field, fields  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from lbc_pipeline.synthetic import paper_stats as ps  # noqa: E402

# Columns of the value matrix V (one row per analysed child).
VARS = ("depression", *ps.CONTROLS, *ps.MEASURES)
Y, GIRL, AGE, GRADE, SIB, KOR, MEDU, FEDU = range(8)
BELONG, ATT, HT_SAT, FRIENDS, CLOSE, PEER = range(8, 14)
MEASURE_COLS = (BELONG, ATT, HT_SAT, FRIENDS, CLOSE, PEER)
CATEGORICAL_COLS = (GIRL, SIB, KOR, MEDU, FEDU, BELONG, HT_SAT, FRIENDS, CLOSE, PEER)
N_VARS = len(VARS)

# Columns of the feature row behind the Gram matrix: const, 3 dummies, 7 controls,
# 6 raw measures, 18 raw interactions (dummy j x measure k at 17 + 6 j + k), depression.
F_CONST, F_CONTROL0, F_MEASURE0, F_INTER0, F_Y = 0, 4, 11, 17, 35
# Per support measure k: the measure's feature, then its interactions with the three dummies.
MEASURE_BLOCKS = np.array([[F_MEASURE0 + k] + [F_INTER0 + 6 * j + k for j in range(3)] for k in range(6)])

GROUP_SIZES_601 = {"none": 367, "mother": 29, "father": 120, "both": 85}
EXTRA_DEPRESSION = {"none": (25,), "mother": (), "father": (6, 6, 10), "both": ()}
N_EXCLUDED_TEACHER = 300
DEPRESSION_ITEM_RANGE = (1, 5)
ALPHA_TOLERANCE = 1e-5
AGE_RANGE = (9, 15)
AGE_OFFSETS = (4, 5, 6, 7)  # age - grade; 5 and 6 are typical

# Value ranges of the categorical variables (for the extra children's re-draws).
VALUE_RANGES = {
    GIRL: (0, 1),
    SIB: (0, 2),
    KOR: (0, 1),
    MEDU: (1, 3),
    FEDU: (1, 3),
    BELONG: (1, 5),
    HT_SAT: (1, 5),
    FRIENDS: (1, 4),
    CLOSE: (1, 5),
    PEER: (1, 5),
}


@dataclass(frozen=True)
class TeacherItemModel:
    """Ordinal one-factor model that draws the 905 teacher-item triples.

    `loadings` of (ask_life, talk_guardian, praise) on a standard-normal latent attitude;
    `marginals` the category probabilities of codes 1-4 of each item; `group_shift` the
    latent mean per migration group (analysed rows) and `excluded_shift` for excluded rows.
    """

    loadings: tuple[float, float, float] = (0.75, 0.65, 0.70)
    marginals: tuple[tuple[float, ...], ...] = (
        (0.22, 0.38, 0.27, 0.13),
        (0.30, 0.42, 0.20, 0.08),
        (0.18, 0.37, 0.30, 0.15),
    )
    group_shift: tuple[float, float, float, float] = (0.09, -0.21, -0.18, -0.11)
    excluded_shift: float = 0.02


@dataclass(frozen=True)
class CopulaStructure:
    """Latent correlations of the Gaussian copula that orders each group's values.

    Depression's latent correlation with a support measure in group g is the Table 4 slope
    of that group (main effect + interaction) times sd(measure) / sd(depression), scaled by
    `slope_to_corr` and clipped to `y_measure_clip`.
    """

    measure_corr: float = 0.40
    edu_corr: float = 0.75
    y_girl: float = 0.10
    y_grade: float = 0.15
    slope_to_corr: float = 1.0
    y_measure_clip: tuple[float, float] = (-0.60, 0.10)


@dataclass(frozen=True)
class LossScales:
    """Scales of the loss terms: a deviation of one scale unit costs 1.

    `coef_se`: coefficient deviation in published SEs; `se_ratio`: relative SE deviation;
    `r2`: R-squared deviation (Table 4 Model 1 is only hinged at `r2_4_1_hinge`);
    `t_margin`: how far inside its star interval each t must stay; `table1_att`: Table 1
    teacher's-attitude mean/SD deviation beyond `table1_att_free`; `corr`: correlation
    outside its plausible range; `control_hinge`: unpublished control coefficients of
    Tables 3-4 may differ from Table 2 Model 2's by this many SEs without cost.
    Coefficient and SE deviations beyond `worst_hinge` scale units cost `worst_weight` times
    the square of the excess on top, which pulls the worst terms in.
    """

    coef_se: float = 0.03
    se_ratio: float = 0.015
    r2: float = 0.001
    r2_4_1_hinge: float = 0.0075
    t_margin: float = 0.02
    table1_att: float = 0.0001
    table1_att_free: float = 0.0003
    corr: float = 0.01
    control_hinge: float = 1.5
    control_scale: float = 0.1
    worst_hinge: float = 1.2
    worst_weight: float = 30.0


@dataclass(frozen=True)
class CorrelationBounds:
    """Plausible ranges of correlations on the 605 (others among covariates: |r| <= other)."""

    age_grade: tuple[float, float] = (0.76, 0.86)
    edu: tuple[float, float] = (0.65, 0.75)
    measures: tuple[float, float] = (0.28, 0.45)
    other: float = 0.35


@dataclass(frozen=True)
class SearchSettings:
    """Swap search: candidates per batch, move-kind probabilities, annealing schedule.

    `anneal_batches` batches at a temperature falling geometrically from `t_start` to `t_end`
    (in loss units), then `polish_batches` greedy batches; the best state seen is kept.
    """

    batch_size: int = 128
    anneal_batches: int = 20_000
    polish_batches: int = 3_000
    t_start: float = 1.0
    t_end: float = 0.01
    refresh_every: int = 500
    report_every: int = 2_000
    move_weights: dict[str, float] = field(
        default_factory=lambda: {
            "swap_y": 0.22,
            "swap_var": 0.40,
            "swap_age": 0.04,
            "swap_grade": 0.03,
            "swap_age_grade": 0.04,
            "swap_edu": 0.04,
            "swap_att": 0.10,
            "exchange_att": 0.08,
            "set_extra": 0.05,
        }
    )
    group_weight_power: float = 0.5


@dataclass(frozen=True)
class CalibrationSettings:
    """Everything that determines the calibrated state, besides the published numbers."""

    seed: int = 2019
    teacher: TeacherItemModel = TeacherItemModel()
    copula: CopulaStructure = CopulaStructure()
    loss: LossScales = LossScales()
    bounds: CorrelationBounds = CorrelationBounds()
    search: SearchSettings = SearchSettings()
    alpha_target: float = 0.9131
    depression_item_weights: tuple[float, ...] = (0.19, 0.13, 0.20, 0.18, 0.13, 0.17)


@dataclass
class State:
    """The mutable calibration state.

    `V` (605 x 14): the VARS of each analysed child (teacher_attitude = the score of its
    triple); `group` (605,) 0-3 in GROUPS order; `in_table1` (605,) bool; `triple_of` (605,)
    index into `triples` (905 x 3) of each child's teacher items; `pool` (300,) the indices
    of the excluded rows' triples; `att_of_triple` (905,) the standardised factor score.
    """

    V: np.ndarray
    group: np.ndarray
    in_table1: np.ndarray
    triple_of: np.ndarray
    pool: np.ndarray
    triples: np.ndarray
    att_of_triple: np.ndarray

    @property
    def dummies(self) -> np.ndarray:
        """Migration dummies (605 x 3): mother, father, both away."""
        return (self.group[:, None] == np.arange(1, 4)[None, :]).astype(float)


# --------------------------------------------------------------------------- step 1


def find_integer_moments(n: int, mean: float, sd: float) -> tuple[int, int]:
    """Return an integer (sum, sum of squares) whose mean and SD (ddof=1) print as given.

    Among the candidates the one with the SD closest to the printed value is chosen; sum
    and sum of squares of integers have the same parity.
    """
    best: tuple[float, int, int] | None = None
    for total in range(math.floor(mean * n) - 2, math.ceil(mean * n) + 3):
        if round(total / n, 3) != round(mean, 3):
            continue
        centre = sd**2 * (n - 1) + total**2 / n
        for ss in range(math.floor(centre) - 5, math.ceil(centre) + 6):
            if ss % 2 != total % 2:
                continue
            got = math.sqrt((ss - total**2 / n) / (n - 1))
            if round(got, 3) == round(sd, 3) and (best is None or abs(got - sd) < best[0]):
                best = (abs(got - sd), total, ss)
    if best is None:
        raise ValueError(f"no integer data with n={n}, mean={mean}, sd={sd}")
    return best[1], best[2]


def adjust_to_moments(
    values: np.ndarray, allowed: list[np.ndarray], total: int, ss: int, rng: np.random.Generator
) -> np.ndarray:
    """Move single values by +-1 within their allowed sets until sum and sum of squares hit.

    `allowed[i]` lists the admissible values of element i. Random single and paired moves are
    accepted when they do not increase 1000 |sum error| + |sum-of-squares error|.
    """
    x = values.astype(np.int64).copy()
    admissible = [set(a.tolist()) for a in allowed]

    def error(s: int, q: int) -> int:
        return 1000 * abs(s - total) + abs(q - ss)

    s, q = int(x.sum()), int((x**2).sum())
    for _ in range(2_000_000):
        if s == total and q == ss:
            return x
        i, j = rng.integers(len(x), size=2)
        di = int(rng.choice((-1, 1)))
        dj = 0 if s != total else -di
        if i == j and dj != 0:
            continue
        ni, nj = x[i] + di, x[j] + dj
        if ni not in admissible[i] or (dj != 0 and nj not in admissible[j]):
            continue
        s2 = s + di + dj
        q2 = q + ni**2 - x[i] ** 2 + (nj**2 - x[j] ** 2 if dj != 0 else 0)
        if error(s2, q2) <= error(s, q):
            x[i] = ni
            if dj != 0:
                x[j] = nj
            s, q = s2, q2
    raise RuntimeError("moment adjustment did not converge")


def draw_depression_totals(n: int, mean: float, sd: float, rng: np.random.Generator) -> np.ndarray:
    """Draw n depression totals (6-30) whose mean and SD print as Table 1's.

    Start: a right-skewed gamma shifted to the scale minimum 6; then exact moments.
    """
    total, ss = find_integer_moments(n, mean, sd)
    excess_mean, var = mean - 6.0, sd**2
    shape = excess_mean**2 / var
    start = np.clip(np.rint(6.0 + rng.gamma(shape, var / excess_mean, size=n)), 6, 30)
    allowed = [np.arange(6, 31)] * n
    return adjust_to_moments(start, allowed, total, ss, rng)


def draw_ages(grades: np.ndarray, mean: float, sd: float, rng: np.random.Generator) -> np.ndarray:
    """Draw completed ages for children of the given grades, moments as in Table 1.

    Age = grade + offset, offset 5 or 6 at the start (the typical ages at the survey), 4 or 7
    where the exact mean and SD need it; always within 9-15.
    """
    total, ss = find_integer_moments(len(grades), mean, sd)
    p6 = np.clip(mean - grades.mean() - 5.0, 0.0, 1.0)
    start = grades + 5 + (rng.random(len(grades)) < p6)
    allowed = []
    for g in grades:
        ages = np.array([g + o for o in AGE_OFFSETS])
        allowed.append(ages[(ages >= AGE_RANGE[0]) & (ages <= AGE_RANGE[1])])
    start = np.clip(start, [a.min() for a in allowed], [a.max() for a in allowed])
    return adjust_to_moments(start, allowed, total, ss, rng)


def expand_counts(codes: list[int], counts: list[int]) -> np.ndarray:
    """Return the sorted multiset with counts[k] copies of codes[k]."""
    return np.repeat(np.asarray(codes), np.asarray(counts))


def draw_teacher_triples(
    group_of_row: np.ndarray, model: TeacherItemModel, rng: np.random.Generator
) -> np.ndarray:
    """Draw one teacher-item triple (codes 1-4) per row from the ordinal one-factor model.

    `group_of_row`: 0-3 for analysed rows, -1 for excluded rows.
    """
    shift = np.where(group_of_row >= 0, np.asarray(model.group_shift)[group_of_row], model.excluded_shift)
    latent = shift + rng.standard_normal(len(group_of_row))
    triples = np.empty((len(group_of_row), 3), dtype=np.int64)
    for k, (loading, probs) in enumerate(zip(model.loadings, model.marginals)):
        item = loading * latent + math.sqrt(1 - loading**2) * rng.standard_normal(len(latent))
        cuts = stats.norm.ppf(np.cumsum(probs)[:-1])
        triples[:, k] = 1 + np.searchsorted(cuts, item)
    return triples


# --------------------------------------------------------------------------- step 2


def copula_correlation(group: str, published: dict, multiset: dict[int, np.ndarray], settings: CopulaStructure) -> np.ndarray:
    """Latent correlation (13 x 13) over VARS without age for one group (PSD-repaired).

    Order: depression, girl, grade, siblings, korean, mother_edu, father_edu, the six
    measures.
    """
    order = [v for v in range(N_VARS) if v != AGE]
    pos = {v: i for i, v in enumerate(order)}
    r = np.eye(len(order))

    def put(a: int, b: int, value: float) -> None:
        r[pos[a], pos[b]] = r[pos[b], pos[a]] = value

    put(Y, GIRL, settings.y_girl)
    put(Y, GRADE, settings.y_grade)
    put(MEDU, FEDU, settings.edu_corr)
    sd_y = published["table1"]["continuous"]["depression"][group]["sd"]
    g_index = ps.GROUPS.index(group)
    for k, col in enumerate(MEASURE_COLS):
        for other in MEASURE_COLS[k + 1 :]:
            put(col, other, settings.measure_corr)
        coefs = published["models"][f"4.{k + 1}"]["coefs"]
        measure = ps.MEASURES[k]
        slope = coefs[measure]["b"]
        if g_index > 0:
            slope += coefs[f"{ps.DUMMIES[g_index - 1]}:{measure}"]["b"]
        sd_m = 1.0 if col == ATT else float(np.std(multiset[col], ddof=1))
        corr = np.clip(settings.slope_to_corr * slope * sd_m / sd_y, *settings.y_measure_clip)
        put(Y, col, corr)
    eigval, eigvec = np.linalg.eigh(r)
    r = eigvec @ np.diag(np.clip(eigval, 0.05, None)) @ eigvec.T
    d = np.sqrt(np.diag(r))
    return r / np.outer(d, d)


def assign_by_rank(latent: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Give the k-th smallest latent value the k-th smallest of `values`."""
    out = np.empty_like(values)
    out[np.argsort(latent, kind="stable")] = np.sort(values, kind="stable")
    return out


def largest_remainder(n: int, pct: list[float]) -> np.ndarray:
    """Split n into integer counts proportional to pct (largest-remainder rounding)."""
    quota = n * np.asarray(pct, float) / 100.0
    counts = np.floor(quota).astype(np.int64)
    counts[np.argsort(-(quota - counts), kind="stable")[: n - counts.sum()]] += 1
    return counts


def draw_extra_rows(group: str, published: dict, rng: np.random.Generator) -> np.ndarray:
    """Value rows (n_extra x 14) of a group's extra children (those Table 1 leaves out).

    Depression is fixed (inconsistencies.md item 1); each categorical variable is spread over
    the extra children in proportion to Table 1's percentages, so that Table 1 on all 605
    children stays within a point of the printed percentages; age is grade + 5 or 6.
    """
    n_extra = len(EXTRA_DEPRESSION[group])
    extra = np.zeros((n_extra, N_VARS))
    extra[:, Y] = EXTRA_DEPRESSION[group]
    for col in CATEGORICAL_COLS + (GRADE,):
        block = published["table1"]["categorical"][VARS[col]]
        codes = [c["code"] for c in block["categories"]]
        extra[:, col] = rng.permutation(expand_counts(codes, largest_remainder(n_extra, block["pct"][group])))
    extra[:, AGE] = extra[:, GRADE] + 5 + rng.integers(2, size=n_extra)
    return extra


def build_initial_state(published: dict, settings: CalibrationSettings, rng: np.random.Generator) -> State:
    """Build the starting state: exact group multisets ordered by the Gaussian copula."""
    t1 = published["table1"]
    blocks = []
    for g_index, group in enumerate(ps.GROUPS):
        n = GROUP_SIZES_601[group]
        counts = t1["implied_counts"][group]
        assert counts["n"] == n
        multiset: dict[int, np.ndarray] = {}
        for col in CATEGORICAL_COLS + (GRADE,):
            block = t1["categorical"][VARS[col]]
            multiset[col] = expand_counts([c["code"] for c in block["categories"]], counts["counts"][VARS[col]])
        cont = t1["continuous"]
        multiset[Y] = draw_depression_totals(n, cont["depression"][group]["mean"], cont["depression"][group]["sd"], rng)
        blocks.append((g_index, group, n, multiset))

    group_of_row = np.concatenate(
        [np.full(n + len(EXTRA_DEPRESSION[group]), g) for g, group, n, _ in blocks]
        + [np.full(N_EXCLUDED_TEACHER, -1)]
    )
    triples = draw_teacher_triples(group_of_row, settings.teacher, rng)
    scoring = ps.fit_teacher_factor(triples)
    att_of_triple = ps.score_teacher_factor(triples, scoring)
    n_analysed = len(group_of_row) - N_EXCLUDED_TEACHER

    rows_v, rows_group, rows_in1, rows_triple = [], [], [], []
    start = 0
    for g_index, group, n, multiset in blocks:
        n_extra = len(EXTRA_DEPRESSION[group])
        triple_ids = np.arange(start, start + n + n_extra)
        start += n + n_extra
        multiset[ATT] = att_of_triple[triple_ids[:n]]
        corr = copula_correlation(group, published, multiset, settings.copula)
        latent = rng.multivariate_normal(np.zeros(len(corr)), corr, size=n, method="cholesky")
        V = np.zeros((n, N_VARS))
        order = [v for v in range(N_VARS) if v != AGE]
        ranked_triples = np.empty(n, dtype=np.int64)
        for li, col in enumerate(order):
            if col == ATT:
                ranked_triples[np.argsort(latent[:, li], kind="stable")] = triple_ids[:n][
                    np.argsort(multiset[ATT], kind="stable")
                ]
                V[:, ATT] = att_of_triple[ranked_triples]
            else:
                V[:, col] = assign_by_rank(latent[:, li], multiset[col])
        age = t1["continuous"]["age"][group]
        V[:, AGE] = draw_ages(V[:, GRADE].astype(np.int64), age["mean"], age["sd"], rng)
        extra = draw_extra_rows(group, published, rng)
        extra[:, ATT] = att_of_triple[triple_ids[n:]]
        rows_v += [V, extra]
        rows_group += [np.full(n + n_extra, g_index)]
        rows_in1 += [np.ones(n, bool), np.zeros(n_extra, bool)]
        rows_triple += [ranked_triples, triple_ids[n:]]
    return State(
        V=np.vstack(rows_v),
        group=np.concatenate(rows_group),
        in_table1=np.concatenate(rows_in1),
        triple_of=np.concatenate(rows_triple),
        pool=np.arange(n_analysed, len(group_of_row)),
        triples=triples,
        att_of_triple=att_of_triple,
    )


# --------------------------------------------------------------------------- step 3


def features(V: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Feature rows (..., 36) of value rows V (..., 14) with migration dummies D (..., 3)."""
    measures = V[..., BELONG : PEER + 1]
    inter = (D[..., :, None] * measures[..., None, :]).reshape(*V.shape[:-1], 18)
    ones = np.ones(V.shape[:-1] + (1,))
    return np.concatenate([ones, D, V[..., GIRL : FEDU + 1], measures, inter, V[..., :1]], axis=-1)


@dataclass(frozen=True)
class ModelFamily:
    """Models that share a design shape, in Gram-matrix coordinates, with published targets.

    Families: Table 2 Model 1; Table 2 Model 2; Table 3 Models 1-6; Table 4 Models 1-6. The
    design of model m is the base block (the first `n_base` features: const and dummies, plus
    the controls except in Table 2 Model 1) followed by the features `extra[m]` (raw measure,
    then its interactions). `centred[m]`: the measure is mean-centred, which changes only the
    constant and, with interactions, the dummies. Per model and published term: `b_pub`,
    `se_pub`, and the star interval `t_lo`-`t_hi` of |t|, at positions `pub_pos` of the
    design. `r2_free[m]`: R-squared deviation that costs nothing (Table 4 Model 1's printed
    R-squared contradicts its t-values). `control_pos`: positions of the controls.
    """

    model_ids: tuple[str, ...]
    n_base: int
    extra: np.ndarray
    centred: np.ndarray
    pub_pos: np.ndarray
    b_pub: np.ndarray
    se_pub: np.ndarray
    t_lo: np.ndarray
    t_hi: np.ndarray
    r2_pub: np.ndarray
    r2_free: np.ndarray
    control_pos: np.ndarray


def compile_families(published: dict, n: int, r2_free_4_1: float) -> list[ModelFamily]:
    """Translate the fourteen model specs and their published numbers into four families."""
    names = ["const", *ps.DUMMIES, *ps.CONTROLS, *ps.MEASURES] + [
        f"{d}:{m}" for d in ps.DUMMIES for m in ps.MEASURES
    ]
    by_family: dict[str, list[ps.ModelSpec]] = {}
    for spec in ps.MODEL_SPECS:
        by_family.setdefault(spec.model_id if spec.model_id[0] == "2" else spec.model_id[0], []).append(spec)
    families = []
    for specs in by_family.values():
        rows = []
        for spec in specs:
            terms = ["const", *ps.DUMMIES] + (list(ps.CONTROLS) if spec.model_id != "2.1" else [])
            n_base = len(terms)
            if spec.measure is not None:
                terms.append(spec.measure)
                if spec.interactions:
                    terms += [f"{d}:{spec.measure}" for d in ps.DUMMIES]
            crit = {mark: stats.t.ppf(1 - cut / 2, n - len(terms)) for cut, mark in ps.STAR_CUTS}
            bounds = {
                "": (0.0, crit["*"]),
                "*": (crit["*"], crit["**"]),
                "**": (crit["**"], crit["***"]),
                "***": (crit["***"], np.inf),
            }
            coefs = published["models"][spec.model_id]["coefs"]
            rows.append(
                {
                    "n_base": n_base,
                    "extra": [names.index(t) for t in terms[n_base:]],
                    "pub_pos": [terms.index(t) for t in coefs],
                    "b": [c["b"] for c in coefs.values()],
                    "se": [c["se"] for c in coefs.values()],
                    "lo": [bounds[c["stars"]][0] for c in coefs.values()],
                    "hi": [bounds[c["stars"]][1] for c in coefs.values()],
                    "controls": [terms.index(c) for c in ps.CONTROLS if c in terms],
                }
            )
        assert all(r["pub_pos"] == rows[0]["pub_pos"] for r in rows)
        extra = np.array([r["extra"] for r in rows], dtype=np.int64).reshape(len(rows), -1)
        assert extra.shape[1] == 0 or np.array_equal(extra, MEASURE_BLOCKS[:, : extra.shape[1]])
        families.append(
            ModelFamily(
                model_ids=tuple(s.model_id for s in specs),
                n_base=rows[0]["n_base"],
                extra=extra,
                centred=np.array([s.centred for s in specs]),
                pub_pos=np.array(rows[0]["pub_pos"]),
                b_pub=np.array([r["b"] for r in rows]),
                se_pub=np.array([r["se"] for r in rows]),
                t_lo=np.array([r["lo"] for r in rows]),
                t_hi=np.array([r["hi"] for r in rows]),
                r2_pub=np.array([published["models"][s.model_id]["r2"] for s in specs]),
                r2_free=np.array([r2_free_4_1 if s.model_id == "4.1" else 0.0 for s in specs]),
                control_pos=np.array(rows[0]["controls"], dtype=np.int64),
            )
        )
    return families


@dataclass
class FamilyFit:
    """Batched fit of a family: coefficients and SEs (B x m x k, centring applied), R2 (B x m)."""

    b: np.ndarray
    se: np.ndarray
    r2: np.ndarray


def invert_spd(A: np.ndarray) -> np.ndarray:
    """Invert a batch (B x k x k) of symmetric positive definite matrices by Gauss-Jordan.

    Vectorised over the batch (no pivoting is needed for SPD matrices); for small k this is
    much faster than a LAPACK call per matrix.
    """
    M = np.moveaxis(A, 0, -1).copy()
    for p in range(M.shape[0]):
        piv = 1.0 / M[p, p]
        row = M[p] * piv
        row[p] = piv
        col = M[:, p].copy()
        col[p] = 0.0
        M -= col[:, None, :] * row[None, :, :]
        M[:, p] = -col * piv
        M[p] = row
    return np.moveaxis(M, -1, 0)


class GramSolver:
    """Shared pieces of the OLS fits for a batch of Gram matrices G (B x 36 x 36) of n rows.

    Per base block size nb: the inverse A^-1 of the base block and the base coefficients;
    per support measure (the blocks of MEASURE_BLOCKS: measure, then its three
    interactions): A^-1 E, the Schur complement S = C - E' A^-1 E and the partialled
    cross-products r = c - E' A^-1 c with depression.
    """

    def __init__(self, G: np.ndarray, n: int):
        self.G = G
        self.n = n
        self._base: dict[int, tuple[np.ndarray, ...]] = {}
        self._schur: dict[int, tuple[np.ndarray, ...]] = {}

    def base(self, nb: int) -> tuple[np.ndarray, ...]:
        """(A^-1, cb, b0, diag A^-1) for the first nb features as base."""
        if nb not in self._base:
            a_inv = invert_spd(self.G[:, :nb, :nb])
            cb = self.G[:, :nb, F_Y]
            b0 = (a_inv @ cb[:, :, None])[:, :, 0]
            self._base[nb] = (a_inv, cb, b0, np.diagonal(a_inv, axis1=1, axis2=2))
        return self._base[nb]

    def schur(self, nb: int) -> tuple[np.ndarray, ...]:
        """(A^-1 E: B x 6 x nb x 4, S: B x 6 x 4 x 4, r: B x 6 x 4) of the measure blocks."""
        if nb not in self._schur:
            a_inv, _, b0, _ = self.base(nb)
            B, (m, q) = len(self.G), MEASURE_BLOCKS.shape
            E = self.G[:, :nb, MEASURE_BLOCKS.ravel()]
            AE = (a_inv @ E).reshape(B, nb, m, q).transpose(0, 2, 1, 3)
            Et = E.reshape(B, nb, m, q).transpose(0, 2, 3, 1)
            S = self.G[:, MEASURE_BLOCKS[:, :, None], MEASURE_BLOCKS[:, None, :]] - Et @ AE
            r = self.G[:, MEASURE_BLOCKS, F_Y] - (Et @ b0[:, None, :, None])[..., 0]
            self._schur[nb] = (AE, S, r)
        return self._schur[nb]

    def fit(self, family: ModelFamily) -> FamilyFit:
        """Fit a family of models.

        Each model's extra columns enter through their Schur complement. A centred measure is
        handled by re-expressing the raw-coded fit: b_const += mbar b_measure,
        b_dummy_j += mbar b_interaction_j (variances alike).
        """
        G, n, nb = self.G, self.n, family.n_base
        B = len(G)
        m, q = family.extra.shape
        _, cb, b0, d0 = self.base(nb)
        yty = G[:, F_Y, F_Y]
        sst = yty - G[:, F_CONST, F_Y] ** 2 / n
        b_base = np.broadcast_to(b0[:, None, :], (B, m, nb))
        diag_base = np.broadcast_to(d0[:, None, :], (B, m, nb))
        ssr = yty[:, None] - (b_base * cb[:, None, :]).sum(axis=2)
        if q == 0:
            sigma2 = ssr / (n - nb)
            return FamilyFit(b_base, np.sqrt(diag_base * sigma2[:, :, None]), 1.0 - ssr / sst[:, None])
        AE_all, S_all, r_all = self.schur(nb)
        AE, r = AE_all[..., :q], r_all[..., :q]
        s_inv = invert_spd(S_all[:, :, :q, :q].reshape(B * m, q, q)).reshape(B, m, q, q)
        b_ext = (s_inv @ r[..., None])[..., 0]  # B x m x q
        b_base = b_base - (AE @ b_ext[..., None])[..., 0]
        AES = AE @ s_inv
        diag_base = diag_base + (AES * AE).sum(axis=3)
        diag_ext = np.diagonal(s_inv, axis1=2, axis2=3)
        ssr = ssr - (b_ext * r).sum(axis=2)
        mbar = G[:, F_CONST, family.extra[:, 0]] / n * family.centred
        for j in range(q):  # const <- measure (j = 0), dummy j <- interaction j
            diag_base[:, :, j] += -2 * mbar * AES[:, :, j, j] + mbar**2 * diag_ext[:, :, j]
            b_base[:, :, j] += mbar * b_ext[:, :, j]
        b = np.concatenate([b_base, b_ext], axis=2)
        diag = np.concatenate([diag_base, diag_ext], axis=2)
        sigma2 = ssr / (n - nb - q)
        return FamilyFit(b, np.sqrt(diag * sigma2[:, :, None]), 1.0 - ssr / sst[:, None])


class Objective:
    """The loss of a batch of candidate states, from their Gram matrices and Table 1 sums."""

    def __init__(self, published: dict, n: int, settings: CalibrationSettings):
        self.n = n
        self.families = compile_families(published, n, settings.loss.r2_4_1_hinge)
        self.scales = settings.loss
        base = published["models"]["2.2"]["coefs"]
        self.control_b = np.array([base[c]["b"] for c in ps.CONTROLS])
        self.control_se = np.array([base[c]["se"] for c in ps.CONTROLS])
        cont = published["table1"]["continuous"]["teacher_attitude"]
        self.att_mean = np.array([cont[g]["mean"] for g in ps.GROUPS])
        self.att_sd = np.array([cont[g]["sd"] for g in ps.GROUPS])
        self.att_n = np.array([GROUP_SIZES_601[g] for g in ps.GROUPS])
        self.corr_pairs, self.corr_lo, self.corr_hi = self._correlation_bounds(settings.bounds)

    @staticmethod
    def _correlation_bounds(bounds: CorrelationBounds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Feature pairs among controls and measures with their plausible correlation range."""
        cols = list(range(F_CONTROL0, F_INTER0))
        age, grade = F_CONTROL0 + 1, F_CONTROL0 + 2
        medu, fedu = F_CONTROL0 + 5, F_CONTROL0 + 6
        pairs, lo, hi = [], [], []
        for i, a in enumerate(cols):
            for b in cols[i + 1 :]:
                if (a, b) == (age, grade):
                    rng_ = bounds.age_grade
                elif (a, b) == (medu, fedu):
                    rng_ = bounds.edu
                elif a >= F_MEASURE0:
                    rng_ = bounds.measures
                else:
                    rng_ = (-bounds.other, bounds.other)
                pairs.append((a, b))
                lo.append(rng_[0])
                hi.append(rng_[1])
        return np.array(pairs), np.array(lo), np.array(hi)

    def terms(self, G: np.ndarray, att_sums: np.ndarray) -> dict[str, np.ndarray]:
        """Normalised deviations per candidate (B x m arrays): coef, se, r2, star, control, table1, corr."""
        s = self.scales
        coef, se, r2, star, control = [], [], [], [], []
        solver = GramSolver(G, self.n)
        for family in self.families:
            fit = solver.fit(family)
            b = fit.b[:, :, family.pub_pos]
            sd = fit.se[:, :, family.pub_pos]
            coef.append(((b - family.b_pub) / family.se_pub / s.coef_se).reshape(len(G), -1))
            se.append(((sd / family.se_pub - 1.0) / s.se_ratio).reshape(len(G), -1))
            t = np.abs(b / sd)
            outside = np.maximum(np.maximum(family.t_lo + s.t_margin - t, t - family.t_hi + s.t_margin), 0)
            star.append((outside / s.t_margin).reshape(len(G), -1))
            dr2 = fit.r2 - family.r2_pub
            r2.append(np.sign(dr2) * np.maximum(np.abs(dr2) - family.r2_free, 0) / s.r2)
            if family.extra.shape[1]:
                dev = np.abs(fit.b[:, :, family.control_pos] - self.control_b) / self.control_se
                control.append((np.maximum(dev - s.control_hinge, 0) / s.control_scale).reshape(len(G), -1))
        mean = att_sums[:, :, 0] / self.att_n
        sd = np.sqrt((att_sums[:, :, 1] - self.att_n * mean**2) / (self.att_n - 1))
        dev = np.concatenate([mean - self.att_mean, sd - self.att_sd], axis=1)
        table1 = np.maximum(np.abs(dev) - s.table1_att_free, 0) / s.table1_att
        a, b = self.corr_pairs[:, 0], self.corr_pairs[:, 1]
        cov = G[:, a, b] - G[:, F_CONST, a] * G[:, F_CONST, b] / self.n
        var_a = G[:, a, a] - G[:, F_CONST, a] ** 2 / self.n
        var_b = G[:, b, b] - G[:, F_CONST, b] ** 2 / self.n
        r = cov / np.sqrt(var_a * var_b)
        corr = (np.maximum(self.corr_lo - r, 0) + np.maximum(r - self.corr_hi, 0)) / s.corr
        return {
            "coef": np.concatenate(coef, axis=1),
            "se": np.concatenate(se, axis=1),
            "r2": np.concatenate(r2, axis=1),
            "star": np.concatenate(star, axis=1),
            "control": np.concatenate(control, axis=1),
            "table1": table1,
            "corr": corr,
        }

    def loss(self, G: np.ndarray, att_sums: np.ndarray) -> np.ndarray:
        """Sum of squared normalised deviations per candidate (B,), plus the worst-term hinge."""
        terms = self.terms(G, att_sums)
        total = sum((v**2).sum(axis=1) for v in terms.values())
        for name in ("coef", "se"):
            excess = np.maximum(np.abs(terms[name]) - self.scales.worst_hinge, 0)
            total = total + self.scales.worst_weight * (excess**2).sum(axis=1)
        return total


@dataclass
class Candidates:
    """A batch of candidate moves: rows i and j get new value rows new_i and new_j.

    For single-row moves j == i and new_j equals the old row (the Gram update subtracts the
    old row twice and adds it back once). `kind` indexes MOVE_KINDS; `pool_pos` is the
    excluded-pool position of an exchange (-1 otherwise); `valid` is False for candidates
    that break a hard constraint (age implausible for grade; Table 1 on all 605 more than
    `EXTRA_PCT_LIMIT` points off).
    """

    i: np.ndarray
    j: np.ndarray
    new_i: np.ndarray
    new_j: np.ndarray
    kind: np.ndarray
    pool_pos: np.ndarray
    valid: np.ndarray


MOVE_KINDS = (
    "swap_y",
    "swap_var",
    "swap_age",
    "swap_grade",
    "swap_age_grade",
    "swap_edu",
    "swap_att",
    "exchange_att",
    "set_extra",
)
SWAPPED_COLUMNS = {
    "swap_y": (Y,),
    "swap_age": (AGE,),
    "swap_grade": (GRADE,),
    "swap_age_grade": (AGE, GRADE),
    "swap_edu": (MEDU, FEDU),
    "swap_att": (ATT,),
}
EXTRA_PCT_LIMIT = 0.9
SIGNS = np.array([1.0, 1.0, -1.0, -1.0])[None, :, None]  # new rows added, old rows removed


def plausible_age(V: np.ndarray) -> np.ndarray:
    """Whether value rows (..., 14) have a plausible age for their grade (offset 4-7, age 9-15)."""
    offset = V[..., AGE] - V[..., GRADE]
    return (
        (offset >= AGE_OFFSETS[0])
        & (offset <= AGE_OFFSETS[-1])
        & (V[..., AGE] >= AGE_RANGE[0])
        & (V[..., AGE] <= AGE_RANGE[1])
    )


def pad_rows(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged per-group row lists as a zero-padded matrix and lengths."""
    padded = np.zeros((len(rows), max(len(r) for r in rows)), dtype=np.int64)
    for g, r in enumerate(rows):
        padded[g, : len(r)] = r
    return padded, np.array([len(r) for r in rows])


class MoveProposer:
    """Draws batches of candidate moves that keep Table 1's counts of the 601 children exact.

    Swaps of depression and of categorical variables, ages and grades happen only between
    two `in_table1` children of the same group; teacher triples are swapped between any two
    children of a group or exchanged with the excluded pool (the 905-row multiset, hence the
    factor weights, never changes); the extra children's covariates are re-drawn freely as
    long as Table 1 on all 605 stays within EXTRA_PCT_LIMIT points.
    """

    def __init__(self, state: State, published: dict, settings: SearchSettings):
        self.settings = settings
        self.kind_p = np.array([settings.move_weights[k] for k in MOVE_KINDS])
        self.kind_p /= self.kind_p.sum()
        sizes = np.array([np.sum(state.group == g) for g in range(4)], float)
        weight = sizes**settings.group_weight_power
        self.group_p = weight / weight.sum()
        self.in1 = pad_rows([np.flatnonzero((state.group == g) & state.in_table1) for g in range(4)])
        self.all = pad_rows([np.flatnonzero(state.group == g) for g in range(4)])
        self.extra_rows = np.flatnonzero(~state.in_table1)
        self.n_pool = len(state.pool)
        self.table1 = {}
        t1 = published["table1"]
        for g, group in enumerate(ps.GROUPS):
            in1 = state.V[(state.group == g) & state.in_table1]
            for col in CATEGORICAL_COLS + (GRADE,):
                block = t1["categorical"][VARS[col]]
                codes = np.array([c["code"] for c in block["categories"]])
                counts = (in1[:, col][:, None] == codes[None, :]).sum(axis=0)
                self.table1[g, col] = (codes, counts, np.array(block["pct"][group]), sizes[g])

    def table1_ok(self, state: State, row: int, col: int, new_row: np.ndarray) -> bool:
        """Whether Table 1 on all children of the row's group stays within the limit.

        Only column `col` of extra child `row` changes (to `new_row`).
        """
        group = state.group[row]
        codes, counts, pct, size = self.table1[group, col]
        extras = self.extra_rows[state.group[self.extra_rows] == group]
        values = np.where(extras == row, new_row[col], state.V[extras, col])
        total = counts + (values[:, None] == codes[None, :]).sum(axis=0)
        return bool(np.abs(100.0 * total / size - pct).max() <= EXTRA_PCT_LIMIT)

    @staticmethod
    def _pairs(padded: tuple[np.ndarray, np.ndarray], groups: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Two distinct rows of the same group per candidate."""
        rows, lens = padded
        lens = lens[groups]
        a = np.floor(rng.random(len(groups)) * lens).astype(np.int64)
        b = np.floor(rng.random(len(groups)) * (lens - 1)).astype(np.int64)
        b = b + (b >= a)
        return rows[groups, a], rows[groups, b]

    def propose(self, state: State, rng: np.random.Generator) -> Candidates:
        """Draw one batch of candidates from the current state, no-op swaps left out."""
        raw = self.draw(state, rng, 2 * self.settings.batch_size)
        changes = (raw.new_i != state.V[raw.i]).any(axis=1) | (raw.new_j != state.V[raw.j]).any(axis=1)
        keep = np.argsort(~changes, kind="stable")[: self.settings.batch_size]
        return Candidates(*(getattr(raw, f.name)[keep] for f in fields(Candidates)))

    def draw(self, state: State, rng: np.random.Generator, B: int) -> Candidates:
        """Draw B candidates from the current state."""
        kind = rng.choice(len(MOVE_KINDS), size=B, p=self.kind_p)
        groups = rng.choice(4, size=B, p=self.group_p)
        is_att = kind == MOVE_KINDS.index("swap_att")
        i1, j1 = self._pairs(self.in1, groups, rng)
        i2, j2 = self._pairs(self.all, groups, rng)
        i = np.where(is_att, i2, i1)
        j = np.where(is_att, j2, j1)
        mask = np.zeros((B, N_VARS), bool)
        for name, cols in SWAPPED_COLUMNS.items():
            mask[np.ix_(kind == MOVE_KINDS.index(name), cols)] = True
        sel = kind == MOVE_KINDS.index("swap_var")
        var_choice = np.asarray(CATEGORICAL_COLS)[rng.integers(len(CATEGORICAL_COLS), size=B)]
        mask[sel, var_choice[sel]] = True
        Vi, Vj = state.V[i], state.V[j]
        new_i = np.where(mask, Vj, Vi)
        new_j = np.where(mask, Vi, Vj)

        pool_pos = np.full(B, -1)
        sel = kind == MOVE_KINDS.index("exchange_att")
        rows = rng.integers(len(state.V), size=sel.sum())
        pos = rng.integers(self.n_pool, size=sel.sum())
        i[sel], j[sel], pool_pos[sel] = rows, rows, pos
        new_i[sel] = state.V[rows]
        new_i[sel, ATT] = state.att_of_triple[state.pool[pos]]
        new_j[sel] = state.V[rows]

        valid = plausible_age(new_i) & plausible_age(new_j)
        settable = list(VALUE_RANGES) + [AGE]
        for b in np.flatnonzero(kind == MOVE_KINDS.index("set_extra")):
            row = self.extra_rows[rng.integers(len(self.extra_rows))]
            i[b] = j[b] = row
            new_i[b] = new_j[b] = state.V[row]
            col = settable[rng.integers(len(settable))]
            if col == AGE:
                new_i[b, GRADE] = (5, 7, 8, 9)[rng.integers(4)]
                new_i[b, AGE] = new_i[b, GRADE] + AGE_OFFSETS[rng.integers(len(AGE_OFFSETS))]
            else:
                lo, hi = VALUE_RANGES[col]
                new_i[b, col] = rng.integers(lo, hi + 1)
            valid[b] = plausible_age(new_i[b]) and self.table1_ok(state, row, GRADE if col == AGE else col, new_i[b])
        return Candidates(i, j, new_i, new_j, kind, pool_pos, valid)


def gram(state: State) -> np.ndarray:
    """The Gram matrix (36 x 36) of the feature rows of the state."""
    F = features(state.V, state.dummies)
    return F.T @ F


def attitude_sums(state: State) -> np.ndarray:
    """Per group (4 x 2): sum and sum of squares of teacher's attitude over in_table1 rows."""
    out = np.zeros((4, 2))
    for g in range(4):
        a = state.V[(state.group == g) & state.in_table1, ATT]
        out[g] = a.sum(), (a**2).sum()
    return out


def apply_move(state: State, cand: Candidates, k: int) -> None:
    """Apply candidate k to the state (values and teacher-triple bookkeeping)."""
    i, j = cand.i[k], cand.j[k]
    kind = MOVE_KINDS[cand.kind[k]]
    if kind == "swap_att":
        state.triple_of[[i, j]] = state.triple_of[[j, i]]
    elif kind == "exchange_att":
        p = cand.pool_pos[k]
        state.triple_of[i], state.pool[p] = state.pool[p], state.triple_of[i]
    state.V[j] = cand.new_j[k]
    state.V[i] = cand.new_i[k]


def copy_state(state: State) -> State:
    """An independent copy of the mutable parts of the state."""
    return State(
        V=state.V.copy(),
        group=state.group,
        in_table1=state.in_table1,
        triple_of=state.triple_of.copy(),
        pool=state.pool.copy(),
        triples=state.triples,
        att_of_triple=state.att_of_triple,
    )


def summarise(terms: dict[str, np.ndarray], scales: LossScales) -> dict[str, float]:
    """Worst deviations of the current state in natural units."""
    return {
        "coef_se": float(np.abs(terms["coef"]).max() * scales.coef_se),
        "se_ratio": float(np.abs(terms["se"]).max() * scales.se_ratio),
        "r2": float(np.abs(terms["r2"]).max() * scales.r2),
        "star": float(terms["star"].max()),
        "table1": float(terms["table1"].max()),
        "corr": float(terms["corr"].max()),
        "control": float(terms["control"].max()),
    }


def search_swaps(
    state: State, objective: Objective, published: dict, settings: SearchSettings, rng: np.random.Generator, log
) -> State:
    """Anneal, then polish, the state by batches of candidate moves; return the best state seen.

    Per batch: if some valid candidate lowers the loss, the best one is applied; otherwise a
    worsening candidate may be applied with the Metropolis probability exp(-delta / T)
    (the first accepted in the batch's random order).
    """
    proposer = MoveProposer(state, published, settings)
    D = state.dummies
    G = gram(state)
    sums = attitude_sums(state)
    current = float(objective.loss(G[None], sums[None])[0])
    best, best_loss = copy_state(state), current
    n_batches = settings.anneal_batches + settings.polish_batches
    accepted = 0
    for batch in range(n_batches):
        if batch < settings.anneal_batches:
            temperature = settings.t_start * (settings.t_end / settings.t_start) ** (batch / settings.anneal_batches)
        else:
            temperature = 0.0
        cand = proposer.propose(state, rng)
        old_i, old_j = state.V[cand.i], state.V[cand.j]
        F = features(
            np.stack([cand.new_i, cand.new_j, old_i, old_j], axis=1),
            np.stack([D[cand.i], D[cand.j], D[cand.i], D[cand.j]], axis=1),
        )
        dG = (F * SIGNS).transpose(0, 2, 1) @ F
        d_sums = np.zeros((len(cand.i), 4, 2))
        for rows, new, old in ((cand.i, cand.new_i, old_i), (cand.j, cand.new_j, old_j)):
            w = state.in_table1[rows]
            g = state.group[rows]
            idx = np.arange(len(rows))
            d_sums[idx, g, 0] += w * (new[:, ATT] - old[:, ATT])
            d_sums[idx, g, 1] += w * (new[:, ATT] ** 2 - old[:, ATT] ** 2)
        delta = objective.loss(G + dG, sums + d_sums) - current
        delta[~cand.valid] = np.inf
        u = rng.random(len(delta))
        k = int(np.argmin(delta))
        if delta[k] >= 0:
            metropolis = np.flatnonzero(u < np.exp(-delta / temperature)) if temperature > 0 else []
            k = int(metropolis[0]) if len(metropolis) else -1
        if k >= 0:
            apply_move(state, cand, k)
            G = G + dG[k]
            sums = sums + d_sums[k]
            current += float(delta[k])
            accepted += 1
            if current < best_loss:
                best, best_loss = copy_state(state), current
        if batch % settings.refresh_every == 0:
            G = gram(state)
            sums = attitude_sums(state)
            current = float(objective.loss(G[None], sums[None])[0])
        if batch % settings.report_every == 0 or batch == n_batches - 1:
            summary = summarise(objective.terms(G[None], sums[None]), objective.scales)
            log(
                f"batch {batch:6d} T {temperature:.4f} accepted {accepted:5d} loss {current:9.3f} "
                f"best {best_loss:9.3f} " + " ".join(f"{k_}={v:.4f}" for k_, v in summary.items())
            )
            accepted = 0
    return best


# --------------------------------------------------------------------------- step 4


def split_depression(
    totals: np.ndarray, item_weights: tuple[float, ...], alpha_target: float, rng: np.random.Generator
) -> np.ndarray:
    """Split depression totals (6-30) into six items 1-5 (rows x 6) with Cronbach's alpha on target.

    Each total's excess over 6 is spread over the items by `item_weights` (items that reach 5
    drop out); then random one-unit moves between two items of one child are kept when they
    bring alpha closer to the target. The totals, hence every model, stay unchanged.
    """
    n, k = len(totals), len(item_weights)
    lo, hi = DEPRESSION_ITEM_RANGE
    items = np.full((n, k), lo, dtype=np.int64)
    weights = np.asarray(item_weights, float)
    for r, total in enumerate(totals):
        for _ in range(int(total) - k * lo):
            open_ = items[r] < hi
            p = weights * open_
            items[r, rng.choice(k, p=p / p.sum())] += 1
    total_var = totals.astype(float).var(ddof=1)
    col_sum = items.sum(axis=0).astype(float)
    col_sq = (items.astype(float) ** 2).sum(axis=0)

    def alpha_of(s: np.ndarray, q: np.ndarray) -> float:
        item_var = ((q - s**2 / n) / (n - 1)).sum()
        return k / (k - 1) * (1 - item_var / total_var)

    current = alpha_of(col_sum, col_sq)
    for _ in range(2_000_000):
        if abs(current - alpha_target) < ALPHA_TOLERANCE:
            return items
        r = rng.integers(n)
        a, b = rng.choice(k, size=2, replace=False)
        if items[r, a] <= lo or items[r, b] >= hi:
            continue
        s, q = col_sum.copy(), col_sq.copy()
        s[a] -= 1
        s[b] += 1
        q[a] += (items[r, a] - 1) ** 2 - items[r, a] ** 2
        q[b] += (items[r, b] + 1) ** 2 - items[r, b] ** 2
        candidate = alpha_of(s, q)
        if abs(candidate - alpha_target) < abs(current - alpha_target):
            items[r, a] -= 1
            items[r, b] += 1
            col_sum, col_sq, current = s, q, candidate
    raise RuntimeError("alpha did not reach its target")


# --------------------------------------------------------------------------- output


ANALYSED_COLUMNS = (
    "row_id", "migration_group", *ps.DEPRESSION_ITEMS, "girl", "age", "grade", "siblings", "korean",
    "mother_edu", "father_edu", "belong", *ps.TEACHER_ITEMS, "ht_satisfaction", "best_friends",
    "class_closeness", "peer_satisfaction", "in_table1",
)


def state_frames(state: State, items: np.ndarray, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (analysed, excluded teacher items) frames in the state-file layout, rows shuffled."""
    order = rng.permutation(len(state.V))
    V = state.V[order]
    frame = pd.DataFrame({"row_id": np.arange(1, len(V) + 1), "migration_group": np.asarray(ps.GROUPS)[state.group[order]]})
    for c, name in enumerate(ps.DEPRESSION_ITEMS):
        frame[name] = items[order, c]
    for col in (GIRL, AGE, GRADE, SIB, KOR, MEDU, FEDU, BELONG, HT_SAT, FRIENDS, CLOSE, PEER):
        frame[VARS[col]] = V[:, col].astype(np.int64)
    for c, name in enumerate(ps.TEACHER_ITEMS):
        frame[name] = state.triples[state.triple_of[order], c]
    frame["in_table1"] = state.in_table1[order].astype(np.int64)
    pool = state.triples[state.pool[rng.permutation(len(state.pool))]]
    excluded = pd.DataFrame({"row_id": np.arange(1, len(pool) + 1)})
    for c, name in enumerate(ps.TEACHER_ITEMS):
        excluded[name] = pool[:, c]
    return frame[list(ANALYSED_COLUMNS)], excluded


def calibrate(published: dict, settings: CalibrationSettings, log=print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the whole calibration; return the analysed and excluded-teacher frames."""
    rng = np.random.default_rng(settings.seed)
    state = build_initial_state(published, settings, rng)
    objective = Objective(published, len(state.V), settings)
    state = search_swaps(state, objective, published, settings.search, rng, log)
    items = split_depression(state.V[:, Y].astype(np.int64), settings.depression_item_weights, settings.alpha_target, rng)
    return state_frames(state, items, rng)


def main(argv: list[str] | None = None) -> None:
    """Command line: calibrate, write the two state CSVs, print the calibration report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=CalibrationSettings.seed)
    parser.add_argument("--out", type=Path, default=ps.STATE_DIR)
    args = parser.parse_args(argv)
    published = ps.load_published()
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    analysed, excluded = calibrate(published, CalibrationSettings(seed=args.seed), log)
    args.out.mkdir(parents=True, exist_ok=True)
    analysed.to_csv(args.out / ps.ANALYSED_FILE, index=False, lineterminator="\n")
    excluded.to_csv(args.out / ps.EXCLUDED_TEACHER_FILE, index=False, lineterminator="\n")
    log(f"wrote {args.out / ps.ANALYSED_FILE} and {args.out / ps.EXCLUDED_TEACHER_FILE}")
    print(ps.render_report(ps.calibration_report(analysed, excluded, published)))


if __name__ == "__main__":
    main()
