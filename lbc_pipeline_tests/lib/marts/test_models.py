"""The regression models are the paper's findings: if a coefficient or a standard error
is computed differently from the textbook formula, or a moderator is coded differently
from the published tables, every downstream table and verdict is wrong without any error
being raised. These tests check the fits against independent numpy formulas and pin
the coding of each model.
"""

import itertools
import json

import numpy as np
import polars as pl
import pytest

from lbc_pipeline.lib import contracts
from lbc_pipeline_tests.helpers import random_analytic_sample
from scipy import stats

from lbc_pipeline.lib.marts import models

def random_sample(n: int = 240, seed: int = 7, n_schools: int = 4) -> pl.DataFrame:
    """An analysis sample whose outcome depends on the terms, with heteroskedastic noise,
    so that the three SE types differ."""
    frame = random_analytic_sample(n, seed, n_schools=n_schools)
    rng = np.random.default_rng(seed + 1)
    belong = frame["belong"].to_numpy()
    mother = frame["mother_away"].to_numpy()
    noise = rng.normal(scale=1 + belong, size=n)
    return frame.with_columns(
        depression=(12 + 2 * mother - 1.5 * (belong - 4) - mother * (belong - 4) + noise)
        .round()
        .clip(6, 30)
        .astype(np.int64)
    )


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    return random_sample()


@pytest.fixture(scope="module")
def fitted(sample):
    return models.model_frames(models.fit_every_model(sample, "t"), "t")


def spec_of(specification: str, table_no: int, model_no: int) -> models.ModelSpec:
    return next(
        s for s in models.model_specs(specification) if (s.table_no, s.model_no) == (table_no, model_no)
    )


def test_model_specs_list_the_papers_fourteen_models():
    specs = models.model_specs("as_published")
    assert [(s.table_no, s.model_no) for s in specs] == [(2, 1), (2, 2)] + [
        (t, m) for t in (3, 4) for m in range(1, 7)
    ]
    assert [s.moderator for s in specs if s.table_no == 3] == list(models.MODERATORS)
    assert spec_of("as_published", 2, 1).terms == ("mother_away", "father_away", "both_away", "const")
    assert spec_of("as_published", 4, 1).terms == (
        "mother_away", "father_away", "both_away",
        "girl", "age", "grade", "siblings", "korean", "mother_edu", "father_edu",
        "belong", "mother_away:belong", "father_away:belong", "both_away:belong",
        "const",
    )  # fmt: skip
    assert all(models.CONTROL_TERMS[0] in s.terms for s in specs if (s.table_no, s.model_no) != (2, 1))


@pytest.mark.parametrize(
    "specification, table_no, model_no, centred",
    [
        # The published Table 4 Model 1 enters school belonging raw (1-5).
        ("as_published", 4, 1, False),
        # Table 4 Models 2-6 centre their measure in the published tables.
        ("as_published", 4, 2, True),
        ("as_published", 4, 6, True),
        # Table 3 Model 1 centres belonging even though Table 4 Model 1 does not.
        ("as_published", 3, 1, True),
        # The harmonised specification centres every measure, belonging in Table 4 too.
        ("harmonised", 4, 1, True),
        ("harmonised", 3, 4, True),
    ],
)
def test_centring_follows_the_specification(sample, specification, table_no, model_no, centred):
    spec = spec_of(specification, table_no, model_no)
    assert spec.centre_moderator is centred
    _, X = models.design_matrix(sample, spec)
    raw = sample[spec.moderator].cast(pl.Float64).to_numpy()
    column = X[:, spec.terms.index(spec.moderator)]
    expected = raw - raw.mean() if centred else raw
    np.testing.assert_allclose(column, expected, atol=1e-12)
    interaction = X[:, spec.terms.index(f"mother_away:{spec.moderator}")] if spec.interactions else None
    if interaction is not None:
        np.testing.assert_allclose(interaction, sample["mother_away"].to_numpy() * expected, atol=1e-12)


def test_a_design_built_in_a_buffer_is_the_same_matrix_and_the_same_fit(sample, monkeypatch):
    monkeypatch.setattr(models, "DESIGN_FILL_ROWS", 7)  # several blocks, the last one short
    specs = [spec for specification in models.SPECIFICATIONS for spec in models.model_specs(specification)]
    buffer = np.full(sample.height * max(len(spec.terms) for spec in specs), np.nan)
    for spec in specs:
        y, X = models.design_matrix(sample, spec)
        y_b, X_b = models.design_matrix(sample, spec, buffer)
        assert X_b.shape == X.shape and X_b.flags.c_contiguous and np.shares_memory(X_b, buffer)
        assert X_b.tobytes() == X.tobytes() and y_b.tobytes() == y.tobytes()
        assert np.linalg.lstsq(X_b, y_b, rcond=None)[0].tobytes() == np.linalg.lstsq(X, y, rcond=None)[0].tobytes()
    with pytest.raises(ValueError):  # a buffer too small is refused, not overrun
        models.design_matrix(sample, specs[0], np.empty(sample.height))


def test_unknown_specification_is_refused():
    with pytest.raises(ValueError, match="unknown specification"):
        models.model_specs("centred_everywhere")


@pytest.mark.parametrize(
    "table_no, model_no",
    [
        (2, 1),  # migration dummies only
        (2, 2),  # with the controls
        (3, 2),  # a continuous, centred moderator (teacher's attitude)
        (4, 1),  # raw moderator with interactions
        (4, 5),  # centred moderator with interactions
    ],
)
def test_ols_estimates_and_conventional_se_match_numpy(sample, table_no, model_no):
    spec = spec_of("as_published", table_no, model_no)
    y, X = models.design_matrix(sample, spec)
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    residuals = y - X @ beta
    n, k = X.shape
    sigma2 = residuals @ residuals / (n - k)
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(X.T @ X)))
    rows = models.fit_model(sample, spec).coefficients.filter(pl.col("se_type") == "nonrobust")
    assert rows["term"].to_list() == list(spec.terms)
    np.testing.assert_allclose(rows["estimate"].to_numpy(), beta, rtol=0, atol=1e-8)
    np.testing.assert_allclose(rows["std_error"].to_numpy(), se, rtol=0, atol=1e-8)


def test_hc3_matches_the_textbook_sandwich(sample):
    spec = spec_of("as_published", 4, 4)
    y, X = models.design_matrix(sample, spec)
    bread = np.linalg.inv(X.T @ X)
    residuals = y - X @ (bread @ X.T @ y)
    leverage = np.einsum("ij,jk,ik->i", X, bread, X)
    meat = X.T @ np.diag(residuals**2 / (1 - leverage) ** 2) @ X
    se = np.sqrt(np.diag(bread @ meat @ bread))
    rows = models.fit_model(sample, spec).coefficients.filter(pl.col("se_type") == "HC3")
    np.testing.assert_allclose(rows["std_error"].to_numpy(), se, rtol=0, atol=1e-8)


def test_cluster_se_is_cr1_by_school(sample):
    spec = spec_of("as_published", 3, 1)
    y, X = models.design_matrix(sample, spec)
    bread = np.linalg.inv(X.T @ X)
    residuals = y - X @ (bread @ X.T @ y)
    schools = sample["school_id"].to_numpy()
    meat = sum(
        np.outer(X[schools == g].T @ residuals[schools == g], X[schools == g].T @ residuals[schools == g])
        for g in np.unique(schools)
    )
    n, k = X.shape
    g = len(np.unique(schools))
    se = np.sqrt(np.diag(bread @ meat @ bread) * g / (g - 1) * (n - 1) / (n - k))
    rows = models.fit_model(sample, spec).coefficients.filter(pl.col("se_type") == "cluster_school")
    np.testing.assert_allclose(rows["std_error"].to_numpy(), se, rtol=0, atol=1e-8)


@pytest.mark.parametrize(
    "se_type, df_of",
    [
        # Conventional and HC3 inference use t with the residual degrees of freedom.
        ("nonrobust", lambda n, k, g: n - k),
        ("HC3", lambda n, k, g: n - k),
        # Clustered inference uses t with G - 1 = 3 degrees of freedom.
        ("cluster_school", lambda n, k, g: g - 1),
    ],
)
def test_p_values_and_intervals_use_the_t_distribution(sample, se_type, df_of):
    spec = spec_of("as_published", 4, 3)
    rows = models.fit_model(sample, spec).coefficients.filter(pl.col("se_type") == se_type)
    df = df_of(sample.height, len(spec.terms), sample["school_id"].n_unique())
    t = rows["estimate"].to_numpy() / rows["std_error"].to_numpy()
    np.testing.assert_allclose(rows["t_value"].to_numpy(), t, rtol=1e-10)
    np.testing.assert_allclose(rows["p_value"].to_numpy(), 2 * stats.t.sf(np.abs(t), df), rtol=1e-8, atol=1e-14)
    half = stats.t.ppf(0.975, df) * rows["std_error"].to_numpy()
    np.testing.assert_allclose(rows["ci_low"].to_numpy(), rows["estimate"].to_numpy() - half, rtol=1e-10)
    np.testing.assert_allclose(rows["ci_high"].to_numpy(), rows["estimate"].to_numpy() + half, rtol=1e-10)


def brute_force_wild_p(y, X, clusters, column):
    """Refit every sign pattern with numpy: the WCR bootstrap-t by its definition."""
    n, k = X.shape
    groups = np.unique(clusters)
    restricted = np.delete(X, column, axis=1)
    fitted = restricted @ np.linalg.lstsq(restricted, y, rcond=None)[0]
    residuals = y - fitted
    bread = np.linalg.inv(X.T @ X)

    def t_stat(outcome):
        beta = bread @ X.T @ outcome
        e = outcome - X @ beta
        scores = [X[clusters == g].T @ e[clusters == g] for g in groups]
        meat = sum(np.outer(score, score) for score in scores)
        var = (bread @ meat @ bread)[column, column] * len(groups) / (len(groups) - 1) * (n - 1) / (n - k)
        return beta[column] / np.sqrt(var)

    t_observed = t_stat(y)
    t_boot = [
        t_stat(fitted + np.array(signs)[np.searchsorted(groups, clusters)] * residuals)
        for signs in itertools.product((1.0, -1.0), repeat=len(groups))
    ]
    return np.mean(np.abs(t_boot) >= abs(t_observed) - 1e-9)


@pytest.mark.parametrize(
    "term",
    [
        "mother_away:belong",  # the H1 interaction
        "belong",  # a strong main effect: the smallest attainable p
        "const",  # the null model for the constant drops the intercept
    ],
)
def test_wild_bootstrap_matches_refitting_every_sign_pattern(sample, term):
    spec = spec_of("as_published", 4, 1)
    y, X = models.design_matrix(sample, spec)
    clusters = models.cluster_codes(sample)
    p_value, n_patterns, enumerated = models.wild_cluster_bootstrap_p(y, X, clusters, spec.terms.index(term))
    assert (n_patterns, enumerated) == (16, True)
    assert p_value == pytest.approx(brute_force_wild_p(y, X, clusters, spec.terms.index(term)))


def test_wild_bootstrap_p_with_four_schools_is_a_multiple_of_one_sixteenth(fitted):
    coefficients, _ = fitted
    cluster = coefficients.filter(pl.col("se_type") == "cluster_school")
    p = cluster["wild_bootstrap_p"].to_numpy()
    np.testing.assert_allclose(p * 16, np.round(p * 16))
    # Each pattern and its mirror give the same |t|: 2/16 is the floor.
    assert p.min() >= 2 / 16
    assert cluster["note"].str.contains("all 16 sign patterns of 4 clusters enumerated").all()
    others = coefficients.filter(pl.col("se_type") != "cluster_school")
    assert others["wild_bootstrap_p"].is_null().all()


def test_wild_bootstrap_draws_with_a_fixed_seed_when_clusters_are_many():
    many = random_sample(n=260, seed=3, n_schools=12)
    spec = spec_of("as_published", 2, 1)
    y, X = models.design_matrix(many, spec)
    clusters = models.cluster_codes(many)
    first = models.wild_cluster_bootstrap_p(y, X, clusters, 0)
    second = models.wild_cluster_bootstrap_p(y, X, clusters, 0)
    assert first == second
    assert first[1:] == (models.WILD_BOOTSTRAP_DRAWS, False)
    note = models.fit_model(many, spec).coefficients.filter(pl.col("se_type") == "cluster_school")["note"][0]
    assert f"seed {models.WILD_BOOTSTRAP_SEED}" in note


@pytest.mark.parametrize(
    "p_value, stars",
    [
        (0.0009, "***"),  # below 0.001
        (0.001, "**"),  # exactly at the cut-off is not below it (the borderline Table 4 Model 5 star)
        (0.0099, "**"),
        (0.01, "*"),
        (0.0499, "*"),
        (0.05, ""),  # not significant at 0.05
        (0.7, ""),
    ],
)
def test_significance_stars(p_value, stars):
    assert models.significance_stars(p_value) == stars


def test_fit_all_builds_the_marts(sample, fitted):
    coefficients, fit = fitted
    assert coefficients.columns == list(contracts.dtypes("marts.model_coefficients"))
    assert fit.columns == list(contracts.dtypes("marts.model_fit"))
    n_terms = sum(len(s.terms) for spec in models.SPECIFICATIONS for s in models.model_specs(spec))
    assert coefficients.height == n_terms * len(models.SE_TYPES)
    assert fit.height == 28
    assert (fit["n_obs"] == sample.height).all()
    assert coefficients["wave"].unique().to_list() == ["t"]
    # Table 2 has no moderator, so no centring to report.
    assert fit.filter(pl.col("table_no") == 2)["centred"].is_null().all()
    assert fit.filter(table_no=4, model_no=1, specification="as_published")["centred"].item() is False
    stars = coefficients.select(
        pl.col("stars"), pl.col("p_value").map_elements(models.significance_stars, return_dtype=pl.String)
    )
    assert (stars["stars"] == stars["p_value"]).all()
    assert (coefficients["ci_low"] < coefficients["estimate"]).all()
    assert (coefficients["estimate"] < coefficients["ci_high"]).all()


def test_centring_moves_main_effects_not_interactions(fitted):
    coefficients, _ = fitted
    rows = coefficients.filter(table_no=4, model_no=1, se_type="nonrobust")
    published = dict(rows.filter(specification="as_published").select("term", "estimate").iter_rows())
    harmonised = dict(rows.filter(specification="harmonised").select("term", "estimate").iter_rows())
    for term in ("mother_away:belong", "father_away:belong", "both_away:belong", "belong", "girl"):
        assert published[term] == pytest.approx(harmonised[term], abs=1e-9)
    assert published["mother_away"] != pytest.approx(harmonised["mother_away"], abs=1e-6)


@pytest.mark.parametrize(
    "make_bad, message",
    [
        # A frame holding another wave's children must not be fitted as this wave.
        (lambda s: s.with_columns(wave=pl.lit("other")), "also holds waves"),
        # An empty sample has nothing to fit.
        (lambda s: s.head(0), "is empty"),
        # Without a child whose mother alone is away, mother_away cannot be estimated.
        (lambda s: s.with_columns(mother_away=pl.lit(0)), r"without variation: \['mother_away'"),
        # One school leaves nothing to cluster on.
        (lambda s: s.with_columns(school_id=pl.lit("S1")), "at least two schools"),
    ],
)
@pytest.mark.parametrize("workers", [1, 2])  # in-line, and the forked path of a large wave
def test_fit_all_refuses_a_wrong_sample(sample, make_bad, message, workers):
    with pytest.raises(ValueError, match=message):
        models.model_frames(models.fit_every_model(make_bad(sample), "t", workers=workers), "t")


def test_sample_sha256_ignores_order_but_not_values(sample):
    digest = models.sample_sha256(sample)
    shuffled = sample.sample(fraction=1.0, shuffle=True, seed=1).select(list(reversed(sample.columns)))
    assert models.sample_sha256(shuffled) == digest
    first_row = pl.int_range(pl.len()) == 0
    changed = sample.with_columns(
        depression=pl.when(first_row).then(pl.col("depression") + 1).otherwise(pl.col("depression"))
    )
    assert models.sample_sha256(changed) != digest


def test_model_artifact_is_json_and_complete(sample):
    spec = spec_of("as_published", 4, 1)
    fitted = models.fit_model(sample, spec)
    artifact = json.loads(json.dumps(models.model_artifact(fitted, spec, models.sample_sha256(sample), "9.9.9")))
    k = len(spec.terms)
    assert artifact["terms"] == list(spec.terms)
    assert set(artifact["covariance"]) == set(models.SE_TYPES)
    assert all(np.array(c).shape == (k, k) for c in artifact["covariance"].values())
    assert len(artifact["coefficients"]) == k * len(models.SE_TYPES)
    assert artifact["spec"]["centre_moderator"] is False
    assert artifact["moderator_mean"] is None
    assert artifact["package_version"] == "9.9.9"
    assert artifact["statsmodels_version"]
    assert artifact["n_obs"] == sample.height
    assert artifact["sample_sha256"] == models.sample_sha256(sample)


def test_bootstrap_on_forked_workers_gives_the_same_models_as_in_line():
    sample = random_analytic_sample(300, 17, n_schools=7)
    forked_fits = models.fit_every_model(sample, "t", workers=3)
    serial_fits = models.fit_every_model(sample, "t", workers=1)
    forked = models.model_frames(forked_fits, "t")
    serial = models.model_frames(serial_fits, "t")
    assert forked[0].equals(serial[0]) and forked[1].equals(serial[1])
    for a, b in zip(forked_fits, serial_fits):  # the artifacts' numbers too
        assert a.spec == b.spec and a.moderator_mean == b.moderator_mean
        assert all(a.covariances[se].tobytes() == b.covariances[se].tobytes() for se in models.SE_TYPES)


def test_design_from_columns_is_design_matrix(sample):
    specs = [spec for specification in models.SPECIFICATIONS for spec in models.model_specs(specification)]
    columns = models.design_columns(sample, specs)
    assert models.OUTCOME in columns and "school_id" not in columns  # only what the designs read
    for spec in specs:
        y, X = models.design_matrix(sample, spec)
        y_c, X_c = models.design_from_columns(columns.__getitem__, sample.height, spec)
        assert X_c.tobytes() == X.tobytes() and y_c.tobytes() == y.tobytes()
