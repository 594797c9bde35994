"""Redaction: every planted name leaves the excerpts, and the documented misses are real.

Excerpts are the most personal data the product holds; a name that slips through is
published with the report. The rule that catches names the dictionary misses is only as
good as what it is tested on, so its limits are tested too.
"""

from __future__ import annotations

import polars as pl
import pytest

from lbc_pipeline.lib.qualitative.privacy import find_leaks
from lbc_pipeline.lib.qualitative.redact import Redactor, dictionary
from lbc_pipeline.synthetic.interviews import generate_demo_set

REDACTOR = Redactor({"珲春市第六朝鲜族中学": "[school]", "金美娜": "[child]", "程文": "[classmate]", "Li Na": "[teacher]"})


@pytest.mark.parametrize("text, expected", [
    # dictionary: a school's full name, longest first (程文 is not cut out of it)
    ("At 珲春市第六朝鲜族中学 we study.", "At [school] we study."),
    ("金美娜 and 程文 walk home.", "[child] and [classmate] walk home."),
    # dictionary entries with Latin letters match whole words only
    ("Li Na came; Li Nan did not.", "[teacher] came; Li Nan did not."),
    # rule school: a Chinese run ending in 中学 / 小学 / 学校
    ("She moved to 第九中学 last year.", "She moved to [school] last year."),
    # rule honorific: surname + 老师 / 阿姨 / 同学
    ("I told 王老师 nothing.", "I told [teacher] nothing."),
    ("Only 朴阿姨 knows.", "Only [adult] knows."),
    ("我和李同学玩。", "我和[classmate]玩。"),
    # rule cjk_name: an isolated 2-4 character run starting with a surname, in English text
    ("We play with 赵俊浩 after school.", "We play with [name] after school."),
    # rule latin_honorific: Teacher / Ms. + a capitalised word
    ("Teacher Wang and Ms. Kim came.", "[teacher] and [adult] came."),
    ("Grandma Choi cooks.", "[grandparent] cooks."),
])
def test_names_are_replaced_by_role_placeholders(text: str, expected: str) -> None:
    assert REDACTOR.redact(text).text == expected


@pytest.mark.parametrize("text", [
    "Haoran said nothing.",  # a romanised name without an honorific: missed (documented)
    "我很想妈妈，李浩然也不知道。",  # a name inside Chinese-language text without honorific: missed
    "The teacher was kind.",  # no name: untouched
    "Informant 0601 said so.",  # informant codes are kept
])
def test_documented_misses_and_untouched_text(text: str) -> None:
    assert REDACTOR.redact(text).text == text


def test_the_rule_over_redacts_an_isolated_word_starting_with_a_surname() -> None:
    # documented false positive: 高兴 ("glad") starts with the surname 高
    assert REDACTOR.redact("He was 高兴 today.").text == "He was [name] today."


def test_counts_separate_dictionary_and_rules() -> None:
    result = REDACTOR.redact("金美娜 told 王老师.")
    assert (result.by_dictionary, result.by_rule) == (1, 1)


def test_dictionary_takes_registry_survey_and_school_names() -> None:
    registry = pl.DataFrame({"role": ["child", "head_teacher"], "informant_name": ["金美娜", "崔英姬"]})
    entries = dictionary(registry, ["程文", None], ["第三中学"])
    assert entries == {"金美娜": "[child]", "崔英姬": "[teacher]", "程文": "[classmate]", "第三中学": "[school]"}


def test_no_planted_name_survives_staging(demo_staged, demo_raw) -> None:
    """Every name the demo set planted (registry, survey roll, fresh names, teachers, schools)."""
    planted = generate_demo_set().planted
    texts = {f"staging.{t}.{c}": frame[c].drop_nulls().to_list()
             for t, frame in (("interview_segments", demo_staged.segments), ("interviews", demo_staged.interviews),
                              ("interview_codes", demo_staged.codes))
             for c, dtype in frame.schema.items() if dtype == pl.String}
    assert find_leaks(texts, planted["value"].to_list()) == []
    assert int(demo_staged.segments["n_redactions"].sum()) >= planted.height
    # the raw layer does hold every one of them (else the search above would prove nothing)
    raw_texts = {"raw.interview_segments.text": demo_raw["raw.interview_segments"]["text"].to_list()}
    assert {name for _, name in find_leaks(raw_texts, planted["value"].to_list())} == set(planted["value"])


def test_find_leaks_names_the_place() -> None:
    assert find_leaks({"t.c": ["a 程文 b", "clean"]}, ["程文", "x"]) == [("t.c", "程文")]


def test_find_leaks_matches_latin_names_as_whole_words() -> None:
    assert find_leaks({"t.c": ["a Likert scale", "Teacher Li came"]}, ["Li"]) == [("t.c", "Li")]
