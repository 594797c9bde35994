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


def test_the_factor_fit_is_identical_on_refit():
    # the ML factor fit starts from random values: seeded, the teacher_attitude scores (and every
    # model and imputation downstream) are the same in every run, to the last bit
    from lbc_pipeline.lib.analysis.derive import fit_one_factor

    rng = np.random.default_rng(8)
    trait = rng.normal(size=300)
    values = np.column_stack([np.clip(np.round(2.5 + 0.8 * trait + rng.normal(scale=0.7, size=300)), 1, 4)
                              for _ in range(3)])
    first = fit_one_factor(values, ("a", "b", "c"))
    again = fit_one_factor(values, ("a", "b", "c"))
    assert np.array_equal(first.loadings, again.loadings) and np.array_equal(first.weights, again.weights)
