"""The fast wild cluster bootstrap is the wild cluster bootstrap, also with many schools.

At a provincial bureau's scale (thousands of schools) the sign patterns are drawn, not
enumerated, and the statistics come from per-cluster sums, the Frisch-Waugh-Lovell form of
the restricted residuals and one product with the patterns. A slip in that algebra would
change p-values silently, so they are checked here against refitting every drawn pattern
with numpy, the bootstrap by its definition.
"""

import numpy as np
import polars as pl
import pytest

from lbc_pipeline_tests.helpers import random_analytic_sample
from lbc_pipeline.lib.marts import models


def refit_wild_t(y, X, clusters, column, weights):
    """Observed and bootstrap cluster-robust t of `column`, refitting each pattern (WCR)."""
    n, k = X.shape
    groups = np.unique(clusters)
    restricted = np.delete(X, column, axis=1)
    fitted = restricted @ np.linalg.lstsq(restricted, y, rcond=None)[0]
    residuals = y - fitted
    bread = np.linalg.inv(X.T @ X)
    correction = len(groups) / (len(groups) - 1) * (n - 1) / (n - k)

    def t_stat(outcome):
        beta = bread @ X.T @ outcome
        e = outcome - X @ beta
        meat = sum(np.outer(s, s) for s in (X[clusters == g].T @ e[clusters == g] for g in groups))
        return beta[column] / np.sqrt((bread @ meat @ bread)[column, column] * correction)

    observed = t_stat(y)
    boot = np.array([t_stat(fitted + weights[clusters, b] * residuals) for b in range(weights.shape[1])])
    return observed, boot


@pytest.mark.parametrize(
    "n_schools, column",
    [
        (12, 0),  # drawn patterns (more than 10 schools), a migration dummy
        (12, 3),  # drawn patterns, the constant (its null model has no intercept)
        (5, 1),  # enumerated patterns (32) with an odd number of schools
    ],
)
def test_bootstrap_p_equals_refitting_every_pattern(monkeypatch, n_schools, column):
    sample = random_analytic_sample(300, 5, n_schools=n_schools)
    spec = next(s for s in models.model_specs("as_published") if (s.table_no, s.model_no) == (2, 1))
    y, X = models.design_matrix(sample, spec)
    clusters = models.cluster_codes(sample)
    weights, enumerated = models.rademacher_weights(n_schools)
    assert enumerated == (n_schools <= models.WILD_BOOTSTRAP_ENUMERATE_MAX_CLUSTERS)
    if not enumerated:  # refitting 9,999 patterns is slow: the same algebra on the first 400
        weights = weights[:, :400]
        monkeypatch.setattr(models, "rademacher_weights", lambda g: (weights, False))
    p_fast, n_patterns, _ = models.wild_cluster_bootstrap_p(y, X, clusters, column)
    observed, boot = refit_wild_t(y, X, clusters, column, weights)
    assert n_patterns == weights.shape[1]
    assert p_fast == pytest.approx(np.mean(np.abs(boot) >= abs(observed) - 1e-9))


def test_cluster_hessians_are_each_schools_cross_products():
    sample = random_analytic_sample(120, 9, n_schools=6)
    spec = next(s for s in models.model_specs("as_published") if (s.table_no, s.model_no) == (3, 1))
    _, X = models.design_matrix(sample, spec)
    clusters = models.cluster_codes(sample)
    H = models.cluster_hessians(models.cluster_design(X, clusters))
    for g in range(6):
        np.testing.assert_allclose(H[g], X[clusters == g].T @ X[clusters == g], rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize(
    "schools, codes",
    [
        (["S3", "S1", "S3", "S2"], [2, 0, 2, 1]),  # codes are positions among the sorted ids
        (["B", "A"], [1, 0]),  # not the order in which schools first appear
        (["S10", "S9"], [0, 1]),  # text order, not numeric order
    ],
)
def test_cluster_codes_follow_the_sorted_school_ids(schools, codes):
    assert models.cluster_codes(pl.DataFrame({"school_id": schools})).tolist() == codes


def test_group_codes_are_numpys_unique_codes_of_the_labels_as_strings():
    rng = np.random.default_rng(3)
    labels = ["S1", "S10", "S2", "s1", "S1/10", "S1/2", "", "Ä-1", "학교-3", "z"]
    for values in (pl.Series("class_key", rng.choice(labels, 5000)), pl.Series("school_id", rng.integers(0, 40, 5000))):
        expected = np.unique(values.cast(pl.String).to_numpy(), return_inverse=True)[1]
        got = models.group_codes(values)
        assert got.dtype == np.int64 and np.array_equal(got, expected)


def test_group_codes_refuse_a_missing_label():
    with pytest.raises(ValueError, match="class_key: 1 rows without a value"):
        models.group_codes(pl.Series("class_key", ["a", None, "b"]))
