"""Interview marts: counts checked against independent counts, the registry rule, the
agreement rule case by case, and the joint display that must follow the coding.

The joint display is the strand's conclusion: if its labels were constants, recoding the
interviews would change nothing; the tests recode and watch the label move.
"""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest

from lbc_pipeline.lib.qualitative import marts as qm
from lbc_pipeline_tests.lib.qualitative.conftest import REFERENCE

EXPECTED = {"total": 41, "child": 18, "teacher": 13, "parent": 7, "grandparent": 3}
# The reference wave's survey verdicts (marts.hypotheses): H1 and H3 supported, H2 not.
VERDICTS = pl.DataFrame({
    "hypothesis": ["H1", "H2", "H2", "H3", "H3", "H3"],
    "measure": ["belong", "teacher_attitude", "ht_satisfaction", "best_friends", "class_closeness", "peer_satisfaction"],
    "buffering": [True, False, False, False, True, True],
    "supported": [True, False, False, True, True, True],
})


def test_expected_counts_come_from_wave_yaml() -> None:
    assert qm.expected_interviews(REFERENCE) == EXPECTED


def test_registry_counts_match_a_plain_count(demo_staged, demo_raw) -> None:
    registry = qm.registry_summary(demo_staged.interviews, EXPECTED, "2019")
    raw = demo_raw["raw.interviews"].to_dicts()
    by_role = Counter(r["role"] for r in raw)
    by_school = Counter(r["school_id"] for r in raw)
    got = {(r["dimension"], r["grp"]): r["n_interviews"] for r in registry.iter_rows(named=True)}
    assert got[("total", "all")] == len(raw) == 41
    assert {g: got[("role", g)] for g in by_role} == dict(by_role)
    assert {g: got[("school", g)] for g in by_school} == dict(by_school)
    assert got[("role_group", "teacher")] == by_role["head_teacher"] + by_role["teacher"] == 13
    minutes = sorted(int(r["duration_min"]) for r in raw if r["role"] == "child")
    child = registry.filter((pl.col("dimension") == "role_group") & (pl.col("grp") == "child")).row(0, named=True)
    assert (child["duration_min_min"], child["duration_min_max"]) == (minutes[0], minutes[-1])
    assert child["duration_min_median"] == (minutes[8] + minutes[9]) / 2  # 18 children: mean of the middle two


def test_registry_check_passes_with_41_and_fails_when_a_row_is_removed(demo_staged) -> None:
    registry = qm.registry_summary(demo_staged.interviews, EXPECTED, "2019")
    assert qm.check_registry(registry, EXPECTED, True).passed
    fewer = demo_staged.interviews.filter(pl.col("role") != "grandparent").vstack(
        demo_staged.interviews.filter(pl.col("role") == "grandparent").head(2))
    outcome = qm.check_registry(qm.registry_summary(fewer, EXPECTED, "2019"), EXPECTED, True)
    assert not outcome.passed
    assert "grandparent: 2 interviews, 3 expected" in outcome.description and "all: 40 interviews, 41 expected" in outcome.description


def test_registry_check_fails_when_interviews_are_expected_but_none_came() -> None:
    empty = qm.registry_summary(pl.DataFrame(schema={"interview_id": pl.String, "role": pl.String, "role_group": pl.String,
                                                     "school_id": pl.String, "child_migration_group": pl.String,
                                                     "duration_min": pl.Int64, "interview_date": pl.Date}), EXPECTED, "w")
    outcome = qm.check_registry(empty, EXPECTED, False)
    assert not outcome.passed and "child: 0 interviews, 18 expected" in outcome.description
    assert qm.check_registry(empty, {}, False).passed  # nothing expected, nothing delivered


@pytest.mark.parametrize("counts, supported, label, dominant", [
    ({"supports": 10, "qualifies": 2, "contradicts": 0}, True, "convergent", "supports"),  # H1-like
    ({"supports": 3, "qualifies": 0, "contradicts": 12}, False, "convergent", "contradicts"),  # H2-like: the null explained
    ({"supports": 8, "qualifies": 12, "contradicts": 0}, True, "complementary", "qualifies"),  # H3-like
    ({"supports": 10, "qualifies": 0, "contradicts": 1}, False, "divergent", "supports"),  # interviews see buffering, survey not
    ({"supports": 1, "qualifies": 0, "contradicts": 9}, True, "divergent", "contradicts"),  # survey buffers, interviews deny
    ({"supports": 1, "qualifies": 1, "contradicts": 0}, True, "silent", None),  # two informants: too few
    ({"supports": 5, "qualifies": 5, "contradicts": 5}, True, "complementary", "qualifies"),  # a three-way tie: qualifies
    ({"supports": 5, "qualifies": 0, "contradicts": 5}, True, "divergent", "contradicts"),  # supports vs contradicts tie
])
def test_agreement_rule(counts, supported, label, dominant) -> None:
    counts = {**counts, "_distinct": sum(counts.values())}
    got_dominant, got_label, note = qm.agreement(counts, supported)
    assert (got_dominant, got_label) == (dominant, label)
    assert note


def test_reference_joint_display(demo_staged) -> None:
    triangulation = qm.triangulate(VERDICTS, demo_staged.segments, demo_staged.codes, "2019")
    labels = dict(triangulation.select("hypothesis", "agreement").iter_rows())
    assert labels == {"H1": "convergent", "H2": "convergent", "H3": "complementary"}
    h2 = triangulation.filter(pl.col("hypothesis") == "H2").row(0, named=True)
    assert h2["survey_finding"] == "no buffering" and "null finding" in h2["agreement_note"]
    # informants per stance, counted independently from the staged rows
    codes = dict(demo_staged.codes.select("code", "stance").iter_rows())
    hyp = dict(demo_staged.codes.select("code", "hypothesis").iter_rows())
    for row in triangulation.iter_rows(named=True):
        for stance in ("supports", "qualifies", "contradicts"):
            informants = {s["interview_id"] for s in demo_staged.segments.iter_rows(named=True)
                          if hyp[s["code"]] == row["hypothesis"] and codes[s["code"]] == stance}
            assert row[f"n_informants_{stance}"] == len(informants), (row["hypothesis"], stance)


def _recode(segments: pl.DataFrame, old: list[str], new: str) -> pl.DataFrame:
    return segments.with_columns(pl.when(pl.col("code").is_in(old)).then(pl.lit(new)).otherwise(pl.col("code")).alias("code"))


@pytest.mark.parametrize("old, new, hypothesis, label", [
    # H3: the non-disclosure and hiding themes recoded as comfort: the interviews now support -> convergent
    (["peers.no_disclosure", "peers.hide_from_mother"], "peers.comfort_distraction", "H3", "convergent"),
    # H3: the comfort theme recoded as non-disclosure: still complementary (qualifies dominates further)
    (["peers.comfort_distraction"], "peers.no_disclosure", "H3", "complementary"),
    # H1: every supporting theme recoded as pressure: the interviews now qualify -> complementary
    (["belonging.safe_place", "belonging.study_for_mother"], "belonging.pressure", "H1", "complementary"),
    # H2: the distance themes recoded as care: interviews see buffering, the survey does not -> divergent
    (["teachers.authority", "teachers.distance", "teachers.informer_stigma"], "teachers.care", "H2", "divergent"),
    # H2: every teacher theme recoded as an overall theme: nobody speaks to H2 -> silent
    (["teachers.authority", "teachers.distance", "teachers.informer_stigma", "teachers.care"], "absence.missing_mother", "H2", "silent"),
])
def test_recoding_moves_the_label(demo_staged, old, new, hypothesis, label) -> None:
    segments = _recode(demo_staged.segments, old, new)
    triangulation = qm.triangulate(VERDICTS, segments, demo_staged.codes, "2019")
    assert triangulation.filter(pl.col("hypothesis") == hypothesis)["agreement"][0] == label


def test_a_different_survey_verdict_moves_the_label(demo_staged) -> None:
    flipped = VERDICTS.with_columns(pl.when(pl.col("hypothesis") == "H1").then(False).otherwise(pl.col("supported")).alias("supported"),
                                    pl.when(pl.col("hypothesis") == "H1").then(False).otherwise(pl.col("buffering")).alias("buffering"))
    triangulation = qm.triangulate(flipped, demo_staged.segments, demo_staged.codes, "2019")
    assert triangulation.filter(pl.col("hypothesis") == "H1")["agreement"][0] == "divergent"


def test_examples_are_two_or_three_redacted_excerpts_from_different_informants(demo_staged, survey_raw) -> None:
    triangulation = qm.triangulate(VERDICTS, demo_staged.segments, demo_staged.codes, "2019")
    examples = qm.triangulation_examples(triangulation, demo_staged.segments, demo_staged.codes,
                                         demo_staged.interviews, survey_raw[1], "2019")
    for hypothesis, part in examples.group_by("hypothesis"):
        assert 2 <= part.height <= 3
        assert part["informant_code"].n_unique() == part.height
        assert part["rank"].to_list() == list(range(1, part.height + 1))
    staged_texts = set(demo_staged.segments["text"])
    assert set(examples["excerpt"]) <= staged_texts  # the redacted texts, not raw ones
    assert examples.filter(pl.col("citation").str.contains("child, ethnic-Korean")).height > 0


def test_code_frequencies_match_a_plain_count(demo_staged) -> None:
    frequencies = qm.code_frequencies(demo_staged.interviews, demo_staged.segments, demo_staged.codes, "2019")
    n_codes = demo_staged.codes.height
    groups = 1 + 4 + 4  # all, four role groups, four migration groups
    assert frequencies.height == n_codes * groups  # zeros included: the full matrix
    segments = demo_staged.segments.to_dicts()
    for code in ("peers.no_disclosure", "teachers.authority"):
        for group in ("child", "teacher"):
            hits = [s for s in segments if s["code"] == code and s["role_group"] == group]
            row = frequencies.filter((pl.col("code") == code) & (pl.col("dimension") == "role_group")
                                     & (pl.col("grp") == group)).row(0, named=True)
            assert (row["n_segments"], row["n_informants"]) == (len(hits), len({s["interview_id"] for s in hits}))
            size = demo_staged.interviews.filter(pl.col("role_group") == group).height
            assert row["share_informants"] == pytest.approx(row["n_informants"] / size)


def test_cooccurrence_on_three_hand_made_interviews() -> None:
    interviews = pl.DataFrame({"interview_id": ["A", "B", "C"], "role_group": ["child", "child", "teacher"],
                               "child_migration_group": ["mother", "none", None]})
    segments = pl.DataFrame({"interview_id": ["A", "A", "A", "B", "B", "C"],
                             "code": ["x", "y", "x", "x", "y", "y"]})
    got = qm.code_cooccurrence(interviews, segments, "w")
    overall = got.filter(pl.col("dimension") == "all").row(0, named=True)
    # x in A, B; y in A, B, C; both in A and B: 2 of 3 interviews with either
    assert (overall["code_a"], overall["code_b"], overall["n_interviews"]) == ("x", "y", 2)
    assert (overall["n_interviews_a"], overall["n_interviews_b"], overall["jaccard"]) == (2, 3, pytest.approx(2 / 3))
    teacher = got.filter((pl.col("dimension") == "role_group") & (pl.col("grp") == "teacher"))
    assert teacher.is_empty()  # the teacher's interview holds one code only


def test_unknown_expected_keys_are_refused(tmp_path) -> None:
    (tmp_path / "wave.yaml").write_text("wave: w\ninterviews:\n  expected:\n    teachers: 13\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown interviews.expected keys"):
        qm.expected_interviews(tmp_path)
    assert qm.expected_interviews(tmp_path / "absent") == {}
