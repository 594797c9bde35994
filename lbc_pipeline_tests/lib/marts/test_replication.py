"""The replication table is the product's claim that it reproduces the paper, and the
hypotheses table is what a reader quotes. A wrong denominator in delta_in_se, a
tolerance applied to the wrong model, or a verdict that ignores the sign of an
interaction would make both claims false; these tests pin them on hand-made numbers
and on the published numbers themselves.
"""

import json

import polars as pl
import pytest
from scipy import stats

from lbc_pipeline.lib import contracts
from lbc_pipeline.config import REFERENCE_DIR
from lbc_pipeline.lib.marts import models, replication

PUBLISHED_PATH = REFERENCE_DIR / "published_tables.json"


@pytest.fixture(scope="module")
def published() -> dict:
    return json.loads(PUBLISHED_PATH.read_text(encoding="utf-8"))


def coefficient_row(table_no, model_no, term, estimate, std_error, stars="", p_value=0.5, **overrides):
    row = {
        "wave": "t",
        "specification": "as_published",
        "table_no": table_no,
        "model_no": model_no,
        "term": term,
        "estimate": estimate,
        "std_error": std_error,
        "p_value": p_value,
        "stars": stars,
        "se_type": "nonrobust",
    }
    return {**row, **overrides}


def fit_row(table_no, model_no, r_squared, n_obs=605, **overrides):
    row = {
        "wave": "t",
        "specification": "as_published",
        "table_no": table_no,
        "model_no": model_no,
        "n_obs": n_obs,
        "r_squared": r_squared,
    }
    return {**row, **overrides}


def small_published() -> dict:
    """Two published models: Table 3 Model 1 and Table 4 Model 1."""
    return {
        "models": {
            "3.1": {
                "table_no": 3,
                "model_no": 1,
                "n": 605,
                "r2": 0.152,
                "coefs": {
                    "mother_away": {"b": 2.0, "se": 1.0, "stars": "*"},
                    "belong": {"b": -2.0, "se": 0.5, "stars": "***"},
                    "const": {"b": 10.0, "se": 2.0, "stars": "***"},
                },
            },
            "4.1": {
                "table_no": 4,
                "model_no": 1,
                "n": 605,
                "r2": 0.157,
                "coefs": {"mother_away:belong": {"b": -3.0, "se": 1.5, "stars": "*"}},
            },
        }
    }


@pytest.fixture
def small_replication() -> pl.DataFrame:
    coefficients = pl.DataFrame(
        [
            coefficient_row(3, 1, "mother_away", 2.04, 1.02, "*"),  # 0.04 SE off, SE 2% larger
            coefficient_row(3, 1, "belong", -2.05, 0.48, "**"),  # 0.1 SE off, SE 4% smaller, stars differ
            # const is missing from the product's estimates
            coefficient_row(4, 1, "mother_away:belong", -3.0, 1.5, "*"),
            # Rows of another specification, SE type or wave are not compared.
            coefficient_row(3, 1, "const", 99.0, 1.0, specification="harmonised"),
            coefficient_row(3, 1, "const", 99.0, 1.0, se_type="HC3"),
            coefficient_row(3, 1, "const", 99.0, 1.0, wave="other"),
        ]
    )
    fit = pl.DataFrame(
        [
            fit_row(3, 1, 0.1535),  # 0.0015 above: within 0.002
            fit_row(4, 1, 0.165),  # 0.008 above: within Table 4 Model 1's wider 0.01
            fit_row(4, 1, 0.157, specification="harmonised"),
        ]
    )
    return replication.replicate(coefficients, fit, small_published(), "t")


def rep_row(frame, table_no, model_no, term) -> dict:
    return frame.filter(table_no=table_no, model_no=model_no, term=term).to_dicts()[0]


def test_replicate_columns_and_rows(small_replication):
    assert small_replication.columns == list(contracts.dtypes("marts.replication"))
    # 4 published coefficients, plus R-squared and N for each of the 2 models.
    assert small_replication.height == 4 + 2 * 2


@pytest.mark.parametrize(
    "table_no, model_no, term, delta, delta_in_se, se_ratio, stars_match, within",
    [
        # 0.04 SE off and SE 2% larger: within both tolerances.
        (3, 1, "mother_away", 0.04, 0.04, 1.02, True, True),
        # 0.1 SE off and SE 4% smaller: outside, and one star short.
        (3, 1, "belong", -0.05, -0.1, 0.96, False, False),
        # Exactly the published numbers.
        (4, 1, "mother_away:belong", 0.0, 0.0, 1.0, True, True),
    ],
)
def test_replicate_compares_each_coefficient(
    small_replication, table_no, model_no, term, delta, delta_in_se, se_ratio, stars_match, within
):
    row = rep_row(small_replication, table_no, model_no, term)
    assert row["delta"] == pytest.approx(delta)
    assert row["delta_in_se"] == pytest.approx(delta_in_se)
    assert row["se_ratio"] == pytest.approx(se_ratio)
    assert row["stars_match"] is stars_match
    assert row["within_tolerance"] is within


def test_replicate_flags_a_number_the_product_did_not_estimate(small_replication):
    row = rep_row(small_replication, 3, 1, "const")
    assert row["published_estimate"] == 10.0
    assert row["estimate"] is None and row["delta"] is None
    assert row["within_tolerance"] is False


@pytest.mark.parametrize(
    "table_no, model_no, delta, within",
    [
        # 0.0015 above the published R-squared: inside the 0.002 tolerance.
        (3, 1, 0.0015, True),
        # Table 4 Model 1: 0.008 above is inside its wider 0.01 tolerance (inconsistency 3).
        (4, 1, 0.008, True),
    ],
)
def test_replicate_r_squared_rows(small_replication, table_no, model_no, delta, within):
    row = rep_row(small_replication, table_no, model_no, "r_squared")
    assert row["delta"] == pytest.approx(delta)
    assert row["within_tolerance"] is within
    assert row["published_se"] is None and row["stars_match"] is None


def test_r2_tolerance_is_wider_only_for_table4_model1():
    assert replication.r2_tolerance(4, 1) == replication.TOLERANCES.r_squared_for(4, 1)
    assert replication.r2_tolerance(3, 1) == replication.TOLERANCES.r_squared
    assert replication.r2_tolerance(4, 2) == replication.TOLERANCES.r_squared


def test_summarise_replication(small_replication):
    summary = replication.summarise_replication(small_replication)
    by_table = {r["table_no"]: r for r in summary.by_table.iter_rows(named=True)}
    assert by_table[3]["n_coefficients"] == 3
    assert by_table[3]["max_abs_delta_in_se"] == pytest.approx(0.1)
    assert (by_table[3]["se_ratio_min"], by_table[3]["se_ratio_max"]) == pytest.approx((0.96, 1.02))
    assert by_table[3]["stars_agree"] == 1
    assert by_table[4]["max_abs_r2_delta"] == pytest.approx(0.008)
    assert (summary.n_coefficients, summary.stars_agree, summary.n_within_tolerance) == (4, 2, 2)
    assert (summary.n_models, summary.r2_within_tolerance, summary.n_obs_match) == (2, 2, 2)
    assert "Stars agree for 2 of 4 coefficients" in summary.text
    assert "Table 3: max |delta|/SE 0.100" in summary.text


def published_as_estimates(published: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The published numbers as if the product had estimated them, with p-values from t(n - k)."""
    specs = {(s.table_no, s.model_no): s for s in models.model_specs("as_published")}
    rows, fits = [], []
    for model in published["models"].values():
        key = (model["table_no"], model["model_no"])
        df = model["n"] - len(specs[key].terms)
        for term, c in model["coefs"].items():
            p_value = 2 * stats.t.sf(abs(c["b"] / c["se"]), df)
            rows.append(coefficient_row(*key, term, c["b"], c["se"], models.significance_stars(p_value), p_value))
        fits.append(fit_row(*key, model["r2"], model["n"]))
    return pl.DataFrame(rows), pl.DataFrame(fits)


def test_published_numbers_replicate_themselves_and_their_stars(published):
    coefficients, fit = published_as_estimates(published)
    result = replication.replicate(coefficients, fit, published, "t")
    summary = replication.summarise_replication(result)
    assert summary.n_coefficients == 93
    # Stars recomputed from t(n - k) agree with all 93 printed, including the
    # borderline t = 3.30 of Table 4 Model 5 (inconsistency 8).
    assert summary.stars_agree == 93
    assert result["within_tolerance"].all()
    assert rep_row(result, 4, 5, "mother_away:class_closeness")["stars"] == "**"


def test_inconsistencies_cover_every_item_of_the_reference_file():
    items = replication.inconsistencies()
    assert [i.number for i in items] == list(range(1, 10))
    assert all(i.title and i.finding and i.handling for i in items)
    assert items[1].title == "How the moderators enter the models"
    assert "harmonised" in items[1].handling
    assert str(replication.TOLERANCES.r_squared_for(4, 1)) in items[2].handling


def test_inconsistencies_refuse_an_item_without_handling(tmp_path):
    # A finding added to the reference file without a handling must not pass unnoticed.
    source = replication.INCONSISTENCIES_PATH.read_text(encoding="utf-8")
    extended = tmp_path / "inconsistencies.md"
    extended.write_text(source + "10. **A new finding.** Something else.\n", encoding="utf-8")
    with pytest.raises(ValueError, match="handling"):
        replication.inconsistencies(extended)


MEASURES = ("belong", "teacher_attitude", "ht_satisfaction", "best_friends", "class_closeness", "peer_satisfaction")


def interaction_frame(values: dict[str, tuple[float, float, float]]) -> pl.DataFrame:
    """Table 4 mother-away interactions: measure -> (estimate, std_error, p_value)."""
    return pl.DataFrame(
        [
            coefficient_row(4, i + 1, f"mother_away:{m}", *values[m][:2], p_value=values[m][2])
            for i, m in enumerate(MEASURES)
        ]
    )


NOT_SIGNIFICANT = (-0.5, 0.9, 0.58)


@pytest.mark.parametrize(
    "h1_interaction, supported, phrase",
    [
        # A negative interaction with p < 0.05: buffering, H1 supported.
        ((-3.244, 1.39, 0.0199), True, "negative and significant"),
        # Significant but positive: belonging widens the gap, no buffering.
        ((2.5, 1.0, 0.0126), False, "positive and significant"),
        # Negative but not significant: no buffering shown.
        ((-1.2, 1.0, 0.2301), False, "not significant"),
        # p exactly 0.05 is not below it.
        ((-1.96, 1.0, 0.05), False, "not significant"),
    ],
)
def test_h1_verdict(h1_interaction, supported, phrase):
    values = {m: NOT_SIGNIFICANT for m in MEASURES} | {"belong": h1_interaction}
    result = replication.hypotheses(interaction_frame(values), "t")
    h1 = result.filter(hypothesis="H1").to_dicts()[0]
    assert h1["supported"] is supported and h1["buffering"] is supported
    assert h1["term"] == "mother_away:belong" and h1["model_no"] == 1
    assert phrase in h1["sentence"]
    # The sentence quotes the numbers of the row, formatted from the data.
    assert f"{h1_interaction[0]:.3f} (SE {h1_interaction[1]:.3f}" in h1["sentence"]
    assert ("H1 is supported" in h1["sentence"]) is supported


def test_one_buffering_measure_supports_its_hypothesis():
    # H3 has three measures: buffering on closeness alone supports H3, on every row of it.
    values = {m: NOT_SIGNIFICANT for m in MEASURES} | {"class_closeness": (-3.645, 1.105, 0.001)}
    result = replication.hypotheses(interaction_frame(values), "t")
    verdicts = dict(result.group_by("hypothesis").agg(pl.col("supported").all()).iter_rows())
    assert verdicts == {"H1": False, "H2": False, "H3": True}
    h3 = result.filter(hypothesis="H3")
    assert h3["buffering"].to_list() == [False, True, False]
    assert result.columns[:9] == [
        "wave", "hypothesis", "measure", "term", "table_no", "model_no", "estimate", "std_error", "p_value",
    ]  # fmt: skip
    assert "p = 0.001" in h3["sentence"][1]


def test_published_numbers_support_h1_and_h3_not_h2(published):
    coefficients, _ = published_as_estimates(published)
    result = replication.hypotheses(coefficients, "t")
    verdicts = dict(result.group_by("hypothesis").agg(pl.col("supported").first()).iter_rows())
    assert verdicts == {"H1": True, "H2": False, "H3": True}
    assert result.height == 6


def test_hypotheses_refuse_missing_interactions():
    frame = interaction_frame({m: NOT_SIGNIFICANT for m in MEASURES}).filter(pl.col("model_no") != 3)
    with pytest.raises(ValueError, match="mother_away:ht_satisfaction"):
        replication.hypotheses(frame, "t")
