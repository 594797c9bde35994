"""Simple slopes and Johnson-Neyman regions are what a reader takes from Table 4 ("at low
belonging the mother-away effect is 3 points"); a wrong sign in the delta method or a
centring mix-up would print confident, wrong numbers. Each is checked against an
independent refit: the model with the moderator centred at the point of interest, whose
group coefficient *is* the simple slope there (estimate and SE), fitted with statsmodels.
"""

import numpy as np
import pandera.errors
import polars as pl
import pytest
from scipy import stats
from statsmodels.regression.linear_model import OLS

from lbc_pipeline.lib.marts import moderation
from lbc_pipeline.lib.marts.models import CONTROL_TERMS, MODERATORS
from lbc_pipeline_tests.helpers import random_analytic_sample

GROUP_DUMMIES = {"none": None, "mother": "mother_away", "father": "father_away", "both": "both_away"}


def structured_sample(n: int = 300, seed: int = 11) -> pl.DataFrame:
    """Mother away raises depression, less so with higher belonging; father away does nothing."""
    frame = random_analytic_sample(n, seed)
    rng = np.random.default_rng(seed + 1)
    belong = frame["belong"].to_numpy()
    mother = frame["mother_away"].to_numpy()
    both = frame["both_away"].to_numpy()
    y = 12 + 6 * mother - 1.2 * mother * (belong - 3) + 4 * both - 0.8 * belong + rng.normal(scale=2 + 0.5 * belong, size=n)
    return frame.with_columns(depression=np.clip(np.round(y), 6, 30).astype(np.int64))


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    return structured_sample()


def refit_centred(sample: pl.DataFrame, moderator: str, at: float, reference: str = "none"):
    """Table 4 model refitted by hand with the moderator centred at `at` and the given
    reference group; returns the statsmodels results (nonrobust, HC3) and the column names."""
    m = sample[moderator].cast(pl.Float64).to_numpy() - at
    dummies = [d for g, d in GROUP_DUMMIES.items() if g != reference]
    cols, names = [], []
    for g in (g for g in GROUP_DUMMIES if g != reference):
        d = (sample["migration_group"] == g).cast(pl.Float64).to_numpy()
        cols.append(d)
        names.append(g)
    for c in CONTROL_TERMS:
        cols.append(sample[c].cast(pl.Float64).to_numpy())
        names.append(c)
    cols.append(m)
    names.append("M")
    for g, d in zip(names[: len(dummies)], cols[: len(dummies)]):
        cols.append(d * m)
        names.append(f"{g}:M")
    cols.append(np.ones(sample.height))
    names.append("const")
    X = np.column_stack(cols)
    y = sample["depression"].cast(pl.Float64).to_numpy()
    base = OLS(y, X).fit()
    return {"nonrobust": base, "HC3": base.get_robustcov_results(cov_type="HC3")}, names


@pytest.mark.parametrize("model_no", range(1, 7))  # every Table 4 moderator, raw (Model 1) or centred
def test_simple_slope_equals_group_coefficient_of_model_centred_at_that_value(sample, model_no):
    moderator = MODERATORS[model_no - 1]
    slopes = moderation.simple_slopes(sample, "t").filter(
        (pl.col("model_no") == model_no) & (pl.col("quantity") == "group_effect"))
    values = sample[moderator].cast(pl.Float64).to_numpy()
    assert set(slopes["point"]) >= {"mean_minus_1sd", "mean", "mean_plus_1sd"}
    # discrete moderators also at each observed value; teacher_attitude (continuous) not
    assert ("value" in set(slopes["point"])) == (moderator != "teacher_attitude")
    assert slopes.filter(pl.col("point") == "mean_plus_1sd")["moderator_value"][0] == pytest.approx(
        values.mean() + values.std(ddof=1), abs=1e-12)
    for point in ("mean_minus_1sd", "mean", "mean_plus_1sd"):
        at = slopes.filter(pl.col("point") == point)["moderator_value"][0]
        results, names = refit_centred(sample, moderator, at)
        for se_type, res in results.items():
            for group in ("mother", "father", "both"):
                row = slopes.filter((pl.col("point") == point) & (pl.col("se_type") == se_type)
                                    & (pl.col("migration_group") == group)).row(0, named=True)
                j = names.index(group)
                assert row["estimate"] == pytest.approx(res.params[j], abs=1e-8)
                assert row["std_error"] == pytest.approx(res.bse[j], abs=1e-8)
                assert row["p_value"] == pytest.approx(res.pvalues[j], abs=1e-8)


@pytest.mark.parametrize("group", ["none", "mother", "father", "both"])  # none: the moderator's own term
def test_moderator_slope_within_group_equals_slope_with_that_group_as_reference(sample, group):
    row = moderation.simple_slopes(sample, "t").filter(
        (pl.col("model_no") == 1) & (pl.col("quantity") == "moderator_slope")
        & (pl.col("migration_group") == group) & (pl.col("se_type") == "nonrobust")).row(0, named=True)
    results, names = refit_centred(sample, "belong", 0.0, reference=group)
    j = names.index("M")
    assert row["estimate"] == pytest.approx(results["nonrobust"].params[j], abs=1e-8)
    assert row["std_error"] == pytest.approx(results["nonrobust"].bse[j], abs=1e-8)


@pytest.mark.parametrize("se_type", ["nonrobust", "HC3"])
@pytest.mark.parametrize("model_no", [1, 2])  # belong (raw in the paper), teacher_attitude (continuous)
def test_jn_bound_is_where_refitted_t_equals_the_critical_value(sample, model_no, se_type):
    moderator = MODERATORS[model_no - 1]
    fit = moderation.fit_table4(sample)[model_no - 1]
    crit = stats.t.ppf(0.975, fit.df_resid)
    found = 0
    for group in ("mother", "father", "both"):
        for bound in moderation.jn_bounds(fit, group, se_type):
            results, names = refit_centred(sample, moderator, bound)
            assert abs(results[se_type].tvalues[names.index(group)]) == pytest.approx(crit, rel=1e-8)
            found += 1
    assert found > 0  # the structured sample gives the mother-away effect at least one bound


def test_jn_regions_tile_the_observed_range_and_count_every_child(sample):
    jn = moderation.johnson_neyman(sample, "t")
    for (model_no, group, se_type), part in jn.group_by(["model_no", "migration_group", "se_type"]):
        part = part.sort("region_order")
        assert part["low"][0] == part["observed_min"][0] and part["high"][-1] == part["observed_max"][0]
        assert part["low"][1:].to_list() == part["high"][:-1].to_list()
        assert part["n_children"].sum() == sample.height
        # adjacent regions differ in significance or in sign
        flips = list(zip(part["significant"], part["effect_sign"]))
        assert all(a != b for a, b in zip(flips, flips[1:]))


def test_jn_verdicts_everywhere_for_a_large_constant_effect_none_for_no_effect():
    rng = np.random.default_rng(3)
    frame = random_analytic_sample(400, 5)
    mother = frame["mother_away"].to_numpy()
    y = 12 + 9 * mother + rng.normal(scale=1.5, size=400)  # father/both: no effect
    frame = frame.with_columns(depression=np.clip(np.round(y), 6, 30).astype(np.int64))
    jn = moderation.johnson_neyman(frame, "t").filter((pl.col("model_no") == 1) & (pl.col("se_type") == "nonrobust"))
    verdict = dict(jn.select("migration_group", "verdict").unique().iter_rows())
    assert verdict["mother"] == "everywhere"
    assert verdict["father"] == "none"
    sig = jn.filter(pl.col("migration_group") == "mother").row(0, named=True)
    assert sig["share_children"] == 1.0 and sig["effect_sign"] == "positive"


def test_contract_refuses_a_p_value_above_one(sample):
    frame = moderation.simple_slopes(sample, "t").with_columns(p_value=pl.lit(1.5))
    with pytest.raises(pandera.errors.SchemaError):
        moderation.SIMPLE_SLOPES_CONTRACT.validate(frame)


def test_prediction_lines_difference_between_groups_is_the_simple_slope(sample):
    fit = moderation.fit_table4(sample)[0]
    lines = moderation.prediction_lines(fit, points=5)
    v = lines["moderator_value"].unique().sort()[2]
    at = lines.filter(pl.col("moderator_value") == v)
    gap = at.filter(pl.col("migration_group") == "mother")["predicted"][0] - at.filter(pl.col("migration_group") == "none")["predicted"][0]
    results, names = refit_centred(sample, "belong", v)
    assert gap == pytest.approx(results["nonrobust"].params[names.index("mother")], abs=1e-8)


def test_group_effect_gradients_are_the_gradients_at_each_value():
    from lbc_pipeline_tests.helpers import random_analytic_sample

    fit = moderation.fit_table4(random_analytic_sample(200, 3))[0]
    values = np.array([1.0, 2.5, 3.0, -1.0])
    for group in moderation.GROUP_TERMS:
        expected = np.stack([moderation.group_effect_gradient(fit, group, v) for v in values])
        assert np.array_equal(moderation.group_effect_gradients(fit, group, values), expected)
