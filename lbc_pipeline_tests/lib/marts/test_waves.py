"""Waves are compared and pooled to tell researchers whether a finding holds year after
year. A wave dummy built against the wrong reference, a moderator centred per wave instead
of on the pooled sample, or a delta taken against the wrong earlier wave gives plausible
numbers that are simply wrong, and a drift check that never fires lets a broken delivery
(half a group lost at data entry, a miscoded scale) pass as a real change. These tests
check the pooled fits against numpy least squares, the single-wave case against the
per-wave fit, the comparison against hand-computed deltas, and the drift rules in both
directions.
"""

import numpy as np
import polars as pl
import pytest

from lbc_pipeline.lib.marts import models, waves
from lbc_pipeline.lib.quality.rules import WARN

GROUPS = ("none", "mother", "father", "both")
SCHOOLS = ("S1", "S2", "S3", "S4")
AWAY = {"none": (0, 0, 0), "mother": (1, 0, 0), "father": (0, 1, 0), "both": (0, 0, 1)}
AWAY_TERMS = ("mother_away", "father_away", "both_away")
# Integer columns drawn uniformly within their codes (inclusive bounds).
CODE_RANGES = {
    "girl": (0, 1),
    "age": (9, 15),
    "siblings": (0, 2),
    "korean": (0, 1),
    "mother_edu": (1, 3),
    "father_edu": (1, 3),
    "belong": (1, 5),
    "ht_ask_life": (1, 4),
    "ht_talk_guardian": (1, 4),
    "ht_praise": (1, 4),
    "ht_satisfaction": (1, 5),
    "best_friends": (1, 4),
    "class_closeness": (1, 5),
    "peer_satisfaction": (1, 5),
}


def analytic_sample(n: int, wave: str = "2019", seed: int = 0) -> pl.DataFrame:
    """An n-row frame shaped like analysis.analytic_sample for one wave.

    Children sit in four schools in turn (S1, S2, S3, S4, S1, ...); the first four are
    one of each migration group, the rest are drawn. The six depression items share a
    factor that moves with mother_away and belong, so the scale is reliable (alpha about
    0.85) and the models have something to find; depression is their sum.
    """
    rng = np.random.default_rng(seed)
    group = np.concatenate([GROUPS, rng.choice(GROUPS, size=n - 4, p=[0.55, 0.15, 0.15, 0.15])])
    away = np.array([AWAY[g] for g in group])
    codes = {name: rng.integers(low, high + 1, size=n) for name, (low, high) in CODE_RANGES.items()}
    factor = rng.normal(size=n) + 0.8 * away[:, 0] - 0.3 * (codes["belong"] - 3)
    items = np.clip(np.rint(2.5 + factor[:, None] + rng.normal(scale=0.7, size=(n, 6))), 1, 5).astype(np.int64)
    return pl.DataFrame(
        {
            "wave": [wave] * n,
            "child_key": [f"{wave}-{i:05d}" for i in range(n)],
            "school_id": np.array(SCHOOLS)[np.arange(n) % len(SCHOOLS)],
            "migration_group": group,
            "mother_away": away[:, 0],
            "father_away": away[:, 1],
            "both_away": away[:, 2],
            "depression": items.sum(axis=1),
            **{f"dep{k + 1}": items[:, k] for k in range(6)},
            "grade": rng.choice([5, 7, 8, 9], size=n),
            **codes,
            "teacher_attitude": rng.normal(size=n),
        }
    )


def spec_of(specification: str, table_no: int, model_no: int) -> models.ModelSpec:
    return next(s for s in models.model_specs(specification) if (s.table_no, s.model_no) == (table_no, model_no))


@pytest.fixture(scope="module")
def three_waves() -> pl.DataFrame:
    # Stacked out of order, and of different sizes: the reference wave is the smallest id.
    return pl.concat(
        [
            analytic_sample(150, "2023", seed=3),
            analytic_sample(200, "2019", seed=1),
            analytic_sample(120, "2021", seed=2),
        ]
    )


@pytest.fixture(scope="module")
def pooled(three_waves):
    return {s: waves.pooled_models(three_waves, s) for s in models.SPECIFICATIONS}


def hand_design(sample: pl.DataFrame, spec: models.ModelSpec) -> dict[str, np.ndarray]:
    """Each term's column, built from the sample directly: moderator centred on the whole
    (pooled) frame where the spec centres it, a dummy for waves 2021 and 2023."""
    numeric = (*CODE_RANGES, *AWAY_TERMS, "grade", "teacher_attitude")
    column = {name: sample[name].cast(pl.Float64).to_numpy() for name in numeric}
    design = {t: column[t] for t in (*models.MIGRATION_TERMS, *models.CONTROL_TERMS) if t in spec.terms}
    if spec.moderator:
        moderator = column[spec.moderator] - (column[spec.moderator].mean() if spec.centre_moderator else 0.0)
        design[spec.moderator] = moderator
        if spec.interactions:
            for dummy in models.MIGRATION_TERMS:
                design[f"{dummy}:{spec.moderator}"] = column[dummy] * moderator
    wave = sample["wave"].to_numpy()
    design["wave_2021"] = (wave == "2021").astype(float)
    design["wave_2023"] = (wave == "2023").astype(float)
    design["const"] = np.ones(sample.height)
    return design


@pytest.mark.parametrize(
    "specification, table_no, model_no",
    [
        ("as_published", 2, 1),  # migration dummies and the wave dummies only
        ("as_published", 2, 2),  # the base model: controls added
        ("as_published", 3, 2),  # teacher_attitude centred on the pooled sample
        ("as_published", 4, 1),  # belong raw, with its interactions
        ("as_published", 4, 6),  # peer_satisfaction centred, with its interactions
        ("harmonised", 4, 1),  # the same model with belong centred
    ],
)
def test_pooled_model_equals_numpy_least_squares(three_waves, pooled, specification, table_no, model_no):
    spec = spec_of(specification, table_no, model_no)
    design = hand_design(three_waves, spec)
    X = np.column_stack(list(design.values()))
    y = three_waves["depression"].cast(pl.Float64).to_numpy()
    n, k = X.shape
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    residuals = y - X @ beta
    xtx_inv = np.linalg.inv(X.T @ X)
    leverage = np.einsum("ij,jk,ik->i", X, xtx_inv, X)
    hc3 = xtx_inv @ (X.T * (residuals / (1 - leverage)) ** 2) @ X @ xtx_inv
    expected_se = {
        "nonrobust": np.sqrt(np.diag(xtx_inv) * (residuals @ residuals) / (n - k)),
        "HC3": np.sqrt(np.diag(hc3)),
    }
    coefficients, fit = pooled[specification]
    rows = coefficients.filter((pl.col("table_no") == table_no) & (pl.col("model_no") == model_no))
    assert set(rows["se_type"]) == {"nonrobust", "HC3"}
    for se_type, se in expected_se.items():
        got = rows.filter(pl.col("se_type") == se_type)
        assert got["term"].to_list() == [*spec.terms[:-1], "wave_2021", "wave_2023", "const"]
        estimate = dict(zip(got["term"], got["estimate"]))
        std_error = dict(zip(got["term"], got["std_error"]))
        for j, term in enumerate(design):
            assert estimate[term] == pytest.approx(beta[j], abs=1e-8)
            assert std_error[term] == pytest.approx(se[j], abs=1e-8)
    assert set(rows["waves"]) == {"2019,2021,2023"}
    assert set(rows["n_obs"]) == {n}
    fit_row = fit.filter((pl.col("table_no") == table_no) & (pl.col("model_no") == model_no)).row(0, named=True)
    total = ((y - y.mean()) ** 2).sum()
    assert fit_row["r_squared"] == pytest.approx(1 - residuals @ residuals / total, abs=1e-10)
    assert (fit_row["n_obs"], fit_row["n_waves"]) == (n, 3)


def test_pooled_frames_cover_every_model_with_documented_notes(three_waves, pooled):
    coefficients, fit = pooled["as_published"]
    assert list(coefficients.columns) == list(waves.POOLED_COEFFICIENT_SCHEMA)
    assert list(fit.columns) == list(waves.POOLED_FIT_SCHEMA)
    assert fit.height == 14
    assert "wave_2019" not in set(coefficients["term"])
    note = coefficients.filter(
        (pl.col("table_no") == 3) & (pl.col("model_no") == 1) & (pl.col("term") == "const")
    )["note"].to_list()
    pooled_mean = three_waves["belong"].mean()
    assert all(f"belong centred on the pooled sample (mean {pooled_mean:.4f})" in n for n in note)
    assert all("wave_2021, wave_2023 (reference wave 2019)" in n for n in note)


def test_single_wave_pooled_model_is_the_wave_model():
    sample = analytic_sample(180, "2019", seed=5)
    for specification in models.SPECIFICATIONS:
        coefficients, fit = waves.pooled_models(sample, specification)
        assert set(coefficients["waves"]) == {"2019"} and set(fit["n_waves"]) == {1}
        assert all("no wave fixed effects" in n for n in coefficients["note"])
        for spec in models.model_specs(specification):
            single = models.fit_model(sample, spec)
            key = (pl.col("table_no") == spec.table_no) & (pl.col("model_no") == spec.model_no)
            for se_type in waves.POOLED_SE_TYPES:
                got = coefficients.filter(key & (pl.col("se_type") == se_type))
                want = single.coefficients.filter(pl.col("se_type") == se_type)
                assert got["term"].to_list() == list(spec.terms)
                for column in ("estimate", "std_error", "t_value", "p_value", "ci_low", "ci_high"):
                    np.testing.assert_allclose(got[column].to_numpy(), want[column].to_numpy(), rtol=1e-10, atol=1e-12)
                assert got["stars"].to_list() == want["stars"].to_list()
            fit_row = fit.filter(key).row(0, named=True)
            for column in ("r_squared", "adj_r_squared", "f_stat", "f_p_value"):
                assert fit_row[column] == pytest.approx(getattr(single, column), rel=1e-10)


def hand_made_waves() -> pl.DataFrame:
    """Two small waves with round numbers: 2019 four children, 2021 six."""
    rows = {
        "wave": ["2019"] * 4 + ["2021"] * 6,
        "migration_group": ["none", "none", "mother", "father", "none", "mother", "mother", "both", "father", "none"],
        "depression": [10, 12, 14, 16, 11, 13, 15, 17, 19, 9],
        "belong": [4, 4, 2, 2, 5, 5, 3, 3, 1, 1],
    }
    frame = pl.DataFrame(rows).with_columns(
        *(pl.col("migration_group").eq(g).cast(pl.Int64).alias(f"{g}_away") for g in ("mother", "father", "both")),
        *(pl.lit(3, dtype=pl.Int64).alias(m) for m in waves.MEAN_MEASURES if m not in rows),
    )
    # Item k of child i: a child-level level plus a fixed item pattern, so alpha is defined.
    level = np.array([1, 2, 3, 4, 1, 2, 3, 4, 5, 2])
    pattern = np.array([0, 1, 0, 1, 0, 0])
    return frame.with_columns(**{f"dep{k + 1}": level + pattern[k] for k in range(6)})


def hand_alpha(items: np.ndarray) -> float:
    k = items.shape[1]
    return k / (k - 1) * (1 - items.var(axis=0, ddof=1).sum() / items.sum(axis=1).var(ddof=1))


def coefficient_rows(wave: str, estimate: float, std_error: float) -> list[dict]:
    """The base model's mother_away (as_published, nonrobust) and two rows to be ignored."""
    return [
        {"wave": wave, "specification": "as_published", "table_no": 2, "model_no": 2, "term": "mother_away",
         "estimate": estimate, "std_error": std_error, "se_type": "nonrobust"},
        {"wave": wave, "specification": "harmonised", "table_no": 2, "model_no": 2, "term": "mother_away",
         "estimate": 99.0, "std_error": 1.0, "se_type": "nonrobust"},
        {"wave": wave, "specification": "as_published", "table_no": 2, "model_no": 2, "term": "mother_away",
         "estimate": 99.0, "std_error": 1.0, "se_type": "HC3"},
    ]


def test_comparison_puts_the_previous_wave_beside_each_wave():
    samples = hand_made_waves()
    coefficients = pl.DataFrame(coefficient_rows("2019", 2.0, 0.6) + coefficient_rows("2021", 1.0, 0.8))
    comparison = waves.compare_waves(samples, coefficients)
    assert list(comparison.columns) == list(waves.COMPARISON_COLUMNS)
    first = comparison.filter(pl.col("wave") == "2019")
    assert first["previous_wave"].is_null().all() and first["delta"].is_null().all()

    def row(kind: str, measure: str, statistic: str) -> dict:
        return comparison.filter(
            (pl.col("wave") == "2021") & (pl.col("kind") == kind)
            & (pl.col("measure") == measure) & (pl.col("statistic") == statistic)
        ).row(0, named=True)

    cases = {
        ("group_size", "none", "n"): (2, 2, 0, 0.0),
        ("group_size", "mother", "n"): (2, 1, 1, 1.0),
        ("group_size", "both", "n"): (1, 0, 1, None),  # from nothing: no relative change
        ("group_size", "total", "n"): (6, 4, 2, 0.5),
        ("share", "mother_away", "share"): (1 / 3, 1 / 4, 1 / 12, 1 / 3),
        ("mean", "depression", "mean"): (14, 13, 1, 1 / 13),
        ("mean", "belong", "mean"): (3, 3, 0, 0.0),
    }
    for (kind, measure, statistic), (value, previous, delta, relative) in cases.items():
        got = row(kind, measure, statistic)
        assert got["previous_wave"] == "2019"
        assert (got["value"], got["previous_value"], got["delta"]) == pytest.approx((value, previous, delta))
        assert got["relative_change"] == (None if relative is None else pytest.approx(relative))
    sd = row("mean", "depression", "sd")
    sds = (np.std([11, 13, 15, 17, 19, 9], ddof=1), np.std([10, 12, 14, 16], ddof=1))
    assert (sd["value"], sd["previous_value"]) == pytest.approx(sds)
    items = samples.select(f"dep{k}" for k in range(1, 7)).to_numpy().astype(float)
    alpha = row("alpha", "depression", "cronbach_alpha")
    assert (alpha["value"], alpha["previous_value"]) == pytest.approx((hand_alpha(items[4:]), hand_alpha(items[:4])))
    coefficient = row("coefficient", "mother_away", "Table 2 Model 2")
    assert (coefficient["value"], coefficient["previous_value"]) == pytest.approx((1.0, 2.0))
    assert coefficient["delta"] == pytest.approx(-1.0)
    assert (coefficient["std_error"], coefficient["previous_std_error"]) == pytest.approx((0.8, 0.6))
    assert coefficient["z_change"] == pytest.approx(-1.0 / np.sqrt(0.8**2 + 0.6**2))
    assert comparison.filter(pl.col("kind") == "coefficient").height == 2  # other spec and SE type ignored


def test_comparison_refuses_coefficients_of_other_waves():
    coefficients = pl.DataFrame(coefficient_rows("2019", 2.0, 0.6) + coefficient_rows("2020", 1.0, 0.8))
    with pytest.raises(ValueError, match="coefficients cover waves"):
        waves.compare_waves(hand_made_waves(), coefficients)


@pytest.fixture(scope="module")
def reference_wave() -> tuple[pl.DataFrame, pl.DataFrame]:
    sample = analytic_sample(400, "2019", seed=11)
    coefficients = models.model_frames(models.fit_every_model(sample, "2019"), "2019")[0]
    return sample, coefficients


def as_wave(frame: pl.DataFrame, wave: str) -> pl.DataFrame:
    return frame.with_columns(pl.lit(wave).alias("wave"))


def halve_mother_group(sample: pl.DataFrame) -> pl.DataFrame:
    mothers = sample.filter(pl.col("migration_group") == "mother")
    return pl.concat([sample.filter(pl.col("migration_group") != "mother"), mothers.head(mothers.height // 2)])


def raise_depression(sample: pl.DataFrame) -> pl.DataFrame:
    return sample.with_columns(pl.col("depression") + int(round(0.5 * sample["depression"].std())))


def shuffle_items(sample: pl.DataFrame) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    items = [f"dep{k}" for k in range(1, 7)]
    shuffled = sample.with_columns(pl.Series(c, rng.permutation(sample[c].to_numpy())) for c in items)
    return shuffled.with_columns(pl.sum_horizontal(items).alias("depression"))


def move_mother_away(coefficients: pl.DataFrame) -> pl.DataFrame:
    term = (pl.col("table_no") == 2) & (pl.col("model_no") == 2) & (pl.col("term") == "mother_away")
    return coefficients.with_columns(
        pl.when(term).then(pl.col("estimate") + 4 * pl.col("std_error")).otherwise(pl.col("estimate")).alias("estimate")
    )


def unchanged(frame: pl.DataFrame) -> pl.DataFrame:
    return frame


@pytest.mark.parametrize(
    "change_sample, change_coefficients, settings, expected",
    [
        # the same children and estimates again: nothing drifts
        (unchanged, unchanged, waves.DriftSettings(), set()),
        # half of the mother-away children lost: that group's n drops by 50% > 25%
        (halve_mother_group, unchanged, waves.DriftSettings(), {("group_size", "mother")}),
        # the same loss under a looser threshold (60%) is not drift
        (halve_mother_group, unchanged, waves.DriftSettings(max_group_size_change=0.6), set()),
        # every depression score up by half an SD: the mean moves 0.5 SD > 0.3 SD
        (raise_depression, unchanged, waves.DriftSettings(), {("mean", "depression")}),
        # items shuffled apart: the scale no longer holds together, alpha collapses
        (shuffle_items, unchanged, waves.DriftSettings(), {("alpha", "depression")}),
        # mother_away's estimate moves by 4 SE: z = 4 / sqrt(2) = 2.83 > 2.58
        (unchanged, move_mother_away, waves.DriftSettings(), {("coefficient", "mother_away")}),
    ],
)
def test_drift_check(reference_wave, change_sample, change_coefficients, settings, expected):
    sample, coefficients = reference_wave
    samples = pl.concat([sample, as_wave(change_sample(sample), "2021")])
    stacked = pl.concat([coefficients, as_wave(change_coefficients(coefficients), "2021")])
    outcome = waves.check_drift(waves.compare_waves(samples, stacked), settings)
    flagged = {(r["kind"], r["measure"]) for r in outcome.metadata["flagged"]}
    assert outcome.severity == WARN
    assert outcome.passed == (not expected)
    assert flagged == expected
    for r in outcome.metadata["flagged"]:
        assert r["wave"] == "2021" and r["previous_wave"] == "2019"
        assert r["size"] > r["threshold"] and r["previous_value"] is not None and r["delta"] is not None
        assert r["measure"] in outcome.description


def test_drift_check_passes_with_one_wave(reference_wave):
    sample, coefficients = reference_wave
    outcome = waves.check_drift(waves.compare_waves(sample, coefficients))
    assert outcome.passed and outcome.severity == WARN
    assert outcome.metadata["flagged"] == [] and outcome.metadata["waves"] == ["2019"]


@pytest.mark.parametrize("order, previous_of", [
    (None, {"2019": None, "2021": "2019"}),             # no order given: ids as text
    (["2019", "2021"], {"2019": None, "2021": "2019"}),  # survey order = text order
    (["2021", "2019"], {"2021": None, "2019": "2021"}),  # "2021" surveyed first: it is 2019's previous
])
def test_previous_wave_follows_the_survey_order(order, previous_of):
    coefficients = pl.DataFrame(coefficient_rows("2019", 2.0, 0.6) + coefficient_rows("2021", 1.0, 0.8))
    comparison = waves.compare_waves(hand_made_waves(), coefficients, order)
    got = dict(comparison.select("wave", "previous_wave").unique().iter_rows())
    assert got == previous_of
    assert waves.wave_ids(pl.DataFrame({"wave": ["zz", "2019", "2021"]}), order) == (order or ["2019", "2021"]) + ["zz"]
