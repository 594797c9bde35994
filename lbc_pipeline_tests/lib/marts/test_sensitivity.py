"""With four schools and 27 classes, whether the buffering findings survive clustering is
the question a referee asks first. These tests pin the clustering analyses to independent
computations: a brute-force wild bootstrap that refits every bootstrap sample, the
within-school (demeaned) estimator for school fixed effects, and the ANOVA estimator of
the intra-class correlation on balanced data (equal to REML there).
"""

import itertools

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
    clusters = sensitivity.codes(sample["school_id"])
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
