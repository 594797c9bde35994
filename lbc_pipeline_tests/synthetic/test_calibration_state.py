"""The stored SYNTHETIC calibration state reproduces the published tables of Wang (2023).

The state tests recompute everything from `lbc_pipeline/synthetic/state/*.csv` with plain
numpy / statsmodels (independent of calibrate.py and of paper_stats.py) and assert the
calibration tolerances: every published coefficient within 0.05 of its published SE, every
SE within 3%, R-squared within 0.002 (Table 4 Model 1 within 0.01), all 93 stars, Cronbach's
alpha 0.9131 +- 0.0005, Table 1 (exact counts on the 601 children it describes; within 1
point / 0.1 / 0.05 on all 605). The unit tests check paper_stats against hand computations.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from lbc_pipeline.synthetic import paper_stats as ps

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / "lbc_pipeline" / "synthetic" / "state"
PUBLISHED = json.loads((ROOT / "lbc_pipeline" / "reference" / "published_tables.json").read_text())

GROUPS = ["none", "mother", "father", "both"]
GROUP_SIZES = {"none": 368, "mother": 29, "father": 123, "both": 85}
DEP = [f"dep{i}" for i in range(1, 7)]
TEACHER = ["ht_ask_life", "ht_talk_guardian", "ht_praise"]
CONTROLS = ["girl", "age", "grade", "siblings", "korean", "mother_edu", "father_edu"]
MEASURES = ["belong", "teacher_attitude", "ht_satisfaction", "best_friends", "class_closeness", "peer_satisfaction"]
HEADER = (
    "row_id,migration_group,dep1,dep2,dep3,dep4,dep5,dep6,girl,age,grade,siblings,korean,"
    "mother_edu,father_edu,belong,ht_ask_life,ht_talk_guardian,ht_praise,ht_satisfaction,"
    "best_friends,class_closeness,peer_satisfaction,in_table1"
)
RANGES = {
    **{c: (1, 5) for c in DEP},
    "girl": (0, 1),
    "age": (9, 15),
    "siblings": (0, 2),
    "korean": (0, 1),
    "mother_edu": (1, 3),
    "father_edu": (1, 3),
    "belong": (1, 5),
    **{c: (1, 4) for c in TEACHER},
    "ht_satisfaction": (1, 5),
    "best_friends": (1, 4),
    "class_closeness": (1, 5),
    "peer_satisfaction": (1, 5),
    "in_table1": (0, 1),
}


def teacher_scores(analysed_items: np.ndarray, excluded_items: np.ndarray) -> np.ndarray:
    """Teacher's attitude of the analysed rows, factor estimated on analysed + excluded rows."""
    both = np.vstack([analysed_items, excluded_items]).astype(float)
    r = np.corrcoef(both, rowvar=False)
    loadings = np.sqrt([r[0, 1] * r[0, 2] / r[1, 2], r[0, 1] * r[1, 2] / r[0, 2], r[0, 2] * r[1, 2] / r[0, 1]])
    weights = np.linalg.solve(r, loadings)
    mean, sd = both.mean(axis=0), both.std(axis=0, ddof=1)
    raw = ((both - mean) / sd) @ weights
    score = (raw - raw.mean()) / raw.std(ddof=1)
    return score[: len(analysed_items)]


@pytest.fixture(scope="module")
def analysed() -> pd.DataFrame:
    """The analysed children with depression, teacher's attitude and the dummies added."""
    frame = pd.read_csv(STATE / "analysed_2019.csv")
    excluded = pd.read_csv(STATE / "excluded_teacher_items_2019.csv")
    frame["depression"] = frame[DEP].sum(axis=1)
    frame["teacher_attitude"] = teacher_scores(frame[TEACHER].to_numpy(), excluded[TEACHER].to_numpy())
    for dummy, group in zip(["mother_away", "father_away", "both_away"], GROUPS[1:]):
        frame[dummy] = (frame["migration_group"] == group).astype(float)
    return frame


@pytest.fixture(scope="module")
def fits(analysed: pd.DataFrame) -> dict:
    """statsmodels OLS fits of the fourteen models, keyed "2.1" ... "4.6"."""
    out = {}
    dummies = ["mother_away", "father_away", "both_away"]
    y = analysed["depression"].astype(float)
    for model_id, pub in PUBLISHED["models"].items():
        X = analysed[dummies].copy()
        if model_id != "2.1":
            X[CONTROLS] = analysed[CONTROLS].astype(float)
        measure = pub["moderator"]
        if measure is not None:
            m = analysed[measure].astype(float)
            if model_id != "4.1":
                m = m - m.mean()
            X[measure] = m
            if model_id.startswith("4."):
                for d in dummies:
                    X[f"{d}:{measure}"] = X[d] * m
        out[model_id] = sm.OLS(y, sm.add_constant(X)).fit()
    return out


def stars(p: float) -> str:
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


# ------------------------------------------------------------------ the stored state


def test_files_have_the_interface_layout() -> None:
    lines = (STATE / "analysed_2019.csv").read_text().splitlines()
    assert lines[0] == HEADER
    assert len(lines) == 606
    excluded = (STATE / "excluded_teacher_items_2019.csv").read_text().splitlines()
    assert excluded[0] == "row_id,ht_ask_life,ht_talk_guardian,ht_praise"
    assert len(excluded) == 301


def test_values_are_integers_in_range() -> None:
    raw = pd.read_csv(STATE / "analysed_2019.csv")
    assert not raw.isna().any().any()
    assert raw["row_id"].tolist() == list(range(1, 606))
    for column, (lo, hi) in RANGES.items():
        assert pd.api.types.is_integer_dtype(raw[column]), column
        assert raw[column].between(lo, hi).all(), column
    assert set(raw["grade"]) <= {5, 7, 8, 9}
    assert raw["migration_group"].value_counts().to_dict() == GROUP_SIZES
    excluded = pd.read_csv(STATE / "excluded_teacher_items_2019.csv")
    assert excluded["row_id"].tolist() == list(range(1, 301))
    for column in TEACHER:
        assert pd.api.types.is_integer_dtype(excluded[column])
        assert excluded[column].between(1, 4).all()


def test_ages_are_plausible_for_grades(analysed: pd.DataFrame) -> None:
    offset = analysed["age"] - analysed["grade"]
    assert offset.between(4, 7).all()
    assert offset.isin([5, 6]).mean() > 0.85
    assert 0.75 <= np.corrcoef(analysed["age"], analysed["grade"])[0, 1] <= 0.9
    assert analysed.loc[analysed["grade"] == 5, "age"].between(10, 11).mean() > 0.8
    assert analysed.loc[analysed["grade"] == 9, "age"].between(14, 15).mean() > 0.9


def test_table1_counts_exact_on_the_601(analysed: pd.DataFrame) -> None:
    t1 = PUBLISHED["table1"]
    printed = analysed[analysed["in_table1"] == 1]
    assert len(printed) == 601
    for group in GROUPS:
        rows = printed[printed["migration_group"] == group]
        implied = t1["implied_counts"][group]
        assert len(rows) == implied["n"]
        for var, block in t1["categorical"].items():
            counts = [int((rows[var] == c["code"]).sum()) for c in block["categories"]]
            assert counts == implied["counts"][var], (group, var)


def test_extra_children_score_as_implied(analysed: pd.DataFrame) -> None:
    extra = analysed[analysed["in_table1"] == 0]
    got = {g: sorted(extra.loc[extra["migration_group"] == g, "depression"]) for g in GROUPS}
    assert got == {"none": [25], "mother": [], "father": [6, 6, 10], "both": []}


def test_table1_continuous_print_as_published_on_the_601(analysed: pd.DataFrame) -> None:
    printed = analysed[analysed["in_table1"] == 1]
    for var, per_group in PUBLISHED["table1"]["continuous"].items():
        for group, ref in per_group.items():
            values = printed.loc[printed["migration_group"] == group, var]
            assert abs(values.mean() - ref["mean"]) <= 0.0005 + 1e-9, (var, group)
            assert abs(values.std(ddof=1) - ref["sd"]) <= 0.0005 + 1e-9, (var, group)


def test_table1_on_all_605(analysed: pd.DataFrame) -> None:
    t1 = PUBLISHED["table1"]
    for group in GROUPS:
        rows = analysed[analysed["migration_group"] == group]
        for var, block in t1["categorical"].items():
            for category, pct in zip(block["categories"], block["pct"][group]):
                assert abs(100 * (rows[var] == category["code"]).mean() - pct) <= 1.0, (group, var)
        for var, per_group in t1["continuous"].items():
            assert abs(rows[var].mean() - per_group[group]["mean"]) <= 0.1, (group, var)
            assert abs(rows[var].std(ddof=1) - per_group[group]["sd"]) <= 0.05, (group, var)


def test_teacher_attitude_is_not_centred_on_the_analysed(analysed: pd.DataFrame) -> None:
    assert -0.05 < analysed["teacher_attitude"].mean() < 0.05


def test_cronbach_alpha(analysed: pd.DataFrame) -> None:
    items = analysed[DEP].to_numpy(float)
    alpha = 6 / 5 * (1 - items.var(axis=0, ddof=1).sum() / items.sum(axis=1).var(ddof=1))
    assert abs(alpha - PUBLISHED["cronbach_alpha_depression"]) <= 0.0005


@pytest.mark.parametrize("model_id", list(PUBLISHED["models"]))
def test_model_reproduces_published(fits: dict, model_id: str) -> None:
    fit, pub = fits[model_id], PUBLISHED["models"][model_id]
    for term, ref in pub["coefs"].items():
        assert abs(fit.params[term] - ref["b"]) <= 0.05 * ref["se"], (term, fit.params[term], ref["b"])
        assert abs(fit.bse[term] / ref["se"] - 1) <= 0.03, (term, fit.bse[term], ref["se"])
        assert stars(fit.pvalues[term]) == ref["stars"], (term, fit.pvalues[term])
    assert abs(fit.rsquared - pub["r2"]) <= (0.01 if model_id == "4.1" else 0.002)


def test_all_93_published_terms_are_checked() -> None:
    assert sum(len(m["coefs"]) for m in PUBLISHED["models"].values()) == 93


def test_support_measures_correlate_plausibly(analysed: pd.DataFrame) -> None:
    corr = analysed[MEASURES].corr().to_numpy()
    off = corr[np.triu_indices(len(MEASURES), 1)]
    assert off.min() >= 0.2 and off.max() <= 0.5
    assert 0.6 <= analysed["mother_edu"].corr(analysed["father_edu"]) <= 0.8


# ------------------------------------------------------------------ paper_stats units


def test_cronbach_alpha_by_hand() -> None:
    items = np.array([[1, 1, 2], [2, 2, 2], [3, 2, 4], [4, 3, 4]])
    # item variances 5/3, 2/3, 4/3 (sum 11/3); totals 4, 6, 9, 11 have variance 29/3
    assert ps.cronbach_alpha(items) == pytest.approx(1.5 * (1 - 11 / 29))


def test_fit_ols_matches_statsmodels() -> None:
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(50), rng.normal(size=(50, 3))])
    y = X @ [1.0, 0.5, -0.3, 0.0] + rng.normal(size=50)
    ours = ps.fit_ols(X, y, ("const", "a", "b", "c"))
    ref = sm.OLS(y, X).fit()
    np.testing.assert_allclose(ours.coef, ref.params, rtol=1e-10)
    np.testing.assert_allclose(ours.se, ref.bse, rtol=1e-10)
    np.testing.assert_allclose(ours.p, ref.pvalues, rtol=1e-8)
    assert ours.r2 == pytest.approx(ref.rsquared)
    assert ours.df_resid == 46
    assert ours.term("a")["stars"] == stars(ref.pvalues[1])


def test_stars_cut_offs() -> None:
    assert [ps.stars_for(p) for p in (0.2, 0.05, 0.049, 0.0099, 0.00099)] == ["", "", "*", "**", "***"]


def test_teacher_factor_closed_form() -> None:
    rng = np.random.default_rng(1)
    latent = rng.normal(size=400)
    items = np.column_stack([np.clip(np.rint(2.5 + l * latent + rng.normal(size=400)), 1, 4) for l in (1.0, 0.7, 0.8)])
    scoring = ps.fit_teacher_factor(items)
    r = np.corrcoef(items, rowvar=False)
    l1, l2, l3 = scoring.loadings
    # exactly identified: the loadings reproduce the three correlations
    assert [l1 * l2, l1 * l3, l2 * l3] == pytest.approx([r[0, 1], r[0, 2], r[1, 2]])
    np.testing.assert_allclose(r @ scoring.weights, scoring.loadings)
    score = ps.score_teacher_factor(items, scoring)
    assert score.mean() == pytest.approx(0, abs=1e-12)
    assert score.std(ddof=1) == pytest.approx(1)
    np.testing.assert_allclose(score, teacher_scores(items, items[:0]))


def test_design_matrices_centre_as_published() -> None:
    frame = pd.DataFrame(
        {
            "migration_group": ["none", "mother", "father", "both", "none", "father"],
            "depression": [10, 12, 8, 15, 6, 20],
            **{c: [1, 0, 1, 0, 1, 1] for c in ["girl", "korean"]},
            "age": [13, 12, 14, 13, 11, 15],
            "grade": [8, 7, 9, 8, 5, 9],
            **{c: [0, 1, 2, 1, 0, 1] for c in ["siblings"]},
            **{c: [1, 2, 3, 2, 1, 1] for c in ["mother_edu", "father_edu"]},
            **{m: [5, 4, 3, 5, 2, 1] for m in MEASURES},
        }
    )
    for dummy, group in zip(["mother_away", "father_away", "both_away"], GROUPS[1:]):
        frame[dummy] = (frame["migration_group"] == group).astype(float)
    designs = ps.build_design_matrices(frame)
    assert list(designs) == list(PUBLISHED["models"])
    assert list(designs["2.1"][0].columns) == ["const", "mother_away", "father_away", "both_away"]
    assert designs["3.1"][0]["belong"].mean() == pytest.approx(0)
    assert designs["4.2"][0]["mother_away:teacher_attitude"].tolist() == pytest.approx([0, 4 - 20 / 6, 0, 0, 0, 0])
    assert designs["4.1"][0]["belong"].tolist() == [5, 4, 3, 5, 2, 1]
    assert designs["4.1"][0]["father_away:belong"].tolist() == [0, 0, 3, 0, 0, 1]
