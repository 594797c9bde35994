"""The interview rules: a row that breaks one is quarantined with the rule, the row and the
column, and stays out of staging (with its segments, when it is an interview).

Interviews without consent must not be quoted, codes outside the code book would be counted
nowhere, and informant codes that do not match the role or school would cite the wrong
person: the rules keep such rows out of every count and every excerpt.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from lbc_pipeline.config import WaveManifest
from lbc_pipeline.lib.qualitative.redact import Redactor
from lbc_pipeline.lib.qualitative.staging import stage_interviews

MANIFEST = WaveManifest("t", Path("."), dt.date(2019, 11, 1), dt.date(2020, 6, 30))
SCHOOLS = {"S1", "S2", "S3", "S4"}


def interview(**changes) -> dict:
    row = {"wave": "t", "source_row": 1, "interview_id": "I1", "informant_code": "0601", "role": "child",
           "school_id": "S2", "child_migration_group": "mother", "destination": "South Korea",
           "interview_date": "2019-11-20", "duration_min": "30", "language": "Korean",
           "consent": "child_and_guardian", "interviewer": "R1", "informant_name": "金美娜"}
    row.update(changes)
    return row


def code(name: str, parent: str | None = None, hypothesis: str | None = "H3", stance: str = "qualifies", row: int = 1) -> dict:
    return {"wave": "t", "source_row": row, "code": name, "label": name, "parent_code": parent,
            "hypothesis": hypothesis, "stance": stance, "definition": None}


def segment(segment_id: str = "I1-S1", interview_id: str = "I1", code_: str = "peers.no_disclosure",
            text: str | None = "I never tell 李浩然 about my mother.", row: int = 1) -> dict:
    return {"wave": "t", "source_row": row, "interview_id": interview_id, "segment_id": segment_id, "code": code_,
            "text": text, "position": "10-40"}


CODES = [code("peers", hypothesis="H3", stance="context", row=1), code("peers.no_disclosure", "peers", row=2)]


def stage(interviews: list[dict], segments: list[dict] | None = None, codes: list[dict] | None = None):
    raw = {
        "raw.interviews": pl.DataFrame(interviews),
        "raw.interview_segments": pl.DataFrame(segments if segments is not None else [segment()],
                                               schema={c: (pl.Int64 if c == "source_row" else pl.String) for c in segment()}),
        "raw.interview_codes": pl.DataFrame(codes or CODES, schema={c: (pl.Int64 if c == "source_row" else pl.String) for c in CODES[0]}),
    }
    return stage_interviews(raw, "t", SCHOOLS, MANIFEST, Redactor({"金美娜": "[child]"}))


def test_a_valid_interview_passes_typed_and_without_names() -> None:
    staged = stage([interview()])
    assert staged.quarantine.is_empty()
    row = staged.interviews.row(0, named=True)
    assert row["interview_date"] == dt.date(2019, 11, 20) and row["duration_min"] == 30 and row["role_group"] == "child"
    assert "informant_name" not in staged.interviews.columns and "interviewer" not in staged.interviews.columns
    assert staged.segments["text"][0] == "I never tell [name] about my mother."
    assert (staged.segments["start_char"][0], staged.segments["end_char"][0]) == (10, 40)


@pytest.mark.parametrize("changes, rule, column", [
    ({"consent": None}, "missing_consent", "consent"),  # no consent recorded
    ({"consent": "school"}, "missing_consent", "consent"),  # a school's consent does not cover a child
    ({"role": "pupil"}, "unknown_role", "role"),  # not a role of the contract
    ({"school_id": "S9"}, "unknown_school", "school_id"),  # not in the survey's distribution file
    ({"informant_code": "0801"}, "informant_code_mismatch", "informant_code"),  # 08 = a child of S3, not S2
    ({"informant_code": "16A1"}, "informant_code_mismatch", "informant_code"),  # not four digits
    ({"role": "teacher", "child_migration_group": None, "consent": "adult"}, "informant_code_mismatch", "informant_code"),  # 06 is a child's prefix
    ({"duration_min": "3"}, "duration_out_of_bounds", "duration_min"),  # three minutes: a failed recording
    ({"duration_min": "240"}, "duration_out_of_bounds", "duration_min"),  # four hours with a child
    ({"duration_min": "half an hour"}, "duration_out_of_bounds", "duration_min"),  # not a number
    ({"interview_date": "2019-10-02"}, "interview_date_invalid", "interview_date"),  # before the fieldwork window
    ({"interview_date": "2019-11-31"}, "interview_date_invalid", "interview_date"),  # no such day
    ({"child_migration_group": "uncle"}, "migration_group_invalid", "child_migration_group"),  # not a group
    ({"child_migration_group": None}, "migration_group_invalid", "child_migration_group"),  # a child without one
])
def test_each_interview_rule_quarantines_the_row_and_its_segments(changes, rule, column) -> None:
    staged = stage([interview(**changes)])
    assert staged.interviews.is_empty() and staged.segments.is_empty()
    found = staged.quarantine.filter(pl.col("table_name") == "interviews")
    assert (rule, column) in set(found.select("rule", "column_name").iter_rows())
    assert found["source_row"][0] == 1
    segments = staged.quarantine.filter(pl.col("table_name") == "segments")
    assert segments["rule"].to_list() == ["interview_quarantined"]


@pytest.mark.parametrize("changes", [
    {"role": "head_teacher", "informant_code": "1601", "child_migration_group": None, "consent": "school", "duration_min": "75"},  # head teacher of S2
    {"role": "grandparent", "informant_code": "4001", "school_id": "S1", "consent": "adult", "duration_min": "45"},  # 40xx grandparents
    {"duration_min": "10"}, {"duration_min": "60"},  # the bounds themselves are plausible
    {"interview_date": "2020-06-30"},  # the last day of fieldwork
])
def test_rows_at_the_edges_pass(changes) -> None:
    assert stage([interview(**changes)]).quarantine.is_empty()


def test_duplicate_interviews_are_both_quarantined() -> None:
    staged = stage([interview(), interview(source_row=2)])
    assert staged.interviews.is_empty()
    assert staged.quarantine.filter(pl.col("rule") == "duplicate_interview")["source_row"].to_list() == [1, 2]


@pytest.mark.parametrize("segments, rule", [
    ([segment(code_="peers.unknown")], "unknown_code"),  # a code the code book does not have
    ([segment(interview_id="I9")], "unknown_interview"),  # no such interview in the registry
    ([segment(text=None)], "empty_text"),  # nothing coded
    ([segment(), segment(row=2)], "duplicate_segment"),  # the same segment and code twice
])
def test_segment_rules(segments, rule) -> None:
    staged = stage([interview()], segments)
    found = staged.quarantine.filter(pl.col("table_name") == "segments")
    assert rule in found["rule"].to_list()
    assert staged.interviews.height == 1
    # an excerpt never goes to the quarantine: it could hold names
    assert found.filter(pl.col("column_name") == "text")["raw_value"].is_null().all()


@pytest.mark.parametrize("codes, rule", [
    ([*CODES, code("peers.x", stance="agrees", row=3)], "invalid_stance"),
    ([*CODES, code("peers.x", hypothesis="H4", row=3)], "invalid_hypothesis"),
    ([*CODES, code("peers.x", parent="nowhere", row=3)], "unknown_parent_code"),
    ([*CODES, code("peers.no_disclosure", "peers", row=3)], "duplicate_code"),
])
def test_codebook_rules(codes, rule) -> None:
    staged = stage([interview()], codes=codes)
    assert rule in staged.quarantine.filter(pl.col("table_name") == "codebook")["rule"].to_list()


def test_code_levels_follow_the_hierarchy() -> None:
    codes = [*CODES, code("peers.no_disclosure.mother", "peers.no_disclosure", row=3)]
    levels = dict(stage([interview()], codes=codes).codes.select("code", "level").iter_rows())
    assert levels == {"peers": 1, "peers.no_disclosure": 2, "peers.no_disclosure.mother": 3}


def test_the_demo_set_passes_every_rule(demo_staged) -> None:
    assert demo_staged.quarantine.is_empty()
    assert (demo_staged.interviews.height, demo_staged.segments.height, demo_staged.codes.height) == (41, 121, 16)
