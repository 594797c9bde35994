"""The chained equations at scale (`SchoolEffectsChain`) were made faster; they must still draw
the very same imputations. `ReferenceChain` below is the chain as it was before (commit
e0a0fd6), its arithmetic kept verbatim (names, type hints and comments aside): the tests run
it and the current chain on the same seeded input above MI_DIRECT_MAX_ROWS and require
identical arrays, byte for byte.
The input has many ties in the predicted means (integer codes), so the donors' order, which
follows the previous iteration's sort, is exercised, and the negative case shows that a chain
that breaks ties differently is caught.
"""

import numpy as np
import pytest

from lbc_pipeline.lib.marts import missing_data as md
from lbc_pipeline.lib.marts.missing_data import (
    _DUMMIES, _INTERACTIONS, _P, _WIDTH, GROUP_LEVELS, PMM_DONORS, _covariance_root, _start, _structured_solve,
    group_dummies, school_effects_fit,
)


# ------------------------------------------------------------------ the chain before the speed-up
def ref_school_sums(Z, school, n_schools):
    return np.stack([np.bincount(school, weights=Z[:, c], minlength=n_schools) for c in range(Z.shape[1])], axis=1)


def ref_observed_order(yhat_obs, previous=None):
    if previous is None:
        return np.argsort(yhat_obs, kind="stable")
    return previous[np.argsort(yhat_obs[previous], kind="stable")]


def ref_nearest_by_sorting(yhat_obs, yhat_mis, k, order):
    n = len(yhat_obs)
    ranked = yhat_obs[order]
    width = min(2 * k, n)
    start = np.clip(np.searchsorted(ranked, yhat_mis) - k, 0, n - width)
    window = start[:, None] + np.arange(width)
    distance = np.abs(ranked[window] - yhat_mis[:, None])
    nearest = np.argsort(distance, axis=1, kind="stable")[:, :k]
    return order[np.take_along_axis(window, nearest, axis=1)]


def ref_lda_fit(labels, values, school, n_levels, n_schools):
    n, p = values.shape
    nk = np.bincount(labels, minlength=n_levels).astype(float)
    priors = nk / n
    sums_v = np.stack([np.bincount(labels, weights=values[:, c], minlength=n_levels) for c in range(p)], axis=1)
    by_class = np.bincount(labels * n_schools + school, minlength=n_levels * n_schools).reshape(n_levels, n_schools)
    empty = nk == 0
    mean_v = np.where(empty[:, None], values.mean(axis=0), sums_v / np.maximum(nk, 1)[:, None])
    share = np.bincount(school, minlength=n_schools) / n
    mean_s = np.where(empty[:, None], share, by_class / np.maximum(nk, 1)[:, None])[:, 1:]
    c = 1 / max(n - n_levels, 1)
    school_v = np.stack([np.bincount(school, weights=values[:, j], minlength=n_schools) for j in range(p)])[:, 1:]
    vv = c * (values.T @ values - (mean_v * nk[:, None]).T @ mean_v) + 1e-6 * np.eye(p)
    vs = c * (school_v - (mean_v * nk[:, None]).T @ mean_s)
    diagonal = c * np.bincount(school, minlength=n_schools)[1:] + 1e-6
    U = (mean_s * np.sqrt(c * nk)[:, None]).T
    return priors, mean_v, mean_s, vv, vs, diagonal, U


def ref_lda_draw_by_school(labels, values_obs, school_obs, values_mis, school_mis, n_levels, n_schools, rng):
    boot = rng.integers(0, len(labels), len(labels))
    priors, mean_v, mean_s, vv, vs, diagonal, U = ref_lda_fit(labels[boot], values_obs[boot], school_obs[boot],
                                                              n_levels, n_schools)
    x_v, x_s = _structured_solve(vv, vs, diagonal, U, mean_v.T, mean_s.T)
    x_s = np.vstack([np.zeros((1, n_levels)), x_s])
    quadratic = (mean_v * x_v.T).sum(axis=1) + (mean_s * x_s[1:].T).sum(axis=1)
    scores = values_mis @ x_v + x_s[school_mis] - 0.5 * quadratic + np.log(np.maximum(priors, 1e-12))
    prob = np.exp(scores - scores.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    u = rng.random(len(values_mis))[:, None]
    return (u > np.cumsum(prob, axis=1)).sum(axis=1).clip(0, n_levels - 1)


class ReferenceChain:
    """`SchoolEffectsChain` as of commit e0a0fd6 (before the speed-up)."""

    def __init__(self, data, rng):
        self.data, self.rng = data, rng
        self.values, self.group, self.miss, self.gmiss = _start(data, rng)
        self.Z = np.empty((len(self.values), _WIDTH))
        self._fill(slice(None))
        self.gram = self.Z.T @ self.Z
        self.sums = ref_school_sums(self.Z, data.school, data.n_schools)
        self.counts = np.bincount(data.school, minlength=data.n_schools)
        self.orders, self.y_obs = {}, {}

    def _fill(self, rows):
        dummies = group_dummies(self.group[rows])
        self.Z[rows, :_P] = self.values[rows]
        self.Z[rows, _P:_P + len(_DUMMIES)] = dummies
        for c, columns in _INTERACTIONS.items():
            self.Z[rows, columns] = dummies * self.values[rows, c][:, None]

    def _replace(self, rows, old):
        new = self.Z[rows]
        self.gram += new.T @ new - old.T @ old
        self.sums += ref_school_sums(new - old, self.data.school[rows], self.data.n_schools)

    def pmm(self, j):
        rows = np.flatnonzero(self.miss[:, j])
        observed = ~self.miss[:, j]
        school = self.data.school
        old = self.Z[rows]
        x = np.setdiff1d(np.arange(_WIDTH), [j, *(range(_WIDTH)[_INTERACTIONS[j]] if j in _INTERACTIONS else ())])
        school_m = school[rows]
        fit = school_effects_fit(self.gram - old.T @ old,
                                 self.sums - ref_school_sums(old, school_m, self.data.n_schools),
                                 self.counts - np.bincount(school_m, minlength=self.data.n_schools), x, j)
        full = np.zeros(_WIDTH)
        full[x] = fit.beta
        if j not in self.y_obs:
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
        self.orders[j] = ref_observed_order(yhat_obs, self.orders.get(j))
        donors = ref_nearest_by_sorting(yhat_obs, yhat_mis, k, self.orders[j])
        drawn = y_obs[donors[np.arange(len(rows)), self.rng.integers(0, k, len(rows))]]
        self.values[rows, j] = drawn
        self.Z[rows, j] = drawn
        if j in _INTERACTIONS:
            self.Z[rows, _INTERACTIONS[j]] = old[:, _DUMMIES] * drawn[:, None]
        self._replace(rows, old)

    def lda(self):
        rows = np.flatnonzero(self.gmiss)
        observed = ~self.gmiss
        school = self.data.school
        self.group[rows] = ref_lda_draw_by_school(self.group[observed], self.values[observed], school[observed],
                                                  self.values[rows], school[rows], len(GROUP_LEVELS),
                                                  self.data.n_schools, self.rng)
        old = self.Z[rows]
        self._fill(rows)
        self._replace(rows, old)

    def run(self, iterations):
        for _ in range(iterations):
            for j in range(_P):
                if self.miss[:, j].any():
                    self.pmm(j)
            if self.gmiss.any():
                self.lda()
        return self.values, self.group


# ------------------------------------------------------------------ the input
# Shares missing in a scaled wave of the generator (`lbc generate --n 200000 --seed 11`, its
# sensitivity frame): every variable incomplete, the parents' education most often.
MISSING_SHARE = dict(zip(md.NUMERIC_VARIABLES, (
    0.041, 0.006, 0.013, 0.006, 0.011, 0.007, 0.093, 0.092, 0.019, 0.030, 0.019, 0.016, 0.019, 0.019)))
GROUP_MISSING_SHARE = 0.046


def scaled_input(n: int = 20_000, seed: int = 21, n_schools: int = 60, n_children: int = 500) -> md.ImputationInput:
    """A wave above MI_DIRECT_MAX_ROWS shaped like the generator's scaled waves: every row one
    of a few hundred children (the generator resamples the calibrated state's) but for its
    depression, integer codes and a factor score of three 1-4 items, so that many rows of a
    school share their predicted mean with different values (ties that matter); a school
    effect on depression; values and groups missing at the generator's shares (more
    often in some schools and groups: not MCAR)."""
    rng = np.random.default_rng(seed)
    codes = {
        "girl": (0, 1), "age": (9, 15), "grade": (4, 9), "siblings": (0, 3), "korean": (0, 1),
        "mother_edu": (1, 3), "father_edu": (1, 3), "belong": (1, 5), "ht_satisfaction": (1, 5),
        "best_friends": (1, 4), "class_closeness": (1, 5), "peer_satisfaction": (1, 5),
    }
    columns = {c: rng.integers(lo, hi + 1, n_children).astype(float) for c, (lo, hi) in codes.items()}
    items = rng.integers(1, 5, size=(n_children, 3))
    columns["teacher_attitude"] = (items @ [0.8, 0.7, 0.6] - 5.25) / 1.3
    child_group = rng.choice(4, size=n_children, p=[0.6, 0.1, 0.17, 0.13])
    columns["depression"] = np.zeros(n_children)
    child = rng.integers(0, n_children, n)
    school = rng.integers(0, n_schools, n)
    values = np.column_stack([columns[c] for c in md.NUMERIC_VARIABLES])[child]
    group = child_group[child]
    # the outcome row by row (a sum of six 1-5 items): rows with the same predictors, different depression
    values[:, 0] = np.clip(np.rint(15 + 1.5 * (group > 0) - values[:, md.NUMERIC_VARIABLES.index("belong")]
                                   + rng.normal(scale=0.5, size=n_schools).round()[school]
                                   + rng.normal(scale=3, size=n)), 6, 30)
    tilt = 0.5 + (school % 3) / 2 + (group == 3) / 2  # about 1 on average: the shares kept
    for j, c in enumerate(md.NUMERIC_VARIABLES):
        values[rng.random(n) < MISSING_SHARE[c] * tilt, j] = np.nan
    group[rng.random(n) < GROUP_MISSING_SHARE * tilt] = -1
    return md.ImputationInput(values, group, school, n_schools)


@pytest.fixture(scope="module")
def data():
    data = scaled_input()
    assert len(data.values) > md.MI_DIRECT_MAX_ROWS and np.isnan(data.values).any(axis=0).all()
    return data


@pytest.fixture(scope="module")
def reference(data):
    return ReferenceChain(data, np.random.default_rng(5)).run(md.N_ITERATIONS)


# ------------------------------------------------------------------ identity
def test_chain_draws_exactly_what_it_drew_before_the_speed_up(data, reference, monkeypatch):
    # 20,000 rows impute at most ~1,900 of a variable: look them up in order too, as at scale
    monkeypatch.setattr(md, "SEARCHSORTED_SORT_MIN", 64)
    values, group = md.SchoolEffectsChain(data, np.random.default_rng(5)).run(md.N_ITERATIONS)
    assert values.tobytes() == reference[0].tobytes() and group.tobytes() == reference[1].tobytes()
    missing = np.isnan(data.values)
    assert not np.isnan(values).any() and (group >= 0).all()
    assert np.array_equal(values[~missing], data.values[~missing])  # only missing cells filled


def test_forked_chains_at_scale_equal_the_reference_chains(data):
    # the pipeline's path: impute_once on forked workers, each chain its own spawned seed
    seeds = np.random.SeedSequence(11).spawn(3)
    forked = list(md.fork_imap(lambda s: md.impute_once(data, np.random.default_rng(s), 4), seeds, 2))
    for seed, (values, group) in zip(seeds, forked):
        ref_values, ref_group = ReferenceChain(data, np.random.default_rng(seed)).run(4)
        assert values.tobytes() == ref_values.tobytes() and group.tobytes() == ref_group.tobytes()


def test_chain_state_stays_that_of_its_values(data):
    chain = md.SchoolEffectsChain(data, np.random.default_rng(8))
    chain.run(2)
    fresh = np.empty_like(chain.Z)
    chain.Z, saved = fresh, chain.Z
    chain._fill(slice(None))
    assert np.array_equal(fresh, saved)
    assert np.allclose(chain.gram, fresh.T @ fresh, rtol=1e-10)
    assert np.allclose(chain.sums, ref_school_sums(fresh, data.school, data.n_schools), rtol=1e-10, atol=1e-9)


def test_a_chain_that_breaks_ties_otherwise_is_caught(data, reference, monkeypatch):
    # sorting each iteration afresh (ties by row, not by the previous order) changes donors:
    # the comparison above would see it
    monkeypatch.setattr(md, "observed_order", lambda yhat, previous=None: np.argsort(yhat, kind="stable"))
    values, group = md.SchoolEffectsChain(data, np.random.default_rng(5)).run(md.N_ITERATIONS)
    assert values.tobytes() != reference[0].tobytes()
    # and another seed is another chain
    monkeypatch.undo()
    other, _ = md.SchoolEffectsChain(data, np.random.default_rng(6)).run(md.N_ITERATIONS)
    assert not np.array_equal(other, reference[0])


# ------------------------------------------------------------------ the pieces
@pytest.mark.parametrize("n", [0, 1, 7, md.STABLE_ARGSORT_RADIX_MIN - 1, md.STABLE_ARGSORT_RADIX_MIN, 50_000])
def test_stable_argsort_is_numpys_stable_argsort(n):
    rng = np.random.default_rng(n)
    cases = [
        rng.integers(-20, 20, n) * 0.25,  # ties, negatives, zeros
        rng.normal(scale=1e-300, size=n),  # subnormal range
        np.where(rng.random(n) < 0.5, -0.0, 0.0),  # -0.0 equals 0.0: index order
        np.full(n, 3.5),
        rng.choice([-np.inf, np.inf, 1.0, -1.0, 1e308, -1e-308], n),
        rng.normal(size=n) * 1e6 + rng.integers(0, 3, n),
    ]
    for a in cases:
        assert np.array_equal(md.stable_argsort(a), np.argsort(a, kind="stable"))
    if n:
        with_nan = rng.normal(size=n)
        with_nan[::3] = np.nan
        assert np.array_equal(md.stable_argsort(with_nan), np.argsort(with_nan, kind="stable"))
        codes = rng.integers(-5, 5, n)  # not floats: numpy's sort
        assert np.array_equal(md.stable_argsort(codes), np.argsort(codes, kind="stable"))


def test_stable_argsort_keeps_the_previous_order_of_ties():
    rng = np.random.default_rng(3)
    n = 3 * md.STABLE_ARGSORT_RADIX_MIN
    yhat = rng.integers(0, 200, n).astype(float) / 7
    previous = rng.permutation(n)
    assert np.array_equal(md.observed_order(yhat, previous), ref_observed_order(yhat, previous))
    assert np.array_equal(md.observed_order(yhat), ref_observed_order(yhat))


def test_sorted_lookup_gives_numpys_positions():
    rng = np.random.default_rng(4)
    ranked = np.sort(rng.integers(0, 500, 20_000) / 4)  # ties
    for n in (0, 5, md.SEARCHSORTED_SORT_MIN, 30_000):
        values = rng.integers(-10, 510, n) / 4
        if n:
            values[::7] = np.nan
        assert np.array_equal(md._searchsorted(ranked, values), np.searchsorted(ranked, values))


# ------------------------------------------------------------------ the completed sets' OLS fits
def design(n: int, spread: float, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A design like the published ones (a constant, 0/1 group dummies, an uncentred 1-5
    moderator and its products with the dummies, controls); `spread` scales a nearly
    collinear control (a small spread gives a large condition number)."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 4, n)
    dummies = (group[:, None] == np.arange(1, 4)).astype(float)
    moderator = rng.integers(1, 6, n).astype(float)
    age = rng.integers(9, 16, n).astype(float)
    twin = age + spread * rng.normal(size=n)  # nearly the same column as age
    X = np.column_stack([np.ones(n), dummies, moderator, dummies * moderator[:, None], age, twin])
    y = X @ rng.normal(size=X.shape[1]) + rng.normal(scale=4, size=n)
    return y, X


def test_above_the_direct_size_the_fit_is_lstsqs_to_the_last_digits():
    y, X = design(md.MI_DIRECT_MAX_ROWS + 3_000, spread=1.0)
    beta, var, df = md.ols_fit(y, X)
    expected, *_ = np.linalg.lstsq(X, y, rcond=None)  # the independent computation (an SVD)
    np.testing.assert_allclose(beta, expected, rtol=1e-12, atol=1e-12)
    resid = y - X @ expected
    np.testing.assert_allclose(var, resid @ resid / df * np.diag(np.linalg.inv(X.T @ X)), rtol=1e-12)
    assert df == len(y) - X.shape[1]


def test_the_refinement_step_is_what_keeps_an_ill_conditioned_fit_exact():
    y, X = design(md.MI_DIRECT_MAX_ROWS + 3_000, spread=1e-4)
    assert np.linalg.cond(X) > 1e5
    expected, *_ = np.linalg.lstsq(X, y, rcond=None)
    beta, _, _ = md.ols_fit(y, X)
    error = np.max(np.abs(beta - expected) / np.maximum(np.abs(expected), 1))
    plain = np.linalg.solve(X.T @ X, X.T @ y)  # the normal equations without the refinement
    plain_error = np.max(np.abs(plain - expected) / np.maximum(np.abs(expected), 1))
    assert error < 1e-9 < plain_error


def test_up_to_the_direct_size_the_fit_is_lstsq_itself():
    y, X = design(md.MI_DIRECT_MAX_ROWS, spread=1.0)
    beta, _, _ = md.ols_fit(y, X)
    assert np.array_equal(beta, np.linalg.lstsq(X, y, rcond=None)[0])  # the same bits: the reference wave's path
