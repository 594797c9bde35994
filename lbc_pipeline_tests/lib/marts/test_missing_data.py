"""A third of the valid questionnaires never reach the models. Whether that matters rests on
Little's MCAR test and on the multiple-imputation estimates; both are easy to get subtly
wrong (EM not converged, a pattern's df miscounted, Rubin's between-variance without the
1/M term). Checked against a published result (naniar's test on R's airquality data) and
a hand computation of Rubin's rules.
"""

from pathlib import Path

import numpy as np
import pandera.errors
import polars as pl
import pytest

from lbc_pipeline.lib.marts import missing_data as md
from lbc_pipeline.lib.marts.models import model_specs
from lbc_pipeline_tests.helpers import random_analytic_sample

AIRQUALITY = Path(__file__).parent / "data" / "airquality.csv"


def test_little_mcar_test_reproduces_naniar_on_airquality():
    # R: naniar::mcar_test(airquality) -> statistic 35.1061288689702, df 14,
    # p.value 0.00141778113856683, 4 missing patterns (naniar's test suite). naniar's EM
    # (norm::em.norm) stops at a looser tolerance than ours, hence abs=1e-4.
    Y = pl.read_csv(AIRQUALITY, null_values="NA").cast(pl.Float64).to_numpy()
    result = md.little_mcar_test(Y)
    assert result.statistic == pytest.approx(35.1061288689702, abs=1e-4)
    assert result.df == 14 and result.n_patterns == 4 and result.n_rows == 153
    assert result.p_value == pytest.approx(0.00141778113856683, rel=1e-4)


def test_em_on_complete_data_gives_the_sample_mean_and_ml_covariance():
    Y = np.random.default_rng(1).normal(size=(50, 3))
    mu, sigma, _ = md.em_mvn(Y)
    assert np.allclose(mu, Y.mean(axis=0)) and np.allclose(sigma, np.cov(Y.T, ddof=0))


@pytest.mark.parametrize(("mechanism", "rejects"), [
    ("mcar", False),  # values deleted at random: no evidence against MCAR
    ("mar", True),  # x2 deleted where x1 is large: the pattern means differ
])
def test_little_mcar_test_detects_missingness_that_depends_on_the_data(mechanism, rejects):
    rng = np.random.default_rng(2)
    Y = rng.multivariate_normal([0, 0, 0], [[1, 0.6, 0.3], [0.6, 1, 0.4], [0.3, 0.4, 1]], size=400)
    drop = rng.random(400) < 0.3 if mechanism == "mcar" else Y[:, 0] > 0.5
    Y[drop, 1] = np.nan
    assert (md.little_mcar_test(Y).p_value < 0.05) == rejects


def _masking_em_mvn(Y, tol=md.EM_TOLERANCE, max_iter=md.EM_MAX_ITER):
    """em_mvn as it was written first (each pattern's rows masked out of Y at every
    iteration): the oracle the grouped form must equal to the bit."""
    Y = Y[~np.isnan(Y).all(axis=1)]
    n, p = Y.shape
    observed = ~np.isnan(Y)
    mu = np.nanmean(Y, axis=0)
    sigma = np.diag(np.nanvar(Y, axis=0))
    patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
    for iteration in range(1, max_iter + 1):
        t1, t2 = np.zeros(p), np.zeros((p, p))
        for j, pattern in enumerate(patterns):
            rows = Y[inverse.ravel() == j]
            o, m = pattern, ~pattern
            filled, correction = rows.copy(), np.zeros((p, p))
            if m.any():
                coef = sigma[np.ix_(m, o)] @ np.linalg.inv(sigma[np.ix_(o, o)])
                filled[:, m] = mu[m] + (rows[:, o] - mu[o]) @ coef.T
                correction[np.ix_(m, m)] = sigma[np.ix_(m, m)] - coef @ sigma[np.ix_(o, m)]
            t1 += filled.sum(axis=0)
            t2 += filled.T @ filled + len(rows) * correction
        new_mu, new_sigma = t1 / n, t2 / n - np.outer(t1 / n, t1 / n)
        change = max(np.abs(new_mu - mu).max(), np.abs(new_sigma - sigma).max())
        mu, sigma = new_mu, new_sigma
        if change < tol:
            return mu, sigma, iteration
    raise ValueError("not converged")


def _with_holes(n: int, p: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    Y = rng.multivariate_normal(np.arange(p), np.eye(p) + 0.4, size=n)
    Y[rng.random((n, p)) < 0.15] = np.nan
    Y[: n // 50] = np.nan  # some rows with nothing observed
    return Y


@pytest.mark.parametrize(("n", "p"), [(40, 3), (3000, 6), (5000, 9)])
def test_grouped_em_equals_the_masking_em_to_the_bit(n, p):
    Y = _with_holes(n, p, n + p)
    mu, sigma, iterations = md.em_mvn(Y)
    ref_mu, ref_sigma, ref_iterations = _masking_em_mvn(Y)
    assert iterations == ref_iterations
    assert mu.tobytes() == ref_mu.tobytes() and sigma.tobytes() == ref_sigma.tobytes()


@pytest.mark.parametrize("p", [1, 5, 63, 64, 70])
def test_missingness_patterns_are_numpy_uniques_order_with_each_patterns_rows_in_order(p):
    Y = _with_holes(600, p, p) if p > 1 else np.where(np.random.default_rng(0).random((600, 1)) < 0.3, np.nan, 1.0)
    groups = md.missingness_patterns(Y)
    patterns, inverse = np.unique(~np.isnan(Y), axis=0, return_inverse=True)
    assert np.array_equal(groups.observed, patterns)
    for j, block in enumerate(groups.blocks):
        assert block.tobytes() == Y[inverse.ravel() == j].tobytes()
    assert sum(len(b) for b in groups.blocks) == len(Y)


def test_rubin_rules_by_hand():
    # M = 3 estimates 1.0, 1.2, 0.8 with variances 0.04, 0.05, 0.03; complete-data df 20.
    # U = 0.04; B = (0 + 0.04 + 0.04) / 2 = 0.04; T = 0.04 + (4/3) 0.04 = 0.28/3
    # riv = (4/3) 0.04 / 0.04 = 4/3; lambda = (4/3)(0.04) / T = 4/7
    # df_old = (M - 1) / lambda^2 = 2 * 49/16 = 49/8
    # df_obs = (21/23) * 20 * (1 - 4/7) = 180/23; df = 1 / (8/49 + 23/180)
    pooled = md.rubin_pool(np.array([1.0, 1.2, 0.8]), np.array([0.04, 0.05, 0.03]), 20)
    df = 1 / (8 / 49 + 23 / 180)
    assert pooled.estimate == pytest.approx(1.0)
    assert pooled.within == pytest.approx(0.04) and pooled.between == pytest.approx(0.04)
    assert pooled.total == pytest.approx(0.28 / 3)
    assert pooled.riv == pytest.approx(4 / 3) and pooled.lambda_ == pytest.approx(4 / 7)
    assert pooled.df == pytest.approx(df)
    assert pooled.fmi == pytest.approx((4 / 3 + 2 / (df + 3)) / (1 + 4 / 3))


def frame_with_missing(n: int = 200, seed: int = 3, share: float = 0.15) -> pl.DataFrame:
    """A sensitivity-like frame: every model variable, some values and groups set missing."""
    frame = random_analytic_sample(n, seed)
    rng = np.random.default_rng(seed)
    frame = frame.with_columns(pl.col(c).cast(pl.Float64) for c in md.NUMERIC_VARIABLES)
    out = {}
    for c in ("mother_edu", "father_edu", "belong", "teacher_attitude", "depression"):
        values = frame[c].to_numpy().copy()
        values[rng.random(n) < share] = np.nan
        out[c] = pl.Series(c, values).fill_nan(None)
    group = frame["migration_group"].to_numpy().astype(object)
    group[rng.random(n) < share / 2] = None
    return frame.with_columns(*out.values(), pl.Series("migration_group", group, dtype=pl.String),
                              status=pl.lit("excluded"))


def test_imputations_fill_only_missing_cells_with_observed_codes_and_are_seeded():
    frame = frame_with_missing()
    first = md.impute(frame, m=3, seed=11)
    again = md.impute(frame, m=3, seed=11)
    assert all(a.equals(b) for a, b in zip(first, again))
    assert not first[0].equals(first[1])  # each imputation its own chain
    for done in first:
        for c in ("mother_edu", "belong", "depression"):
            observed = frame[c].drop_nulls().unique().to_list()
            assert done[c].null_count() == 0 and set(done[c].unique().to_list()) <= set(observed)
            kept = frame[c].is_not_null()
            assert done.filter(kept)[c].equals(frame.filter(kept)[c])
        # passive: the dummies follow the imputed group
        assert done.select((pl.col("mother_away") == (pl.col("migration_group") == "mother").cast(pl.Int64)).all()).item()


def test_chains_on_forked_workers_give_the_same_imputations_as_one_process():
    frame = frame_with_missing()
    serial = md.impute(frame, m=5, seed=11, workers=1)
    forked = md.impute(frame, m=5, seed=11, workers=3)
    assert len(serial) == len(forked) == 5
    assert all(a.equals(b) for a, b in zip(serial, forked))


def test_a_chain_that_fails_on_a_forked_worker_fails_the_imputation():
    frame = frame_with_missing().with_columns(pl.lit(None, dtype=pl.Float64).alias("belong"))
    with pytest.raises(ValueError, match="cannot impute belong"):
        md.impute(frame, m=4, seed=11, workers=2)


def test_without_missing_values_mi_equals_the_complete_case_fit():
    frame = random_analytic_sample(150, 4).with_columns(pl.col(c).cast(pl.Float64) for c in md.NUMERIC_VARIABLES)
    mi = md.multiple_imputation(frame, frame, "t", m=2, seed=1)
    assert mi.height == sum(len(s.terms) for s in model_specs("as_published"))
    assert np.allclose(mi["estimate"], mi["cc_estimate"]) and np.allclose(mi["std_error"], mi["cc_std_error"])
    assert (mi["between_variance"] == 0).all() and not mi["significance_changed"].any()


def test_mi_contract_refuses_a_non_positive_standard_error():
    frame = random_analytic_sample(150, 4).with_columns(pl.col(c).cast(pl.Float64) for c in md.NUMERIC_VARIABLES)
    mi = md.multiple_imputation(frame, frame, "t", m=2, seed=1)
    with pytest.raises(pandera.errors.SchemaError):
        md.MI_CONTRACT.validate(mi.with_columns(std_error=pl.lit(0.0)))


def test_mcar_test_on_complete_data_has_nothing_to_test():
    result = md.little_mcar_test(np.random.default_rng(4).normal(size=(30, 3)))
    assert (result.statistic, result.df, result.p_value, result.n_patterns) == (0.0, 0, 1.0, 1)


def test_covariance_root_falls_back_on_a_semidefinite_matrix():
    # full rank: the Cholesky factor (the draws of a normal wave are unchanged)
    from lbc_pipeline.lib.marts.missing_data import _covariance_root

    full = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert np.allclose(_covariance_root(full), np.linalg.cholesky(full))
    # collinear predictors: rank 1 with a rounding-error negative eigenvalue; root still reproduces it
    v = np.array([1.0, 2.0])
    semi = np.outer(v, v) - 1e-14 * np.eye(2)
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(semi)
    root = _covariance_root(semi)
    assert np.allclose(root @ root.T, np.outer(v, v), atol=1e-10)


# ------------------------------------------------------------------ the forms used at scale
def test_distance_matrix_in_blocks_gives_the_same_donors_as_the_whole_matrix(monkeypatch):
    rng = np.random.default_rng(5)
    obs, mis = rng.normal(size=300).round(1), rng.normal(size=70).round(1)  # rounded: many ties
    whole = np.argpartition(np.abs(mis[:, None] - obs[None, :]), 4, axis=1)[:, :5]
    monkeypatch.setattr(md, "PMM_BLOCK_CELLS", 7 * 300)  # 7 missing rows per block
    assert np.array_equal(md.nearest_by_distance(obs, mis, 5), whole)


def test_nearest_by_hand_on_each_path():
    obs = np.array([0.0, 10.0, 1.0, 6.5, 3.0, 20.0, 4.5])
    mis = np.array([4.0, -5.0, 25.0])
    # 4.0: 4.5 (0.5), 3.0 (1.0), 6.5 (2.5); -5: 0, 1, 3; 25: 20, 10, 6.5
    expected = [{6, 4, 3}, {0, 2, 4}, {5, 1, 3}]
    by_distance = md.nearest_by_distance(obs, mis, 3)
    by_sorting = md.nearest_by_sorting(obs, mis, 3)
    assert [set(r) for r in by_distance] == expected == [set(r) for r in by_sorting]
    assert by_sorting.tolist() == [[6, 4, 3], [0, 2, 4], [5, 1, 3]]  # nearest first


def test_sorted_search_selects_the_donor_sets_of_the_distance_matrix_without_ties():
    rng = np.random.default_rng(8)
    for n_obs, k in ((1, 1), (4, 4), (9, 5), (500, 5)):
        obs, mis = rng.normal(size=n_obs), rng.normal(scale=2, size=200)
        a, b = md.nearest_by_distance(obs, mis, k), md.nearest_by_sorting(obs, mis, k)
        assert [set(r) for r in a] == [set(r) for r in b]


def test_pmm_draw_uses_the_sorted_search_above_the_cell_limit(monkeypatch):
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(400, 3))
    y = (Z @ [1.0, -2.0, 0.5] + rng.normal(size=400)).round(2)
    called = []
    monkeypatch.setattr(md, "nearest_by_sorting", lambda *a: called.append(1) or md.nearest_by_distance(*a))
    small = md.pmm_draw(y[:300], Z[:300], Z[300:], np.random.default_rng(1))
    assert not called
    monkeypatch.setattr(md, "PMM_DISTANCE_MAX_CELLS", 100)
    large = md.pmm_draw(y[:300], Z[:300], Z[300:], np.random.default_rng(1))
    assert called and np.array_equal(small, large)  # the same donors and draws when both are argpartition's


def school_design(n=600, n_schools=7, seed=4):
    rng = np.random.default_rng(seed)
    school = rng.integers(0, n_schools, n)
    W = rng.normal(size=(n, 3)) + school[:, None] * 0.3
    y = W @ [0.5, -1.0, 2.0] + np.array([0.0, 1, -1, 2, 0.5, 3, -2])[school] + rng.normal(size=n)
    return school, W, y


def test_school_effects_fit_equals_dummy_least_squares():
    school, W, y = school_design()
    Z = np.column_stack([W, y])
    fit = md.school_effects_fit(Z.T @ Z, md._school_sums(Z.T, school, 7), np.bincount(school, minlength=7), [0, 1, 2], 3)
    dummies = np.column_stack([(school == s).astype(float) for s in range(1, 7)])
    X = np.column_stack([W, dummies, np.ones(len(y))])
    xtx_inv = np.linalg.inv(X.T @ X)
    b = xtx_inv @ X.T @ y
    assert np.allclose(fit.beta, b[:3], rtol=1e-10, atol=1e-12)
    assert np.allclose(fit.xtx_inv, xtx_inv[:3, :3], rtol=1e-9)
    assert np.allclose(fit.intercept, b[-1] + np.r_[0.0, b[3:9]], rtol=1e-10)
    assert fit.df == len(y) - X.shape[1]
    # the factored posterior draw (beta*, then each intercept given beta*) has the dummy form's
    # covariance: var(intercept_s) = sigma2 / n_s + wbar_s' var(beta) wbar_s
    L = np.column_stack([np.zeros((7, 3)), np.vstack([np.zeros(6), np.eye(6)]), np.ones(7)])
    dense = np.diag(L @ xtx_inv @ L.T)
    factored = 1 / fit.counts + np.einsum("sj,jk,sk->s", fit.means, fit.xtx_inv, fit.means)
    assert np.allclose(dense, factored, rtol=1e-9)


def test_lda_scores_by_school_equal_the_dummy_form():
    rng = np.random.default_rng(6)
    n, n_schools = 500, 6
    school = rng.integers(0, n_schools, n)
    values = rng.normal(size=(n, 4)) + school[:, None] * 0.2
    labels = (rng.integers(0, 3, n) + (values[:, 0] > 1)).clip(0, 3)
    labels[labels == 2] = 1  # level 2 empty: the overall mean, prior 1e-12, as lda_draw
    dummies = np.column_stack([(school == s).astype(float) for s in range(1, n_schools)])
    Z = np.column_stack([values, dummies])
    means = np.stack([Z[labels == k].mean(axis=0) if (labels == k).any() else Z.mean(axis=0) for k in range(4)])
    centred = Z - means[labels]
    inv = np.linalg.inv(centred.T @ centred / (n - 4) + 1e-6 * np.eye(Z.shape[1]))
    priors = np.array([(labels == k).mean() for k in range(4)])
    dense = Z[:50] @ inv @ means.T - 0.5 * np.einsum("kj,jl,kl->k", means, inv, means) + np.log(np.maximum(priors, 1e-12))
    structured = md.lda_scores_by_school(labels, values, school, values[:50], school[:50], 4, n_schools)
    assert np.allclose(structured, dense, rtol=1e-8, atol=1e-8)


def test_school_effects_chain_imputes_like_the_direct_form(monkeypatch):
    """Above MI_DIRECT_MAX_ROWS: only missing cells filled, with observed codes, seeded; the
    Gram matrix kept up to date equals the one of the final values; the pooled estimates agree
    with the direct form's within their standard errors."""
    frame = frame_with_missing(n=600, seed=5, share=0.2)
    data = md.imputation_input(frame)
    chain = md.SchoolEffectsChain(data, np.random.default_rng(3))
    values, group = chain.run(3)
    fresh = np.empty_like(chain.Z)
    chain.Z, saved = fresh, chain.Z
    chain._fill(slice(None))
    assert np.array_equal(fresh, saved)
    assert np.allclose(chain.gram, fresh.T @ fresh, rtol=1e-10)
    assert np.allclose(chain.sums, md._school_sums(fresh.T, data.school, data.n_schools), rtol=1e-10, atol=1e-9)
    assert (group >= 0).all() and not np.isnan(values).any()
    direct = md.multiple_imputation(frame, frame.drop_nulls(), "t", m=5, seed=1)
    monkeypatch.setattr(md, "MI_DIRECT_MAX_ROWS", 100)
    first = md.impute(frame, m=2, seed=11)
    assert all(a.equals(b) for a, b in zip(first, md.impute(frame, m=2, seed=11)))
    for done in first:
        for c in ("mother_edu", "belong", "depression"):
            kept = frame[c].is_not_null()
            assert done.filter(kept)[c].equals(frame.filter(kept)[c])
            assert set(done[c].unique().to_list()) <= set(frame[c].drop_nulls().unique().to_list())
    scaled = md.multiple_imputation(frame, frame.drop_nulls(), "t", m=5, seed=1)
    gap = (scaled["estimate"] - direct["estimate"]).abs() / direct["std_error"]
    assert gap.max() < 1.5


def test_sorting_from_a_previous_order_sorts_and_keeps_its_ties():
    rng = np.random.default_rng(12)
    yhat = rng.integers(0, 50, 400).astype(float)  # many ties
    previous = rng.permutation(400)
    order = md.observed_order(yhat, previous)
    assert np.array_equal(np.sort(yhat), yhat[order])
    for value in (3.0, 17.0):  # ties stay in the previous permutation's order
        tied = previous[yhat[previous] == value]
        assert np.array_equal(order[yhat[order] == value], tied)
    assert np.array_equal(md.observed_order(yhat), np.argsort(yhat, kind="stable"))
    distinct = rng.normal(size=400)
    mis = rng.normal(size=50)
    a = md.nearest_by_sorting(distinct, mis, 5, md.observed_order(distinct, previous))
    assert [set(r) for r in a] == [set(r) for r in md.nearest_by_distance(distinct, mis, 5)]
