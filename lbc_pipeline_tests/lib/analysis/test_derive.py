"""Derived measures: each rule of the instrument, a hand-made row per case.

The migration group decides which children are "left behind"; a wrong branch here moves
children between the paper's groups without any error, so every branch is pinned.
"""

import numpy as np
import polars as pl
import pytest

from lbc_pipeline_tests.rows import valid_row, varied_rows
from lbc_pipeline_tests.helpers import stage
from lbc_pipeline.lib.analysis.derive import cronbach_alpha, derive_measures, fit_one_factor, scale_reliability


def measures(**overrides) -> dict:
    return derive_measures(stage([valid_row(**overrides)]).questionnaires).row(0, named=True)


@pytest.mark.parametrize(
    ("survey_date", "birth_year", "birth_month", "age"),
    [
        ("2019-12-10", "2006", "5", 13),  # birthday month passed
        ("2019-12-10", "2006", "12", 12),  # same month, before the 15th: not yet
        ("2019-12-15", "2006", "12", 13),  # on the 15th: birthday reached
        ("2020-01-20", "2006", "12", 13),  # next calendar year
    ],
)
def test_age_in_completed_years_birth_day_15(survey_date, birth_year, birth_month, age):
    assert measures(survey_date=survey_date, birth_year=birth_year, birth_month=birth_month)["age"] == age


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"birth_year": "-9"}, "birth_date_missing"),  # refused year
        ({"birth_month": None}, "birth_date_missing"),  # empty month
        ({"survey_date": "2019-13-01"}, "date_missing"),  # unreadable date leaves age unknown
        ({"birth_year": "2021"}, "birth_after_survey"),  # born after the survey: keying error
    ],
)
def test_age_missing_with_reason(overrides, reason):
    row = measures(**overrides)
    assert row["age"] is None and row["age_missing_reason"] == reason


def test_depression_is_the_sum_of_six_items():
    assert measures(dep1="5", dep2="5", dep3="5", dep4="5", dep5="5", dep6="5")["depression"] == 30
    assert measures()["depression"] == 11


@pytest.mark.parametrize("item", ["dep1", "dep6"])
def test_depression_missing_if_any_item_missing(item):
    assert measures(**{item: "-8"})["depression"] is None


@pytest.mark.parametrize(
    ("overrides", "group", "reason"),
    [
        # Q1 = no, durations not applicable: nobody away
        ({"parent_away": "2", "mother_away_dur": "-7", "father_away_dur": "-7"}, "none", None),
        # Q1 = yes: the mother 1-3 years, the father not away
        ({"parent_away": "1", "mother_away_dur": "4", "father_away_dur": "1"}, "mother", None),
        ({"parent_away": "1", "mother_away_dur": "1", "father_away_dur": "5"}, "father", None),
        ({"parent_away": "1", "mother_away_dur": "3", "father_away_dur": "3"}, "both", None),
        # the 6-month rule: under 6 months (code 2) is not away
        ({"parent_away": "1", "mother_away_dur": "2", "father_away_dur": "4"}, "father", None),
        ({"parent_away": "1", "mother_away_dur": "2", "father_away_dur": "2"}, "none", None),
        ({"parent_away": "1", "mother_away_dur": "1", "father_away_dur": "2"}, "none", None),
        # contradictions: Q1 = no but a parent away 6 months or more
        ({"parent_away": "2", "mother_away_dur": "3", "father_away_dur": "-7"}, None, "contradictory_migration"),
        ({"parent_away": "2", "mother_away_dur": "-7", "father_away_dur": "5"}, None, "contradictory_migration"),
        # Q1 = no with a short duration is not a contradiction
        ({"parent_away": "2", "mother_away_dur": "2", "father_away_dur": "-7"}, "none", None),
        # missing Q1, or Q1 = yes with a missing duration
        ({"parent_away": "-9"}, None, "q1_missing"),
        ({"parent_away": None}, None, "q1_missing"),
        ({"parent_away": "1", "mother_away_dur": "-8", "father_away_dur": "4"}, None, "duration_missing"),
        ({"parent_away": "1", "mother_away_dur": "4", "father_away_dur": None}, None, "duration_missing"),
        ({"parent_away": "1", "mother_away_dur": "4", "father_away_dur": "9"}, None, "duration_missing"),  # out of range
    ],
)
def test_migration_group_rules(overrides, group, reason):
    row = measures(**overrides)
    assert (row["migration_group"], row["migration_missing_reason"]) == (group, reason)


@pytest.mark.parametrize(
    ("custody", "group"),
    [
        ("1", "mother"),  # mother has custody: only her status counts, father treated as not away
        ("2", "father"),  # father has custody: only his status counts
        ("3", "both"),  # joint custody: both count
        ("-8", "both"),  # unknown custody: both count
    ],
)
def test_custody_rule_for_divorced_parents(custody, group):
    row = measures(parents_marital="2", custody=custody, parent_away="1", mother_away_dur="4", father_away_dur="5")
    assert row["migration_group"] == group


def test_custody_is_ignored_for_married_parents():
    row = measures(parents_marital="1", custody="1", parent_away="1", mother_away_dur="4", father_away_dur="5")
    assert row["migration_group"] == "both"


@pytest.mark.parametrize(
    ("variable", "raw", "column", "value"),
    [
        ("siblings", "0", "siblings_3", 0),
        ("siblings", "1", "siblings_3", 1),
        ("siblings", "2", "siblings_3", 2),
        ("siblings", "5", "siblings_3", 2),  # two or more
        ("mother_edu", "1", "mother_edu_3", 1),  # none -> middle school or below
        ("mother_edu", "3", "mother_edu_3", 1),  # junior middle
        ("mother_edu", "4", "mother_edu_3", 2),  # technical secondary
        ("mother_edu", "5", "mother_edu_3", 2),  # senior high
        ("father_edu", "6", "father_edu_3", 3),  # junior college
        ("father_edu", "8", "father_edu_3", 3),  # postgraduate
        ("father_edu", "-8", "father_edu_3", None),  # don't know stays missing
        ("ethnicity", "2", "korean", 1),
        ("ethnicity", "1", "korean", 0),
        ("ethnicity", "3", "korean", 0),  # other is not Korean
        ("gender", "2", "girl", 1),
        ("gender", "1", "girl", 0),
    ],
)
def test_recodes(variable, raw, column, value):
    assert measures(**{variable: raw})[column] == value


@pytest.mark.parametrize(
    ("mother", "father", "deceased"),
    [("1", "1", False), ("2", "1", True), ("1", "2", True), ("-8", "1", False)],
)
def test_deceased_parent(mother, father, deceased):
    assert measures(mother_alive=mother, father_alive=father)["deceased_parent"] is deceased


def test_alpha_equals_textbook_formula_on_a_hand_made_matrix():
    # items x respondents small enough to compute by hand:
    values = np.array([[1, 2, 2], [2, 2, 3], [3, 4, 3], [4, 4, 5]], dtype=float)
    k = 3
    item_vars = [np.var(values[:, j], ddof=1) for j in range(k)]  # 5/3, 4/3, 4.75/3
    total_var = np.var(values.sum(axis=1), ddof=1)  # totals 5, 7, 10, 13: 36.75/3
    expected = k / (k - 1) * (1 - sum(item_vars) / total_var)
    assert cronbach_alpha(values) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(1.5 * (1 - 13.75 / 36.75), abs=1e-12)


def test_reliability_item_statistics():
    frame = pl.DataFrame({"a": [1, 2, 3, 4, 5], "b": [2, 2, 3, 5, 5], "c": [1, 3, 2, 4, 5]})
    rel = scale_reliability(frame, "s", ("a", "b", "c"))
    values = frame.to_numpy().astype(float)
    assert rel.alpha_if_deleted[0] == pytest.approx(cronbach_alpha(values[:, [1, 2]]))
    rest = values[:, 1] + values[:, 2]
    assert rel.item_total_r[0] == pytest.approx(np.corrcoef(values[:, 0], rest)[0, 1])
    assert rel.n == 5


def test_factor_score_equals_closed_form_for_three_items():
    rows = varied_rows(400, seed=3)
    values = pl.DataFrame(rows).select(
        [pl.col(c).cast(pl.Int64) for c in ("ht_ask_life", "ht_talk_guardian", "ht_praise")]
    ).to_numpy().astype(float)
    solution = fit_one_factor(values, ("ht_ask_life", "ht_talk_guardian", "ht_praise"))
    r = np.corrcoef(values, rowvar=False)
    r12, r13, r23 = r[0, 1], r[0, 2], r[1, 2]
    loadings = np.array([np.sqrt(r12 * r13 / r23), np.sqrt(r12 * r23 / r13), np.sqrt(r13 * r23 / r12)])
    np.testing.assert_allclose(solution.loadings, loadings, atol=2e-4)
    z = (values - values.mean(0)) / values.std(0, ddof=1)
    score = z @ np.linalg.solve(r, loadings)
    score = (score - score.mean()) / score.std(ddof=1)
    np.testing.assert_allclose(solution.score(values), score, atol=1e-3)
    assert solution.score(values).std(ddof=1) == pytest.approx(1.0)
    assert solution.degrees_of_freedom == 0


ITEMS = ("ht_ask_life", "ht_talk_guardian", "ht_praise")


def _items(seed: int, n: int = 400) -> np.ndarray:
    return pl.DataFrame(varied_rows(n, seed=seed)).select(
        [pl.col(c).cast(pl.Int64) for c in ITEMS]).to_numpy().astype(float)


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_closed_form_factor_equals_statsmodels_maximum_likelihood(seed):
    # independent computation: statsmodels' iterative ML fit (random starts, 1e-7 tolerance)
    from statsmodels.multivariate.factor import Factor

    values = _items(seed)
    solution = fit_one_factor(values, ITEMS)
    fitted = Factor(values, n_factor=1, method="ml").fit()
    ml = np.asarray(fitted.loadings).ravel()
    ml = -ml if ml.sum() < 0 else ml
    assert solution.method == "closed_form"
    np.testing.assert_allclose(solution.loadings, ml, atol=1e-5)
    np.testing.assert_allclose(solution.uniqueness, np.asarray(fitted.uniqueness).ravel(), atol=1e-5)
    # the loadings reproduce every off-diagonal correlation exactly (zero degrees of freedom)
    r = np.corrcoef(values, rowvar=False)
    np.testing.assert_allclose(np.outer(solution.loadings, solution.loadings)[np.triu_indices(3, 1)],
                               r[np.triu_indices(3, 1)], atol=1e-12)


def test_two_factor_fits_are_bit_identical():
    values = _items(5)
    first, second = fit_one_factor(values, ITEMS), fit_one_factor(values.copy(), ITEMS)
    assert first.loadings.tobytes() == second.loadings.tobytes()
    assert first.weights.tobytes() == second.weights.tobytes()
    assert first.score(values).tobytes() == second.score(values).tobytes()


def test_heywood_case_makes_the_dominant_item_the_factor():
    # hand-made correlations r12=.8, r13=.8, r23=.5: l1^2 = .8*.8/.5 = 1.28 > 1 (Heywood)
    rng = np.random.default_rng(0)
    corr = np.array([[1, .8, .8], [.8, 1, .5], [.8, .5, 1]])
    values = rng.multivariate_normal(np.zeros(3), corr, size=5000, method="cholesky")
    solution = fit_one_factor(values, ITEMS)
    r = np.corrcoef(values, rowvar=False)
    assert solution.method == "closed_form_heywood:0"
    np.testing.assert_allclose(solution.loadings, [1.0, r[0, 1], r[0, 2]])
    assert solution.uniqueness[0] == 0.0
    z0 = (values[:, 0] - values[:, 0].mean()) / values[:, 0].std(ddof=1)
    np.testing.assert_allclose(solution.score(values), z0, atol=1e-12)


@pytest.mark.parametrize("corr, message", [
    # one negative correlation among positive ones: product < 0, no single factor
    ([[1, .5, .5], [.5, 1, -.4], [.5, -.4, 1]], "product is not positive"),
])
def test_factor_refuses_signs_no_factor_can_produce(corr, message):
    from lbc_pipeline.lib.analysis.derive import FactorError

    values = np.random.default_rng(1).multivariate_normal(np.zeros(3), np.array(corr), size=3000)
    with pytest.raises(FactorError, match=message):
        fit_one_factor(values, ITEMS)


@pytest.mark.parametrize("values, message", [
    (np.ones((2, 3)), "too few"),                                     # 2 rows < p + 2
    (np.column_stack([np.ones(10), np.arange(10), np.arange(10) % 3]), "no variance"),  # constant item
])
def test_factor_refuses_degenerate_samples(values, message):
    from lbc_pipeline.lib.analysis.derive import FactorError

    with pytest.raises(FactorError, match=message):
        fit_one_factor(values.astype(float), ITEMS)
