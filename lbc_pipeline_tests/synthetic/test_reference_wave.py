"""The committed reference wave (data/raw/2019), checked independently of the pipeline.

The synthetic wave is only useful if a reader who applies instrument.md by hand gets the
paper's sample flow and the paper's estimates. So this module re-implements the contract in
plain pandas/numpy, with the codes and ranges copied from instrument.md rather than taken
from the project's codebook or modules: duplicates, the invalid rules, deceased parents,
the migration group with its 6-month and custody rules, missing values and the analysis
codings. It then checks the flow 1059 / 980 / 933 / 605, the migration groups, Tables 1-4,
Cronbach's alpha, and that every rule is exercised by at least one questionnaire.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[2]
WAVE_DIR = ROOT / "data" / "raw" / "2019"
PUBLISHED = json.loads((ROOT / "lbc_pipeline" / "reference" / "published_tables.json").read_text(encoding="utf-8"))
STATE_DIR = ROOT / "lbc_pipeline" / "synthetic" / "state"

# ---- instrument.md, section 2 (copied, not imported)
SPECIAL = {-9: "refused", -8: "dont_know", -7: "not_applicable"}
CODES = {
    "gender": range(1, 3), "birth_year": range(1990, 2026), "birth_month": range(1, 13),
    "grade": range(1, 13), "siblings": range(0, 21), "ethnicity": range(1, 4),
    "mother_edu": range(1, 9), "father_edu": range(1, 9),
    "mother_alive": range(1, 3), "father_alive": range(1, 3), "parents_marital": range(1, 4),
    "custody": range(1, 4), "parent_away": range(1, 3),
    "mother_away_dur": range(1, 6), "father_away_dur": range(1, 6),
    "mother_dest": range(1, 5), "father_dest": range(1, 5),
    **{f"dep{i}": range(1, 6) for i in range(1, 7)},
    "belong": range(1, 6), "ht_ask_life": range(1, 5), "ht_talk_guardian": range(1, 5),
    "ht_praise": range(1, 5), "ht_satisfaction": range(1, 6), "best_friends": range(1, 5),
    "class_closeness": range(1, 6), "peer_satisfaction": range(1, 6),
}
SUBSTANTIVE = list(CODES)  # the 31 items of the child, parents, outcome and support sections
DEP = [f"dep{i}" for i in range(1, 7)]
TEACHER = ["ht_ask_life", "ht_talk_guardian", "ht_praise"]
MEASURES = ["belong", "teacher_attitude", "ht_satisfaction", "best_friends", "class_closeness", "peer_satisfaction"]
CONTROLS = ["girl", "age", "grade", "siblings", "korean", "mother_edu", "father_edu"]
DUMMIES = ["mother_away", "father_away", "both_away"]
EXCLUSION_ORDER = [
    "depression", "migration_group", "gender", "age", "grade", "siblings", "ethnicity",
    "mother_edu", "father_edu", "belong", "ht_ask_life", "ht_talk_guardian", "ht_praise",
    "ht_satisfaction", "best_friends", "class_closeness", "peer_satisfaction",
]
INVALID_ORDER = ["conflicting_duplicate", "outside_population", "largely_blank", "unknown_school", "outside_fieldwork"]
FIELDWORK = (pd.Timestamp("2019-11-01"), pd.Timestamp("2020-06-30"))
CODED_NAME = {"gender": "girl", "ethnicity": "korean"}  # exclusion variable -> its coding
EDUCATION = {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 3, 7: 3, 8: 3}


def _read(name: str) -> pd.DataFrame:
    return pd.read_csv(WAVE_DIR / name, dtype=str, keep_default_na=False, na_values=[""])


def apply_instrument(raw: pd.DataFrame, distribution: pd.DataFrame,
                     fieldwork: tuple[pd.Timestamp, pd.Timestamp] = FIELDWORK) -> pd.DataFrame:
    """One row per returned questionnaire (distinct qid) with its status (`invalid`,
    `excluded`, `analysed`), its primary reason and every reason, and the analysis codings.
    `fieldwork`: the wave's fieldwork window (default the reference wave's)."""
    deduped = raw.drop_duplicates()
    conflicting = deduped["qid"].duplicated(keep=False)
    q = deduped.drop_duplicates("qid").set_index("qid")
    q["conflicting"] = conflicting.groupby(deduped["qid"]).any()

    value = pd.DataFrame(index=q.index)
    blank = pd.DataFrame(index=q.index)
    for item, valid in CODES.items():
        number = pd.to_numeric(q[item], errors="coerce")
        blank[item] = q[item].isna() | (number == -9)
        value[item] = number.where(number.isin(list(valid)))
    date = pd.to_datetime(q["survey_date"], format="%Y-%m-%d", errors="coerce")
    before_birthday = (date.dt.month < value["birth_month"]) | (
        (date.dt.month == value["birth_month"]) & (date.dt.day < 15))
    value["age"] = date.dt.year - value["birth_year"] - before_birthday.astype(float)
    value.loc[value["birth_year"].isna() | value["birth_month"].isna() | date.isna(), "age"] = np.nan

    invalid = pd.DataFrame({
        "conflicting_duplicate": q["conflicting"],
        "outside_population": (value["age"].notna() & ~value["age"].between(9, 15))
        | (value["grade"].notna() & ~value["grade"].isin([5, 7, 8, 9])),
        "largely_blank": blank.sum(axis=1) >= 16,
        "unknown_school": ~q["school_id"].isin(distribution["school_id"]),
        "outside_fieldwork": date.notna() & ((date < fieldwork[0]) | (date > fieldwork[1])),
    })

    # migration group (instrument.md section 2, "Parents and migration")
    q1, m_dur, f_dur = value["parent_away"], value["mother_away_dur"], value["father_away_dur"]
    m_long, f_long = m_dur >= 3, f_dur >= 3
    divorced = value["parents_marital"] == 2
    m_counts = ~(divorced & (value["custody"] == 2))
    f_counts = ~(divorced & (value["custody"] == 1))
    m_away = (q1 == 1) & m_long & m_counts
    f_away = (q1 == 1) & f_long & f_counts
    group = pd.Series(np.select([m_away & f_away, m_away, f_away], ["both", "mother", "father"], "none"),
                      index=q.index, dtype=object)
    group[q1.isna() | ((q1 == 2) & (m_long | f_long)) | ((q1 == 1) & (m_dur.isna() | f_dur.isna()))] = None

    coded = pd.DataFrame({
        "migration_group": group,
        "depression": value[DEP].sum(axis=1, min_count=6),
        "girl": (value["gender"] == 2).astype(float).where(value["gender"].notna()),
        "age": value["age"],
        "grade": value["grade"],
        "siblings": value["siblings"].clip(upper=2),
        "korean": (value["ethnicity"] == 2).astype(float).where(value["ethnicity"].notna()),
        "mother_edu": value["mother_edu"].map(EDUCATION),
        "father_edu": value["father_edu"].map(EDUCATION),
        **{item: value[item] for item in DEP + MEASURES if item != "teacher_attitude"},
        **{item: value[item] for item in TEACHER},
    })
    excluded = pd.DataFrame({"deceased_parent": (value["mother_alive"] == 2) | (value["father_alive"] == 2)})
    for variable in EXCLUSION_ORDER:
        excluded[f"missing_{variable}"] = coded[CODED_NAME.get(variable, variable)].isna()

    def first(flags: pd.DataFrame) -> pd.Series:
        return flags.idxmax(axis=1).where(flags.any(axis=1))

    coded["invalid_reason"] = first(invalid)
    coded["exclusion_reason"] = first(excluded).where(coded["invalid_reason"].isna())
    coded["status"] = np.select(
        [coded["invalid_reason"].notna(), coded["exclusion_reason"].notna()], ["invalid", "excluded"], "analysed")
    coded["school_id"] = q["school_id"]
    return coded


def teacher_attitude(valid: pd.DataFrame) -> pd.Series:
    """One-factor regression-method score of the three teacher items, estimated and
    standardised (ddof=1) on the valid questionnaires that answered all three."""
    items = valid[TEACHER].dropna()
    x = items.to_numpy(float)
    r = np.corrcoef(x, rowvar=False)
    r12, r13, r23 = r[0, 1], r[0, 2], r[1, 2]
    loadings = np.sqrt([r12 * r13 / r23, r12 * r23 / r13, r13 * r23 / r12])  # exactly identified
    score = ((x - x.mean(axis=0)) / x.std(axis=0, ddof=1)) @ np.linalg.solve(r, loadings)
    return pd.Series((score - score.mean()) / score.std(ddof=1), index=items.index)


def fit(X: pd.DataFrame, y: pd.Series) -> dict:
    """OLS with conventional standard errors: per term (b, se, stars), and R-squared."""
    A = X.to_numpy(float)
    coef, *_ = np.linalg.lstsq(A, y.to_numpy(float), rcond=None)
    resid = y.to_numpy(float) - A @ coef
    dof = len(y) - A.shape[1]
    se = np.sqrt(np.diag(resid @ resid / dof * np.linalg.inv(A.T @ A)))
    p = 2 * stats.t.sf(np.abs(coef / se), dof)
    stars = ["***" if v < 0.001 else "**" if v < 0.01 else "*" if v < 0.05 else "" for v in p]
    r2 = 1 - resid @ resid / ((y - y.mean()) ** 2).sum()
    return {"terms": dict(zip(X.columns, zip(coef, se, stars))), "r2": r2}


def design(sample: pd.DataFrame, table: int, model: int) -> pd.DataFrame:
    """Tables 2-4 of the paper (instrument.md section 4): belonging raw in Table 4 Model 1,
    every other support measure mean-centred on the analysis sample."""
    X = pd.DataFrame({"const": 1.0}, index=sample.index)
    for dummy, group in zip(DUMMIES, ["mother", "father", "both"]):
        X[dummy] = (sample["migration_group"] == group).astype(float)
    if (table, model) != (2, 1):
        for control in CONTROLS:
            X[control] = sample[control]
    if table in (3, 4):
        measure = MEASURES[model - 1]
        m = sample[measure] if (table, model) == (4, 1) else sample[measure] - sample[measure].mean()
        X[measure] = m
        if table == 4:
            for dummy in DUMMIES:
                X[f"{dummy}:{measure}"] = X[dummy] * m
    return X


@pytest.fixture(scope="module")
def distribution() -> pd.DataFrame:
    return _read("distribution.csv")


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return _read("questionnaires.csv")


@pytest.fixture(scope="module")
def returned(raw: pd.DataFrame, distribution: pd.DataFrame) -> pd.DataFrame:
    return apply_instrument(raw, distribution)


@pytest.fixture(scope="module")
def sample(returned: pd.DataFrame) -> pd.DataFrame:
    valid = returned[returned["status"] != "invalid"]
    analysed = returned[returned["status"] == "analysed"].copy()
    analysed["teacher_attitude"] = teacher_attitude(valid)
    return analysed


@pytest.fixture(scope="module")
def fits(sample: pd.DataFrame) -> dict:
    out = {}
    for key in PUBLISHED["models"]:
        table, model = (int(x) for x in key.split("."))
        out[key] = fit(design(sample, table, model), sample["depression"])
    return out


def test_sample_flow_is_the_papers(returned: pd.DataFrame, distribution: pd.DataFrame) -> None:
    handed_out = distribution.assign(distributed=distribution["distributed"].astype(int))
    by_type = handed_out.groupby("school_type")["distributed"].sum().to_dict()
    assert (handed_out["distributed"].sum(), by_type) == (1059, {"1": 527, "2": 532})
    assert len(returned) == 980
    assert (returned["status"] != "invalid").sum() == 933
    assert (returned["status"] == "analysed").sum() == 605


def test_migration_groups_are_the_papers(sample: pd.DataFrame) -> None:
    assert sample["migration_group"].value_counts().to_dict() == {"none": 368, "father": 123, "both": 85, "mother": 29}


def test_returned_per_school_within_handed_out(returned: pd.DataFrame, distribution: pd.DataFrame) -> None:
    counts = returned["school_id"].value_counts()
    for _, school in distribution.iterrows():
        assert counts.get(school["school_id"], 0) <= int(school["distributed"])


def test_analysed_children_are_the_calibrated_state(sample: pd.DataFrame) -> None:
    state = pd.read_csv(STATE_DIR / "analysed_2019.csv")
    columns = ["migration_group", *DEP, *CONTROLS, "belong", *TEACHER, *MEASURES[2:]]
    ours = sample[columns].astype({c: int for c in columns[1:]}).sort_values(columns).reset_index(drop=True)
    theirs = state[columns].sort_values(columns).reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)


def test_factor_rests_on_905_questionnaires(returned: pd.DataFrame) -> None:
    valid = returned[returned["status"] != "invalid"]
    answered = valid[TEACHER].notna().all(axis=1)
    assert answered.sum() == 905
    assert (~answered[valid["status"] == "excluded"]).sum() == 28


@pytest.mark.parametrize(
    "status, reason",
    [
        ("invalid", "conflicting_duplicate"),  # a qid keyed twice with different answers
        ("invalid", "outside_population"),  # age outside 9-15 or grade not 5/7/8/9
        ("invalid", "largely_blank"),  # 16+ of 31 items empty or -9
        ("invalid", "unknown_school"),  # school_id absent from the distribution
        ("invalid", "outside_fieldwork"),  # survey date outside 2019-11-01..2020-06-30
        ("excluded", "deceased_parent"),  # mother or father not alive
        *[("excluded", f"missing_{v}") for v in EXCLUSION_ORDER],  # every model variable
    ],
)
def test_every_reason_occurs(returned: pd.DataFrame, status: str, reason: str) -> None:
    column = "invalid_reason" if status == "invalid" else "exclusion_reason"
    assert (returned[column] == reason).sum() >= 1


@pytest.fixture(scope="module")
def keyed(raw: pd.DataFrame, returned: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The keyed answers of every returned questionnaire (first keying): as text, as numbers,
    and the numbers of the valid questionnaires only."""
    text = raw.drop_duplicates("qid").set_index("qid")
    numeric = text.apply(pd.to_numeric, errors="coerce")
    return {"text": text, "numeric": numeric, "valid": numeric.loc[returned.index[returned["status"] != "invalid"]]}


@pytest.mark.parametrize(
    "pattern",
    [
        "identical_duplicate",  # a row keyed twice identically collapses to one
        "out_of_range_belong",  # belong keyed as 7 or 44: missing, not invalid
        "dont_know_education",  # -8 don't know, the commonest missing parent education
        "refused_item",  # -9 on a model item of a valid questionnaire
        "custody_mother_father_away",  # custody 1: a father away is not counted
        "custody_father_mother_away",  # custody 2: a mother away is not counted
        "custody_joint",  # joint custody counts both parents
        "q1_yes_short_durations",  # Q1 yes, both durations under 6 months: no parent away
        "q1_no_long_duration",  # contradictory: migration group missing
        "q1_missing",  # Q1 empty or refused: migration group missing
        "q1_yes_duration_missing",  # Q1 yes with a duration missing
        "unreadable_date",  # a date that does not exist leaves age unknown
        "fifteen_blank",  # 15 blank items: still valid
        "sixteen_blank",  # exactly 16 blank items: largely blank
    ],
)
def test_every_rule_is_exercised(raw: pd.DataFrame, returned: pd.DataFrame, keyed: dict, pattern: str) -> None:
    text, numeric, valid = keyed["text"], keyed["numeric"], keyed["valid"]
    divorced = valid["parents_marital"] == 2
    analysed = returned.loc[valid.index, "status"] == "analysed"
    blanks = (text[SUBSTANTIVE].isna() | (numeric[SUBSTANTIVE] == -9)).sum(axis=1)
    durations_answered = valid["mother_away_dur"].isin(range(1, 6)) & valid["father_away_dur"].isin(range(1, 6))
    short = valid["mother_away_dur"].isin([1, 2]) & valid["father_away_dur"].isin([1, 2])
    found = {
        "identical_duplicate": lambda: raw.duplicated(keep=False).sum(),
        "out_of_range_belong": lambda: valid["belong"].isin([7, 44]).sum(),
        "dont_know_education": lambda: (valid[["mother_edu", "father_edu"]] == -8).any(axis=1).sum(),
        "refused_item": lambda: (valid[DEP + ["belong", "gender"]] == -9).any(axis=1).sum(),
        "custody_mother_father_away": lambda: (analysed & divorced & (valid["custody"] == 1) & (valid["father_away_dur"] >= 3)).sum(),
        "custody_father_mother_away": lambda: (analysed & divorced & (valid["custody"] == 2) & (valid["mother_away_dur"] >= 3)).sum(),
        "custody_joint": lambda: (analysed & divorced & (valid["custody"] == 3)).sum(),
        "q1_yes_short_durations": lambda: (analysed & (valid["parent_away"] == 1) & short).sum(),
        "q1_no_long_duration": lambda: ((valid["parent_away"] == 2) & ((valid["mother_away_dur"] >= 3) | (valid["father_away_dur"] >= 3))).sum(),
        "q1_missing": lambda: (~valid["parent_away"].isin([1, 2])).sum(),
        "q1_yes_duration_missing": lambda: ((valid["parent_away"] == 1) & ~durations_answered).sum(),
        "unreadable_date": lambda: (pd.to_datetime(text["survey_date"], format="%Y-%m-%d", errors="coerce").isna() & text["survey_date"].notna()).sum(),
        "fifteen_blank": lambda: (blanks.loc[valid.index] == 15).sum(),
        "sixteen_blank": lambda: (blanks == 16).sum(),
    }[pattern]()
    assert found >= 1


def _published_terms() -> list[tuple[str, str]]:
    return [(m, t) for m, spec in PUBLISHED["models"].items() for t in spec["coefs"]]


@pytest.mark.parametrize("model, term", _published_terms())
def test_coefficient_matches_published(fits: dict, model: str, term: str) -> None:
    b, se, stars = fits[model]["terms"][term]
    published = PUBLISHED["models"][model]["coefs"][term]
    assert abs(b - published["b"]) <= 0.05 * published["se"]  # estimate within 0.05 SE
    assert abs(se / published["se"] - 1) <= 0.03  # standard error within 3%
    assert stars == published["stars"]


@pytest.mark.parametrize("model", list(PUBLISHED["models"]))
def test_r_squared_matches_published(fits: dict, model: str) -> None:
    # Table 4 Model 1's printed R-squared contradicts its own t-values (inconsistencies.md 3)
    tolerance = 0.01 if model == "4.1" else 0.002
    assert abs(fits[model]["r2"] - PUBLISHED["models"][model]["r2"]) <= tolerance


def test_cronbach_alpha_matches_published(sample: pd.DataFrame) -> None:
    items = sample[DEP].to_numpy(float)
    alpha = 6 / 5 * (1 - items.var(axis=0, ddof=1).sum() / items.sum(axis=1).var(ddof=1))
    assert abs(alpha - PUBLISHED["cronbach_alpha_depression"]) <= 0.0005


def test_table1_on_the_605(sample: pd.DataFrame) -> None:
    table1 = PUBLISHED["table1"]
    for group, rows in sample.groupby("migration_group"):
        for variable, block in table1["categorical"].items():
            for category, pct in zip(block["categories"], block["pct"][group]):
                assert abs(100 * (rows[variable] == category["code"]).mean() - pct) <= 1.0, (group, variable)
        for variable, cells in table1["continuous"].items():
            assert abs(rows[variable].mean() - cells[group]["mean"]) <= 0.1, (group, variable)
            assert abs(rows[variable].std(ddof=1) - cells[group]["sd"]) <= 0.05, (group, variable)
