"""The synthetic follow-up wave 2021 (data/demo/2021), checked independently of the pipeline.

The follow-up exists to demonstrate and test new-wave handling: the sensor on
data/incoming, pooled models with wave fixed effects, the wave-over-wave drift check. It is
only fit for that if anyone can regenerate the committed demo copy from its seed; if its
manifest's expected counts and groups are exactly what instrument.md gives (otherwise the
pipeline's own count checks would fail on the demo for the generator's sake); if it is the
same four schools in a new fieldwork window; and if the shifts it documents are there for
the drift check to find, and no more.

The rules are applied by test_reference_wave's plain-pandas implementation of instrument.md
(`apply_instrument`, with this wave's fieldwork window). Its rule-by-rule tests are imported
below and so run here too, against this module's `raw`, `distribution` and `returned`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lbc_pipeline.synthetic import cli, generate
from lbc_pipeline.lib.marts.waves import DriftSettings
from lbc_pipeline_tests.synthetic.test_reference_wave import (  # noqa: F401  (tests and a fixture, collected here as well)
    DEP,
    EXCLUSION_ORDER,
    INVALID_ORDER,
    MEASURES,
    apply_instrument,
    design,
    fit,
    keyed,
    teacher_attitude,
    test_every_reason_occurs,
    test_every_rule_is_exercised,
    test_returned_per_school_within_handed_out,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo" / "2021"
REFERENCE = ROOT / "data" / "raw" / "2019"
FILES = ("questionnaires.csv", "distribution.csv", "wave.yaml")
FIELDWORK = (pd.Timestamp("2021-11-01"), pd.Timestamp("2022-06-30"))  # from the brief, not the module
GROUPS = ["none", "mother", "father", "both"]
STATE = ROOT / "lbc_pipeline" / "synthetic" / "state" / "analysed_2019.csv"


def _read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / name, dtype=str, keep_default_na=False, na_values=[""])


@pytest.fixture(scope="module")
def manifest() -> dict:
    return yaml.safe_load((DEMO / "wave.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return _read(DEMO, "questionnaires.csv")


@pytest.fixture(scope="module")
def distribution() -> pd.DataFrame:
    return _read(DEMO, "distribution.csv")


@pytest.fixture(scope="module")
def returned(raw: pd.DataFrame, distribution: pd.DataFrame) -> pd.DataFrame:
    return apply_instrument(raw, distribution, FIELDWORK)


def _analysis_sample(returned: pd.DataFrame) -> pd.DataFrame:
    valid = returned[returned["status"] != "invalid"]
    sample = returned[returned["status"] == "analysed"].copy()
    sample["teacher_attitude"] = teacher_attitude(valid)
    return sample


@pytest.fixture(scope="module")
def sample(returned: pd.DataFrame) -> pd.DataFrame:
    return _analysis_sample(returned)


@pytest.fixture(scope="module")
def reference_sample() -> pd.DataFrame:
    return _analysis_sample(apply_instrument(_read(REFERENCE, "questionnaires.csv"), _read(REFERENCE, "distribution.csv")))


def test_regenerating_reproduces_the_demo_wave(tmp_path: Path) -> None:
    assert cli.main(["--wave", "2021", "--seed", "2021", "--out", str(tmp_path)]) == 0
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes(), name


def test_manifest_says_what_the_wave_is(manifest: dict) -> None:
    assert manifest["wave"] == "2021" and manifest["synthetic"] is True
    assert "SYNTHETIC" in manifest["description"] and "not calibrated" in manifest["description"]
    assert (str(manifest["fieldwork"]["start"]), str(manifest["fieldwork"]["end"])) == ("2021-11-01", "2022-06-30")
    assert list(manifest["expected"]) == ["distributed", "returned", "valid", "analysed"]
    assert list(manifest["expected_groups"]) == GROUPS
    assert manifest["generator"]["seed"] == 2021
    assert manifest["generator"]["shifts"] == dataclasses.asdict(generate.FollowUpShifts())
    assert (DEMO / "README.md").read_text(encoding="utf-8").startswith("# Follow-up wave 2021 (demo) — SYNTHETIC DATA")


def test_flow_is_the_manifests(returned: pd.DataFrame, distribution: pd.DataFrame, manifest: dict) -> None:
    expected = manifest["expected"]
    distributed = distribution["distributed"].astype(int).sum()
    assert distributed == expected["distributed"]
    assert len(returned) == expected["returned"]
    assert (returned["status"] != "invalid").sum() == expected["valid"]
    assert (returned["status"] == "analysed").sum() == expected["analysed"]
    # the design: about 1,000-1,100 handed out, about 90% returned
    assert 1000 <= distributed <= 1100
    assert 0.88 <= expected["returned"] / distributed <= 0.92


def test_groups_are_the_manifests(sample: pd.DataFrame, manifest: dict) -> None:
    found = sample["migration_group"].value_counts().to_dict()
    assert found == manifest["expected_groups"]
    assert min(found.values()) >= 25  # every group large enough for its own estimates


def test_reasons_are_the_plans(returned: pd.DataFrame) -> None:
    # each fate in exactly the planned number: the reference wave's proportions of 960
    plan = generate.follow_up_plan(generate.reference_plan(generate.load_state(), generate.published_flow()),
                                   generate.FollowUpShifts())
    found = returned["invalid_reason"].fillna(returned["exclusion_reason"]).value_counts().to_dict()
    assert found == {k: v for k, v in {**plan.invalid, **plan.excluded}.items() if v}
    assert set(found) == set(INVALID_ORDER) | {"deceased_parent"} | {f"missing_{v}" for v in EXCLUSION_ORDER}


def test_survey_dates_inside_the_fieldwork_window(raw: pd.DataFrame, returned: pd.DataFrame) -> None:
    first = raw.drop_duplicates("qid").set_index("qid")
    date = pd.to_datetime(first["survey_date"], format="%Y-%m-%d", errors="coerce")
    outside = date.notna() & ~date.between(*FIELDWORK)
    # outside the window: exactly the questionnaires keyed with a wrong date (invalid)
    assert outside.sum() >= 1
    assert (outside == (returned["invalid_reason"] == "outside_fieldwork")).all()
    # one date per class, a weekday inside the window
    inside = first.assign(date=date)[date.notna() & ~outside]
    assert (inside.groupby(["school_id", "class_id"])["date"].nunique() == 1).all()
    assert (inside["date"].dt.day_of_week < 5).all()
    # one empty and one impossible date among the excluded (age unknown)
    assert first["survey_date"].isna().sum() == 1 and (first["survey_date"].notna() & date.isna()).sum() == 1


def test_schools_are_the_reference_waves(distribution: pd.DataFrame) -> None:
    columns = ["school_id", "school_name", "school_type", "school_level"]
    pd.testing.assert_frame_equal(distribution[columns], _read(REFERENCE, "distribution.csv")[columns])


def test_children_keep_the_state_age_grade_pattern(sample: pd.DataFrame, raw: pd.DataFrame) -> None:
    state = pd.read_csv(STATE)
    pairs = set(zip(state["age"], state["grade"]))
    assert set(zip(sample["age"].astype(int), sample["grade"].astype(int))) <= pairs
    # ages are computed at the new dates: the children were born two years later than in 2019
    birth_year = raw.drop_duplicates("qid").set_index("qid").loc[sample.index, "birth_year"].astype(int)
    assert birth_year.between(2006, 2013).all()
    assert abs((sample["age"].mean()) - state["age"].mean()) < 0.3


def test_roll_numbers_and_qids_are_the_new_waves(raw: pd.DataFrame) -> None:
    assert raw["qid"].str.fullmatch(r"HC2021-\d{4}").all()
    entry_year = raw["student_no"].str.slice(0, 4).astype(int)
    assert entry_year.between(2015, 2021).all()


def test_shifts_show(sample: pd.DataFrame, raw: pd.DataFrame) -> None:
    state = pd.read_csv(STATE)
    state_depression = state[DEP].sum(axis=1)
    # more children whose mother only is away (2019: 29 of 605)
    assert (sample["migration_group"] == "mother").mean() > 1.4 * 29 / 605
    # slightly lower school belonging
    assert 0.1 < state["belong"].mean() - sample["belong"].mean() < 0.4
    # mother-away children a little more depressed than in 2019
    mother_2019 = state_depression[state["migration_group"] == "mother"].mean()
    assert sample.loc[sample["migration_group"] == "mother", "depression"].mean() > mother_2019

    # more mothers working in South Korea among those away 6 months or more
    def south_korea(frame: pd.DataFrame) -> float:
        numbers = frame.apply(pd.to_numeric, errors="coerce")
        away = numbers["mother_away_dur"].isin([3, 4, 5]) & numbers["mother_dest"].isin([1, 2, 3, 4])
        return (numbers.loc[away, "mother_dest"] == 3).mean()

    assert south_korea(raw) > south_korea(_read(REFERENCE, "questionnaires.csv")) + 0.05


def test_drift_check_notices_the_mother_group_only(sample: pd.DataFrame, reference_sample: pd.DataFrame) -> None:
    # The drift check (lib/waves.py) flags a group size that moves by more than 25%, a mean
    # that moves by more than 0.3 SD of the previous wave and a coefficient whose change has
    # |z| above 2.58: the defaults move the mother-only group's size and nothing else.
    settings = DriftSettings()
    before = reference_sample["migration_group"].value_counts()
    after = sample["migration_group"].value_counts()
    change = (after / before - 1).abs()
    assert change[change > settings.max_group_size_change].index.tolist() == ["mother"]
    assert abs(len(sample) / len(reference_sample) - 1) < settings.max_group_size_change
    for measure in ["depression", *MEASURES]:
        shift = abs(sample[measure].mean() - reference_sample[measure].mean()) / reference_sample[measure].std()
        assert shift < settings.max_mean_shift_sd, measure
    # Table 2 Model 2 (every term) and Table 4's mother-away interactions
    for table, model in [(2, 2), *[(4, k) for k in range(1, 7)]]:
        before_fit = fit(design(reference_sample, table, model), reference_sample["depression"])["terms"]
        after_fit = fit(design(sample, table, model), sample["depression"])["terms"]
        for term, (b, se, _) in after_fit.items():
            if table == 2 or term.startswith("mother_away:"):
                b0, se0, _ = before_fit[term]
                assert abs(b - b0) / (se**2 + se0**2) ** 0.5 < settings.max_coefficient_z, (table, model, term)


@pytest.mark.parametrize(
    "field, value",
    [
        ("mother_away_weight", 0.0),  # a weight must be positive
        ("belong_lower_share", 1.5),  # a share is at most 1
        ("mother_away_depression_share", -0.1),  # ... and at least 0
        ("response_rate", 0.0),  # nothing returned is no wave
    ],
)
def test_shifts_refuse_nonsense(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        generate.FollowUpShifts(**{field: value})


def test_no_shift_is_no_drift_in_the_groups() -> None:
    # without the mother-away weight the groups keep the state's proportions (up to sampling)
    wave = generate.generate_follow_up_wave(shifts=generate.FollowUpShifts(mother_away_weight=1.0))
    groups = wave.manifest["expected_groups"]
    assert groups["mother"] / sum(groups.values()) < 2 * 29 / 605
    assert sum(groups.values()) == wave.manifest["expected"]["analysed"]
