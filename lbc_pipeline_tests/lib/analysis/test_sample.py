"""The sample flow: invalid questionnaires, exclusions and their reasons.

These rules take 933 valid questionnaires to 605 analysed children in the paper; each one is
tested with a hand-made row that should trigger it and one that should not.
"""

import dataclasses
import hashlib
import hmac

import polars as pl
import pytest

from lbc_pipeline_tests.rows import valid_row, varied_rows
from lbc_pipeline_tests.helpers import MANIFEST, sample
from lbc_pipeline.lib.analysis.sample import child_key, child_keys

BASE = varied_rows(60, seed=11, prefix="B")


def status_of(row: dict, manifest=MANIFEST) -> dict:
    result = sample([*BASE, row], manifest)
    status = result.status.filter(pl.col("qid") == row["qid"]).row(0, named=True)
    exclusion = result.exclusions.filter(pl.col("qid") == row["qid"])
    status["reasons"] = exclusion["reasons"][0].to_list() if exclusion.height else []
    status["detail"] = exclusion["detail"][0] if exclusion.height else None
    return status


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"grade": "6"}, "outside_population"),  # grade 6 was not surveyed
        ({"grade": "4"}, "outside_population"),
        ({"birth_year": "2003"}, "outside_population"),  # 16 at the survey
        ({"birth_year": "2011", "grade": "5"}, "outside_population"),  # 8 at the survey
        ({"school_id": "S9"}, "unknown_school"),  # not in the distribution file
        ({"survey_date": "2020-09-10"}, "outside_fieldwork"),  # after the window
        ({"survey_date": "2019-10-31"}, "outside_fieldwork"),  # the day before it
    ],
)
def test_invalid_rules(overrides, reason):
    status = status_of(valid_row("X", **overrides))
    assert status["status"] == "invalid"
    assert status["primary_reason"] == reason


@pytest.mark.parametrize(
    "overrides",
    [
        {"birth_year": "-9"},  # an unknown age is not a reason to invalidate (it is a missing value)
        {"survey_date": None},  # a missing date is not outside the fieldwork window
        {"survey_date": "2019-11-01"},  # first day of the window
        {"survey_date": "2020-06-30"},  # last day
        {"grade": "13"},  # an out-of-range grade is a keying error, not outside the population
    ],
)
def test_not_invalid(overrides):
    assert status_of(valid_row("X", **overrides))["status"] != "invalid"


def blank(n: int, code: str | None = None) -> dict:
    """A row with its last `n` school-support/outcome/parent items set to `code`."""
    items = ["peer_satisfaction", "class_closeness", "best_friends", "ht_satisfaction", "ht_praise",
             "ht_talk_guardian", "ht_ask_life", "belong", "dep6", "dep5", "dep4", "dep3", "dep2", "dep1",
             "father_dest", "mother_dest", "father_away_dur", "mother_away_dur", "parent_away"]
    return valid_row("X", **{item: code for item in items[:n]})


@pytest.mark.parametrize(
    ("row", "largely_blank"),
    [
        (blank(16), True),  # 16 empty items
        (blank(16, "-9"), True),  # refused counts as blank
        (blank(15), False),  # 15 is below the threshold
        (blank(16, "-8"), False),  # don't know is an answer
        (blank(16, "-7"), False),  # not applicable is an answer
    ],
)
def test_largely_blank(row, largely_blank):
    status = status_of(row)
    assert (status["primary_reason"] == "largely_blank") is largely_blank


def test_without_a_fieldwork_window_the_rule_is_not_applied():
    manifest = dataclasses.replace(MANIFEST, fieldwork_start=None, fieldwork_end=None)
    assert status_of(valid_row("X", survey_date="2021-01-05", birth_year="2007"), manifest)["status"] != "invalid"


def test_conflicting_duplicate_is_invalid_and_counted_once():
    rows = [*BASE, valid_row("X"), valid_row("X", belong="1")]
    result = sample(rows)
    x = result.status.filter(pl.col("qid") == "X")
    assert x.height == 1 and x["primary_reason"][0] == "conflicting_duplicate"


@pytest.mark.parametrize(
    ("overrides", "primary", "reasons"),
    [
        ({"father_alive": "2"}, "deceased_parent", ["deceased_parent"]),
        # a deceased parent comes first even when values are missing too
        ({"mother_alive": "2", "mother_edu": "-8"}, "deceased_parent", ["deceased_parent", "missing_mother_edu"]),
        ({"dep3": "-9"}, "missing_depression", ["missing_depression"]),
        ({"parent_away": "2", "mother_away_dur": "4"}, "missing_migration_group", ["missing_migration_group"]),
        ({"father_edu": "-8", "mother_edu": "-8"}, "missing_mother_edu", ["missing_mother_edu", "missing_father_edu"]),
        ({"belong": "7"}, "missing_belong", ["missing_belong"]),  # out of range -> missing
        ({"ht_praise": None}, "missing_ht_praise", ["missing_ht_praise"]),
        ({"birth_month": "-8", "peer_satisfaction": "-9"}, "missing_age", ["missing_age", "missing_peer_satisfaction"]),
        ({"siblings": "-9"}, "missing_siblings", ["missing_siblings"]),
        ({"ethnicity": None}, "missing_ethnicity", ["missing_ethnicity"]),
    ],
)
def test_exclusions_keep_every_reason_and_the_first_as_primary(overrides, primary, reasons):
    status = status_of(valid_row("X", **overrides))
    assert status["status"] == "excluded"
    assert status["primary_reason"] == primary
    assert status["reasons"] == reasons


def test_exclusion_detail_says_why_the_value_is_missing():
    status = status_of(valid_row("X", mother_edu="-8"))
    assert status["detail"] == "missing_mother_edu: mother_edu=dont_know"


def test_an_analysable_child_is_analysed_with_a_pseudonymous_key():
    result = sample([*BASE, valid_row("X")])
    assert result.status.filter(pl.col("qid") == "X")["status"][0] == "analysed"
    keys = result.analytic_sample["child_key"].to_list()
    assert child_key(bytes.fromhex("ab" * 32), "t", "X") in keys
    assert "X" not in keys and "qid" not in result.analytic_sample.columns


def test_child_key_depends_on_the_secret():
    assert child_key(b"a" * 32, "2019", "Q1") != child_key(b"b" * 32, "2019", "Q1")
    assert child_key(b"a" * 32, "2019", "Q1") == child_key(b"a" * 32, "2019", "Q1")


@pytest.mark.parametrize(
    "key",
    [
        bytes.fromhex("ef" * 32),  # the project's key: 32 random bytes, padded to the 64-byte block
        b"",  # an empty key: all padding
        b"x" * 64,  # exactly one block: no padding
        b"long key " * 12,  # longer than a block: hashed first (RFC 2104)
    ],
)
def test_child_keys_are_hmac_sha256_of_wave_and_qid(key: bytes):
    # The vectorised keys must be the stdlib's HMAC, byte for byte, so that keys already
    # published stay the same; qids with non-ASCII text, the separator itself, and empty text.
    qids = ["HC2019-0001", "学生-7", "", "a\x1fb", *[f"Q{i:05d}" for i in range(200)]]
    got = dict(child_keys(key, "2019", pl.Series(qids)).iter_rows())
    expected = {q: hmac.new(key, f"2019\x1f{q}".encode(), hashlib.sha256).hexdigest()[:20] for q in qids}
    assert got == expected


def test_child_keys_depend_on_the_secret_and_the_wave():
    # negative cases: another key or another wave gives other keys for the same qids
    qids = pl.Series(["Q1", "Q2"])
    base = child_keys(b"a" * 32, "2019", qids)["child_key"].to_list()
    assert set(base).isdisjoint(child_keys(b"b" * 32, "2019", qids)["child_key"].to_list())
    assert set(base).isdisjoint(child_keys(b"a" * 32, "2021", qids)["child_key"].to_list())
    assert all(len(k) == 20 for k in base)


def test_flow_adds_up_and_reasons_sum_to_each_step():
    rows = [*BASE, valid_row("I1", grade="6"), valid_row("I2", school_id="S9"),
            valid_row("D1", father_alive="2"), valid_row("M1", dep1="-8"), valid_row("M2", belong="9")]
    result = sample(rows)
    flow = {r["step"]: r for r in result.flow.to_dicts()}
    assert flow["distributed"]["n_after"] == 300  # 3 schools x 100
    assert flow["returned"]["n_after"] == 65
    assert flow["valid"]["n_excluded"] == 2
    assert flow["parents_alive"]["n_excluded"] == 1
    assert flow["analysed"]["n_excluded"] == 2
    assert flow["analysed"]["n_after"] == result.analytic_sample.height == 60
    for step, row in flow.items():
        assert row["n_before"] == row["n_excluded"] + row["n_after"]
        primaries = result.flow_reasons.filter(pl.col("step") == step)["n_primary"].sum()
        if step != "distributed":
            assert primaries == row["n_excluded"], step


def test_teacher_attitude_is_standardised_on_valid_questionnaires_only():
    rows = [*BASE, valid_row("I1", grade="6", ht_ask_life="4", ht_talk_guardian="4", ht_praise="4")]
    result = sample(rows)
    valid = result.measures.filter(pl.col("status") != "invalid")["teacher_attitude"]
    assert valid.mean() == pytest.approx(0.0, abs=1e-9)
    assert valid.std() == pytest.approx(1.0, abs=1e-9)
    # the invalid questionnaire is scored but did not shape the scale
    assert result.measures.filter(pl.col("qid") == "I1")["teacher_attitude"][0] is not None


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        ({"dep2": "-9", "dep5": None}, "missing_depression: dep2=refused, dep5=not_answered"),
        ({"birth_month": "-8"}, "missing_age: birth_month=dont_know"),  # the item behind the age
        ({"birth_year": "2021"}, "missing_age: birth_after_survey"),  # a derived reason
        ({"parent_away": "2", "father_away_dur": "5"}, "missing_migration_group: contradictory_migration"),
        ({"mother_alive": "2"}, "deceased_parent: mother_alive=2, father_alive=1"),
    ],
)
def test_detail_names_what_each_reason_rests_on(overrides, detail):
    assert status_of(valid_row("X", **overrides))["detail"] == detail


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ((False, False, False), []),  # no flag: an empty list, not null
        ((True, False, False), ["a"]),  # one flag
        ((False, True, True), ["b", "c"]),  # several flags keep the dict's order
        ((True, True, True), ["a", "b", "c"]),
    ],
)
def test_reason_lists_name_the_true_flags_in_order(flags, expected):
    from lbc_pipeline.lib.analysis.sample import _with_reason_list

    # a second row with every combination's complement checks that rows are not mixed up
    frame = pl.DataFrame({"a": [flags[0], not flags[0]], "b": [flags[1], not flags[1]],
                          "c": [flags[2], not flags[2]]})
    out = _with_reason_list(frame, {n: pl.col(n) for n in ("a", "b", "c")}, "reasons")
    complement = [n for n, f in zip("abc", flags) if not f]
    assert out["reasons"].to_list() == [expected, complement]
    assert out.columns == ["a", "b", "c", "reasons"]
