"""The SYNTHETIC interview demo set: reproducible, true to the paper's design, and carrying the
names that redaction must remove.

The demo set stands in for interviews that are not public: if its counts, codes or dates
drifted from the design, the registry check and the triangulation would be tested on a
study that never was; if regeneration changed bytes, nobody could trust the committed copy.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from lbc_pipeline.synthetic import cli, interviews

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "data" / "raw" / "2019" / "interviews"
FILES = ("interviews.csv", "segments.csv", "codebook.csv", "interviews.qdpx", "README.md")


@pytest.fixture(scope="module")
def demo() -> interviews.DemoSet:
    return interviews.generate_demo_set()


def test_lbc_generate_rewrites_the_committed_interviews_byte_for_byte(tmp_path: Path) -> None:
    assert cli.main(["--out", str(tmp_path)]) == 0
    for name in FILES:
        assert (tmp_path / "interviews" / name).read_bytes() == (COMMITTED / name).read_bytes(), name


def test_other_seed_other_project(demo: interviews.DemoSet) -> None:
    other = interviews.generate_demo_set(seed=7)
    assert not other.segments.equals(demo.segments)
    assert other.interviews.height == demo.interviews.height == 41


def test_role_counts_are_the_papers(demo: interviews.DemoSet) -> None:
    counts = dict(demo.interviews.group_by("role").len().iter_rows())
    assert counts == {"child": 18, "head_teacher": 7, "teacher": 6, "parent": 7, "grandparent": 3}
    assert counts["head_teacher"] + counts["teacher"] == 13


def test_informant_codes_follow_the_scheme(demo: interviews.DemoSet) -> None:
    rows = demo.interviews.to_dicts()
    assert len({r["informant_code"] for r in rows}) == 41
    for r in rows:
        prefix = interviews.INFORMANT_PREFIXES[interviews.role_group(r["role"])][r["school_id"]]
        assert len(r["informant_code"]) == 4 and r["informant_code"].startswith(prefix), r
    # the published prefixes: children of the ethnic-Korean primary school are 04xx, ...
    by_code = {r["informant_code"][:2]: (r["role"], r["school_id"]) for r in rows}
    assert by_code["04"] == ("child", "S1") and by_code["16"][1] == "S2" and by_code["40"][0] == "grandparent"


def test_dates_lengths_and_consent_are_plausible(demo: interviews.DemoSet) -> None:
    for r in demo.interviews.to_dicts():
        day = dt.date.fromisoformat(r["interview_date"])
        assert dt.date(2019, 11, 1) <= day <= dt.date(2020, 6, 30), r
        low, high = interviews.DURATION_MINUTES[interviews.role_group(r["role"])]
        assert low <= int(r["duration_min"]) <= high, r
        assert r["consent"] == ("child_and_guardian" if r["role"] == "child" else r["consent"])
        assert r["consent"] in ("child_and_guardian", "adult", "school")
        assert (r["child_migration_group"] is None) == (interviews.role_group(r["role"]) == "teacher")
        assert r["synthetic"] == "yes"


def test_codebook_carries_each_hypothesis_with_hierarchy(demo: interviews.DemoSet) -> None:
    book = demo.codebook
    parents = set(book["parent_code"].drop_nulls())
    assert parents <= set(book["code"])
    for hypothesis in ("H1", "H2", "H3"):
        themes = book.filter((pl.col("hypothesis") == hypothesis) & pl.col("parent_code").is_not_null())
        assert themes.height >= 3, hypothesis
    assert set(book["stance"]) == {"supports", "qualifies", "contradicts", "context"}
    assert set(demo.segments["code"]) <= set(book["code"])


def test_segments_sit_at_their_positions_and_plant_names(demo: interviews.DemoSet) -> None:
    for r in demo.segments.to_dicts():
        start, end = map(int, r["position"].split("-"))
        assert demo.transcripts[r["interview_id"]][start:end] == r["text"]
    planted = demo.planted
    assert set(planted["slot"]) >= {"classmate", "friend", "teacher", "teacher_en", "school", "child"}
    texts = dict(demo.segments.select("segment_id", "text").iter_rows())
    for r in planted.to_dicts():
        assert r["value"] in texts[r["segment_id"]], r
    assert "SYNTHETIC" in (COMMITTED / "README.md").read_text()
