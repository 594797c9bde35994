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
