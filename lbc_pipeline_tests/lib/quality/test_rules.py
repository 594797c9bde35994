"""Data-quality rules: each passes on good data and fails, at the right severity, on bad."""

import dataclasses

import polars as pl
import pytest

from lbc_pipeline_tests.rows import valid_row, varied_rows
from lbc_pipeline_tests.helpers import MANIFEST, sample
from lbc_pipeline.lib.quality import rules as quality

SETTINGS = quality.QualitySettings(min_group_size=1)


@pytest.fixture(scope="module")
def result():
    rows = [*varied_rows(80, seed=5), valid_row("I1", grade="6"), valid_row("M1", mother_edu="-8"),
            valid_row("M2", father_alive="2")]
    return sample(rows)


def test_conservation_passes_on_a_built_flow(result):
    outcome = quality.check_conservation(result.flow, result.status)
    assert outcome.passed and outcome.severity == quality.ERROR


@pytest.mark.parametrize(
    ("step", "column", "delta", "problem"),
    [
        ("valid", "n_excluded", 1, "valid:"),  # n_before != n_excluded + n_after
        ("analysed", "n_before", 2, "starts at"),  # steps do not chain
    ],
)
def test_conservation_fails_on_a_broken_flow(result, step, column, delta, problem):
    broken = result.flow.with_columns(
        pl.when(pl.col("step") == step).then(pl.col(column) + delta).otherwise(pl.col(column)).alias(column))
    outcome = quality.check_conservation(broken, result.status)
    assert not outcome.passed and problem in outcome.description


def test_conservation_fails_when_a_child_leaves_without_reason(result):
    status = result.status.with_columns(
        pl.when(pl.col("qid") == "I1").then(None).otherwise(pl.col("primary_reason")).alias("primary_reason"))
    assert not quality.check_conservation(result.flow, status).passed


def test_expected_counts(result):
    groups = dict(result.analytic_sample.group_by("migration_group").len().iter_rows())
    flow = {r["step"]: r["n_after"] for r in result.flow.to_dicts()}
    right = dataclasses.replace(MANIFEST, expected={"returned": flow["returned"], "analysed": flow["analysed"]},
                                expected_groups=groups)
    assert quality.check_expected_counts(result.flow, groups, right).passed
    wrong = dataclasses.replace(right, expected={"returned": flow["returned"] + 1})
    outcome = quality.check_expected_counts(result.flow, groups, wrong)
    assert (outcome.passed, outcome.severity) == (False, quality.ERROR)
    assert "returned" in outcome.metadata["differences"]


def test_a_wave_without_expectations_gets_a_warning_report(result):
    outcome = quality.check_expected_counts(result.flow, {}, MANIFEST)
    assert (outcome.passed, outcome.severity) == (False, quality.WARN)
    assert outcome.metadata["observed"]["analysed"] == result.analytic_sample.height


def test_exclusion_shares(result):
    n_valid = result.flow.filter(pl.col("step") == "valid")["n_after"][0]
    assert quality.check_exclusion_shares(result.flow_reasons, n_valid, SETTINGS).passed
    strict = dataclasses.replace(SETTINGS, max_exclusion_share=0.005)
    outcome = quality.check_exclusion_shares(result.flow_reasons, n_valid, strict)
    assert (outcome.passed, outcome.severity) == (False, quality.WARN)
    assert "missing_mother_edu" in outcome.description


def test_differential_attrition_detects_a_school_that_loses_everyone():
    status = pl.DataFrame({
        "school_id": ["S1"] * 50 + ["S2"] * 50,
        "status": ["analysed"] * 45 + ["excluded"] * 5 + ["excluded"] * 40 + ["analysed"] * 10,
        "girl": [0, 0, 1, 1] * 25, "grade": [7] * 100, "migration_group": ["none"] * 100,
    })
    outcome = quality.check_differential_attrition(status, SETTINGS)
    assert not outcome.passed and "school_id" in outcome.description
    assert outcome.metadata["tests"]["school_id"]["p_value"] < 1e-6
    balanced = status.with_columns(pl.Series("status", ["analysed", "excluded"] * 50))
    assert quality.check_differential_attrition(balanced, SETTINGS).passed


def test_great_expectations_suite(result):
    outcome = quality.check_analytic_sample_gx(result.analytic_sample, MANIFEST, SETTINGS)
    assert outcome.passed, outcome.description
    bad = result.analytic_sample.with_columns(pl.lit(31).alias("depression"))
    outcome = quality.check_analytic_sample_gx(bad, MANIFEST, SETTINGS)
    assert not outcome.passed and "expect_column_values_to_be_between(depression)" in outcome.description


def test_a_wave_without_fieldwork_window_is_reported():
    assert quality.check_fieldwork_window(MANIFEST).passed
    outcome = quality.check_fieldwork_window(dataclasses.replace(MANIFEST, fieldwork_start=None, fieldwork_end=None))
    assert (outcome.passed, outcome.severity) == (False, quality.WARN)
    assert "outside_fieldwork rule not applied" in outcome.description


def test_outcomes_table_keeps_the_order_and_fits_its_contract():
    from lbc_pipeline.lib.contracts import validate
    table = quality.outcomes_table("2019", [
        ("b_check", "analysis.sample_flow", quality.Outcome(False, quality.ERROR, "broke")),
        ("a_check", "analysis.exclusions", quality.Outcome(True, quality.WARN, "fine")),
    ])
    validate("analysis.check_results", table)
    assert table.select("check_order", "check_name", "severity", "passed").rows() == [
        (1, "b_check", "ERROR", False), (2, "a_check", "WARN", True)]
    assert quality.outcomes_table("2019", []).height == 0  # no check selected: no rows, same columns


@pytest.mark.parametrize("sizes, expected", [
    # the blocked wave: the mother-away group is below the floor
    ({"none": 300, "mother": 9, "father": 40, "both": 51},
     ["mother-away group has 9 children; the minimum is 20 (quality_config.min_group_size)"]),
    # a group with nobody, and one with a single child
    ({"none": 300, "father": 1, "both": 51},
     ["mother-away group has no child; the minimum is 20 (quality_config.min_group_size)",
      "father-away group has 1 child; the minimum is 20 (quality_config.min_group_size)"]),
    # the negative case: every group at the floor
    ({"none": 20, "mother": 20, "father": 20, "both": 20}, []),
])
def test_small_groups_are_named_in_words(sizes, expected):
    assert quality.small_groups(sizes, 20) == expected
