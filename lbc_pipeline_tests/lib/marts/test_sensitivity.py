"""With four schools and 27 classes, whether the buffering findings survive clustering is
the question a referee asks first. These tests pin the clustering analyses to independent
computations: a brute-force wild bootstrap that refits every bootstrap sample, the
within-school (demeaned) estimator for school fixed effects, and the ANOVA estimator of
the intra-class correlation on balanced data (equal to REML there).
"""


import numpy as np
import pandera.errors
import polars as pl
import pytest
from statsmodels.regression.linear_model import OLS

from lbc_pipeline.lib.marts import models, sensitivity
from lbc_pipeline_tests.helpers import random_analytic_sample


def clustered_sample(n: int = 240, seed: int = 21, mother_effect: float = 3.0, class_sd: float = 0.0) -> pl.DataFrame:
    frame = random_analytic_sample(n, seed)
    rng = np.random.default_rng(seed + 1)
    classes = rng.integers(0, 3, n)
    class_key = [f"{s}/{c}" for s, c in zip(frame["school_id"], classes)]
    keys = sorted(set(class_key))
    shift = dict(zip(keys, rng.normal(scale=class_sd, size=len(keys)))) if class_sd else {}
    y = (12 + mother_effect * frame["mother_away"].to_numpy() - 0.8 * frame["belong"].to_numpy()
         + np.array([shift.get(k, 0.0) for k in class_key]) + rng.normal(scale=3, size=n))
    return frame.with_columns(depression=np.clip(np.round(y), 6, 30).astype(np.int64),
                              class_key=pl.Series(class_key))


def test_webb_weights_have_mean_zero_and_variance_one_and_are_all_enumerated():
    weights, enumerated = sensitivity.webb_weights(4)
    assert enumerated and weights.shape == (4, 6**4)
    assert np.allclose(weights.mean(axis=1), 0) and np.allclose((weights**2).mean(axis=1), 1)
    assert len({tuple(c) for c in weights.T}) == 1296


def test_webb_weights_are_drawn_with_a_seed_above_the_enumeration_limit():
    a, enumerated = sensitivity.webb_weights(8)
    b, _ = sensitivity.webb_weights(8)
    assert not enumerated and a.shape == (8, sensitivity.BOOTSTRAP_DRAWS) and np.array_equal(a, b)


def brute_force_wild_p(y, X, clusters, column, weights) -> float:
    """Refit every bootstrap sample with statsmodels (CR1 cluster SEs) and count |t*| >= |t|."""
    restricted = np.delete(X, column, axis=1)
    fitted_r = OLS(y, restricted).fit().fittedvalues
    u = y - fitted_r
    t_obs = OLS(y, X).fit().get_robustcov_results(cov_type="cluster", groups=clusters).tvalues[column]
    t_boot = []
    for w in weights.T:
        y_star = fitted_r + w[clusters] * u
        res = OLS(y_star, X).fit().get_robustcov_results(cov_type="cluster", groups=clusters)
        t_boot.append(res.tvalues[column])
    return float(np.mean(np.abs(t_boot) >= abs(t_obs) - 1e-10))


@pytest.mark.parametrize("kind", ["rademacher", "webb"])  # both weight sets, every pattern refitted
def test_wild_bootstrap_p_equals_a_brute_force_refit_of_every_pattern(kind):
    sample = clustered_sample(120, seed=4)
    spec = sensitivity.focal_specs()[0]  # Table 2 Model 2
    y, X = models.design_matrix(sample, spec)
    clusters = models.group_codes(sample["school_id"])
    weights = (models.rademacher_weights(4) if kind == "rademacher" else sensitivity.webb_weights(4))[0]
    if kind == "webb":
        weights = weights[:, ::7]  # every 7th pattern keeps the refit loop short
    p = sensitivity.wild_bootstrap_p(y, X, clusters, 0, weights)
    assert p == pytest.approx(brute_force_wild_p(y, X, clusters, 0, weights), abs=1e-12)


def test_rademacher_cannot_reject_with_four_schools_but_webb_can():
    sample = clustered_sample(400, seed=9, mother_effect=9.0)
    rows = pl.DataFrame(sensitivity.wild_bootstrap_rows(sample, sensitivity.focal_specs()[0], "t"))
    p = dict(rows.filter(pl.col("term") == "mother_away").select("analysis", "p_value").iter_rows())
    assert p["wild_rademacher"] == 0.125  # 2 of 16 sign patterns reproduce |t|: the floor
    assert 6 / 1296 <= p["wild_webb"] < 0.05


def test_school_fixed_effects_equal_the_within_school_estimator():
    sample = clustered_sample()
    spec = sensitivity.focal_specs()[0]
    rows = pl.DataFrame(sensitivity.school_fixed_effects(sample, spec, "t")).filter(pl.col("analysis") == "school_fe")
    y, X = models.design_matrix(sample, spec)
    y = y.copy()
    X = X[:, [j for j, t in enumerate(spec.terms) if t != models.CONST]]
    schools = sample["school_id"].to_numpy()
    for s in np.unique(schools):  # demean within school (Frisch-Waugh-Lovell)
        y[schools == s] -= y[schools == s].mean()
        X[schools == s] -= X[schools == s].mean(axis=0)
    within = np.linalg.lstsq(X, y, rcond=None)[0]
    got = dict(rows.select("term", "estimate").iter_rows())
    for j, term in enumerate(t for t in spec.terms if t != models.CONST):
        assert got[term] == pytest.approx(within[j], abs=1e-9)


def test_school_fixed_effects_leave_out_a_term_constant_within_schools():
    sample = clustered_sample()
    sample = sample.with_columns(korean=(pl.col("school_id") == "S1").cast(pl.Int64))  # a school trait
    rows = pl.DataFrame(sensitivity.school_fixed_effects(sample, sensitivity.focal_specs()[0], "t"))
    assert "korean" not in rows["term"].to_list() and "mother_away" in rows["term"].to_list()
    assert rows["note"].str.contains("left out \\(constant within schools\\): korean").all()


def test_empty_model_icc_equals_the_anova_estimator_on_balanced_classes():
    rng = np.random.default_rng(5)
    n_classes, size = 30, 20
    shift = rng.normal(scale=2.0, size=n_classes)
    y = np.repeat(shift, size) + rng.normal(scale=4.0, size=n_classes * size) + 15
    sample = pl.DataFrame({"depression": y, "class_key": [f"c{i:02d}" for i in np.repeat(np.arange(n_classes), size)]})
    row = sensitivity.empty_model_icc(sample, "t")
    groups = y.reshape(n_classes, size)
    msb = size * ((groups.mean(axis=1) - y.mean()) ** 2).sum() / (n_classes - 1)
    msw = ((groups - groups.mean(axis=1, keepdims=True)) ** 2).sum() / (n_classes * (size - 1))
    assert row["class_variance"] == pytest.approx((msb - msw) / size, rel=1e-4)
    assert row["residual_variance"] == pytest.approx(msw, rel=1e-4)
    assert row["icc"] == pytest.approx((msb - msw) / (msb + (size - 1) * msw), rel=1e-4)


def test_multilevel_with_no_class_variance_gives_the_ols_estimates():
    # the synthetic reference wave has no class effect: the fit must land on OLS, not stop early
    sample = clustered_sample(300, seed=13)
    spec = sensitivity.focal_specs()[0]
    rows, icc = sensitivity.multilevel_rows(sample, spec, "t")
    y, X = models.design_matrix(sample, spec)
    ols = np.linalg.lstsq(X, y, rcond=None)[0]
    if icc["class_variance"] < 1e-6:
        assert [r["estimate"] for r in rows] == pytest.approx(ols, abs=1e-4)
    else:  # GLS moves the estimates only a little when the variance is small
        assert icc["icc"] < 0.05


def test_clustering_sensitivity_needs_the_class_column_and_validates_its_output():
    sample = clustered_sample()
    with pytest.raises(ValueError, match="class_key"):
        sensitivity.clustering_sensitivity(sample.drop("class_key"), "t")
    frame, icc = sensitivity.clustering_sensitivity(sample, "t")
    assert set(frame["analysis"]) == set(sensitivity.ANALYSES)
    with pytest.raises(pandera.errors.SchemaError):
        sensitivity.ICC_CONTRACT.validate(icc.with_columns(icc=pl.lit(1.5)))


def test_forked_numeric_work_gives_the_same_tables_as_one_process(monkeypatch):
    sample = clustered_sample(240, seed=31)
    forked = sensitivity.clustering_sensitivity(sample, "t")
    monkeypatch.setenv("LBC_WORKERS", "1")
    serial = sensitivity.clustering_sensitivity(sample, "t")
    assert forked[0].equals(serial[0]) and forked[1].equals(serial[1])


# ------------------------------------------------------------------ the forms used at scale
def many_school_sample(n=900, n_schools=30, seed=41, class_sd=1.5):
    """Many schools, three classes each, a class effect: the shape of a large wave, small."""
    frame = random_analytic_sample(n, seed, n_schools=n_schools)
    rng = np.random.default_rng(seed)
    class_key = [f"{s}/{c}" for s, c in zip(frame["school_id"], rng.integers(0, 3, n))]
    keys = sorted(set(class_key))
    shift = dict(zip(keys, rng.normal(scale=class_sd, size=len(keys))))
    y = (12 + 2.0 * frame["mother_away"].to_numpy() - 0.8 * frame["belong"].to_numpy()
         + np.array([shift[k] for k in class_key]) + rng.normal(scale=3, size=n))
    return frame.with_columns(depression=y, class_key=pl.Series(class_key))


@pytest.mark.parametrize("spec_index", [0, 3])
def test_school_fixed_effects_by_sums_equal_the_dummy_form(spec_index):
    sample = many_school_sample()
    spec = sensitivity.focal_specs()[spec_index]
    dense = pl.DataFrame(sensitivity.school_fixed_effects(sample, spec, "t"))
    sums = pl.DataFrame(sensitivity.school_fixed_effects_by_sums(sample, spec, "t"))
    assert dense.select("term", "analysis", "n_obs", "n_groups", "note").equals(
        sums.select("term", "analysis", "n_obs", "n_groups", "note"))
    for column in ("estimate", "std_error", "p_value"):
        assert np.allclose(sums[column], dense[column], rtol=1e-8, atol=1e-12), column


def test_school_fixed_effects_by_sums_leave_out_the_same_terms():
    sample = many_school_sample().with_columns(korean=pl.col("school_id").is_in(["S1", "S2"]).cast(pl.Int64))
    spec = sensitivity.focal_specs()[0]
    dense = pl.DataFrame(sensitivity.school_fixed_effects(sample, spec, "t"))
    sums = pl.DataFrame(sensitivity.school_fixed_effects_by_sums(sample, spec, "t"))
    assert "korean" not in sums["term"].to_list() and dense.select("term", "note").equals(sums.select("term", "note"))


@pytest.mark.parametrize("n_schools", [4, 9])
def test_wild_bootstrap_by_sums_equals_the_refitting_form(n_schools):
    sample = many_school_sample(n=400, n_schools=n_schools)
    y, X = models.design_matrix(sample, sensitivity.focal_specs()[1])
    clusters = models.group_codes(sample["school_id"])
    assert sensitivity.wild_bootstrap_ps_by_sums(y, X, clusters) == sensitivity.wild_bootstrap_ps(y, X, clusters)
    beta, se = sensitivity.cr1_standard_errors(y, X, clusters)
    beta2, se2 = sensitivity.cr1_standard_errors_by_sums(y, X, clusters)
    assert np.allclose(beta, beta2, rtol=1e-10) and np.allclose(se, se2, rtol=1e-10)


@pytest.mark.parametrize("class_sd, spec_index", [(1.5, 0), (1.5, 4), (0.0, 0)])
def test_random_intercept_by_sums_equals_mixedlm(class_sd, spec_index):
    sample = many_school_sample(class_sd=class_sd)
    y, X = models.design_matrix(sample, sensitivity.focal_specs()[spec_index])
    groups = models.group_codes(sample["class_key"])
    result, caught = sensitivity.fit_random_intercept(y, X, groups)
    fit = sensitivity.random_intercept_fit_by_sums(y, X, groups)
    between, within, icc = sensitivity.icc(result)
    assert np.allclose(fit.fe_params, result.fe_params, rtol=1e-6, atol=1e-6)
    assert np.allclose(fit.bse_fe, result.bse_fe, rtol=1e-5)
    assert fit.within == pytest.approx(within, rel=1e-6)
    assert fit.between == pytest.approx(between, rel=1e-4, abs=1e-6)
    assert fit.icc == pytest.approx(icc, rel=1e-4, abs=1e-7)
    assert fit.converged and set(fit.warnings) == {w for w in caught if "boundary" in w or "Hessian" in w}


def test_random_intercept_by_sums_on_balanced_classes_is_the_anova_estimator():
    rng = np.random.default_rng(5)
    n_classes, size = 40, 25
    y = np.repeat(rng.normal(scale=2.0, size=n_classes), size) + rng.normal(scale=4.0, size=n_classes * size) + 15
    groups = np.repeat(np.arange(n_classes), size)
    fit = sensitivity.random_intercept_fit_by_sums(y, np.ones((len(y), 1)), groups)
    means = y.reshape(n_classes, size).mean(axis=1)
    msb = size * ((means - y.mean()) ** 2).sum() / (n_classes - 1)
    msw = ((y.reshape(n_classes, size) - means[:, None]) ** 2).sum() / (n_classes * (size - 1))
    assert fit.between == pytest.approx((msb - msw) / size, rel=1e-8)
    assert fit.within == pytest.approx(msw, rel=1e-8)
    # the mean's SE on balanced data: sqrt((between + within / size) / classes)
    assert fit.bse_fe[0] == pytest.approx(np.sqrt((fit.between + fit.within / size) / n_classes), rel=1e-6)


def test_clustering_sensitivity_above_the_direct_limit_uses_the_sums(monkeypatch):
    sample = many_school_sample(n=600, n_schools=12)
    direct = sensitivity.clustering_sensitivity(sample, "t")
    monkeypatch.setattr(sensitivity, "CLUSTER_DIRECT_MAX_ROWS", 100)
    monkeypatch.setattr(sensitivity, "fit_random_intercept", None)  # MixedLM not called
    by_sums = sensitivity.clustering_sensitivity(sample, "t")
    for a, b in zip(direct, by_sums):
        assert a.columns == b.columns and a.height == b.height
        for column, dtype in a.schema.items():
            if dtype == pl.Float64:
                # MixedLM's Powell search stops within ~1e-4 of the REML optimum the sums reach
                assert np.allclose(a[column], b[column], rtol=1e-4, atol=1e-5), column
    wild = pl.col("analysis").str.starts_with("wild")
    assert direct[0].filter(wild)["p_value"].equals(by_sums[0].filter(wild)["p_value"])
    notes = by_sums[0].filter(pl.col("analysis") == "multilevel_class")["note"]
    assert notes.str.contains("per-class sums").all()


@pytest.mark.parametrize("case", ["full", "collinear", "constant", "nearly collinear"])
def test_full_column_rank_from_r_agrees_with_matrix_rank(case):
    rng = np.random.default_rng(9)
    A = rng.normal(size=(3000, 5))
    if case == "collinear":
        A[:, 3] = A[:, 0] - 2 * A[:, 1]
    elif case == "constant":
        A[:, 2] = 0.0
    elif case == "nearly collinear":  # well above matrix_rank's tolerance: full rank both ways
        A[:, 4] = A[:, 0] + 1e-6 * rng.normal(size=3000)
    R = np.linalg.qr(A, mode="r")
    verdicts = []
    for columns in ([0], [0, 1, 2], [0, 1, 2, 3, 4]):
        expected = np.linalg.matrix_rank(A[:, columns]) == len(columns)
        assert sensitivity._full_column_rank(R[:, columns], len(A)) == expected
        verdicts.append(expected)
    assert verdicts[-1] == (case in ("full", "nearly collinear"))  # the cases are what they say
