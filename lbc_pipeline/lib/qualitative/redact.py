"""Redaction: names of people and schools in interview texts, replaced by role placeholders.

Excerpts are personal data as delivered: they stay whole in the raw layer only. Every text
that leaves it goes through `Redactor.redact`, in this order:

1. **Dictionary** (longest entry first, so a school's name goes before a pupil's name inside
   it): the interview registry's names (`informant_name` and any other delivered column whose
   name contains `name`; placeholder by the informant's role: [child], [teacher], [parent],
   [grandparent]), the survey's raw `student_name`s ([classmate]) and the schools' names of
   the distribution file ([school]). Entries with Latin letters match whole words only.
2. **Rules for names the dictionary misses** (documented limits):
   - `school`: a run of Chinese characters ending in 小学, 中学, 学校, 学院 or 幼儿园 -> [school].
   - `honorific`: a common Chinese or Korean surname, up to two more characters, then 老师,
     校长 or 主任 ([teacher]), 阿姨 or 叔叔 ([adult]), 同学 ([classmate]).
   - `cjk_name`: a run of two to four Chinese characters standing alone in Latin-script text
     whose first character is a common surname -> [name]. It catches any Chinese name in an
     English (translated) excerpt; it over-redacts an isolated word that begins with a
     surname character (高兴 "glad" would go), and it does nothing inside Chinese-language text,
     where runs are longer than four characters: there only the dictionary and the honorific
     rule act.
   - `latin_honorific`: Teacher, Mr, Ms, Mrs, Miss ([teacher] for Teacher, else [adult]),
     Auntie, Uncle ([adult]), Grandpa, Grandma ([grandparent]) followed by a capitalised word
     ("Teacher Wang", "Ms. Kim").
   Missed: a romanised name without an honorific ("Haoran said ..."), nicknames, names in
   Hangul, names whose surname is not in `SURNAMES`, a person named by a description alone.
   Informant codes (04xx, 16xx) are pseudonymous and kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

# Common Han surnames and the surnames of ethnic-Korean (Chaoxianzu) families, one character each.
SURNAMES = frozenset(
    "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石"
    "廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤朴申吴权柳洪全文梁许南卢河成车禹罗辛玄"
    "元千安"
)
CJK = "\u4e00-\u9fff"
ROLE_PLACEHOLDERS = {"child": "[child]", "head_teacher": "[teacher]", "teacher": "[teacher]", "parent": "[parent]",
                     "grandparent": "[grandparent]"}
CLASSMATE, SCHOOL, NAME = "[classmate]", "[school]", "[name]"
MIN_ENTRY_LENGTH = 2  # a one-character entry would erase words

_SCHOOL_RULE = re.compile(f"[{CJK}]*(?:小学|中学|学校|学院|幼儿园)")
_HONORIFICS = {"老师": "[teacher]", "校长": "[teacher]", "主任": "[teacher]", "阿姨": "[adult]", "叔叔": "[adult]",
               "同学": "[classmate]"}
_HONORIFIC_RULE = re.compile(
    f"[{''.join(sorted(SURNAMES))}][{CJK}]{{0,2}}?({'|'.join(_HONORIFICS)})")
_CJK_NAME_RULE = re.compile(f"(?<![{CJK}])[{CJK}]{{2,4}}(?![{CJK}])")
_LATIN_HONORIFICS = {"Teacher": "[teacher]", "Mr": "[adult]", "Ms": "[adult]", "Mrs": "[adult]", "Miss": "[adult]",
                     "Auntie": "[adult]", "Uncle": "[adult]", "Grandpa": "[grandparent]", "Grandma": "[grandparent]"}
_LATIN_RULE = re.compile(r"\b(" + "|".join(_LATIN_HONORIFICS) + r")\.?\s+[A-Z][a-z]+(?:-[A-Za-z]+)?\b")


@dataclass(frozen=True)
class Redacted:
    text: str | None
    by_dictionary: int
    by_rule: int


class Redactor:
    """Replaces dictionary names, then rule-matched names, by placeholders."""

    def __init__(self, entries: dict[str, str]):
        self.entries = {k: v for k, v in entries.items() if k and len(k) >= MIN_ENTRY_LENGTH}
        ordered = sorted(self.entries, key=lambda k: (-len(k), k))
        parts = []
        for entry in ordered:
            escaped = re.escape(entry)
            parts.append(rf"(?<![A-Za-z]){escaped}(?![A-Za-z])" if re.search("[A-Za-z]", entry) else escaped)
        self._dictionary = re.compile("|".join(parts)) if parts else None

    def redact(self, text: str | None) -> Redacted:
        if text is None:
            return Redacted(None, 0, 0)
        by_dictionary = 0
        if self._dictionary is not None:
            text, by_dictionary = self._dictionary.subn(lambda m: self.entries[m.group(0)], text)
        text, n_school = _SCHOOL_RULE.subn(SCHOOL, text)
        text, n_honorific = _HONORIFIC_RULE.subn(lambda m: _HONORIFICS[m.group(1)], text)
        n_cjk = 0

        def cjk_name(match: re.Match) -> str:
            nonlocal n_cjk
            if match.group(0)[0] not in SURNAMES:
                return match.group(0)
            n_cjk += 1
            return NAME

        text = _CJK_NAME_RULE.sub(cjk_name, text)
        text, n_latin = _LATIN_RULE.subn(lambda m: _LATIN_HONORIFICS[m.group(1)], text)
        return Redacted(text, by_dictionary, n_school + n_honorific + n_cjk + n_latin)

    def redact_column(self, frame: pl.DataFrame, column: str) -> tuple[pl.DataFrame, list[int]]:
        """The frame with `column` redacted, and the number of replacements per row."""
        results = [self.redact(v) for v in frame[column].to_list()]
        counts = [r.by_dictionary + r.by_rule for r in results]
        return frame.with_columns(pl.Series(column, [r.text for r in results], dtype=pl.String)), counts


def dictionary(registry: pl.DataFrame, student_names: Iterable[str | None] = (),
               school_names: Iterable[str | None] = ()) -> dict[str, str]:
    """Name -> placeholder from the raw interview registry, the survey and the schools.

    Registry columns whose name contains `name` (informant_name, ...) give role placeholders;
    the survey's student names give [classmate]; schools' names give [school]. When one
    string is in several sources the more specific wins: school, then registry, then survey.
    """
    entries: dict[str, str] = {}
    for name in student_names:
        if name:
            entries[name.strip()] = CLASSMATE
    name_columns = [c for c in registry.columns if "name" in c.lower()]
    if "role" in registry.columns:
        for column in name_columns:
            for value, role in registry.select(column, "role").iter_rows():
                if value:
                    entries[value.strip()] = ROLE_PLACEHOLDERS.get(role or "", NAME)
    for name in school_names:
        if name:
            entries[name.strip()] = SCHOOL
    return entries


def find_names(text: str, names: Iterable[str]) -> list[str]:
    """The names (of at least MIN_ENTRY_LENGTH characters) that occur in `text`."""
    return sorted({n for n in names if n and len(n) >= MIN_ENTRY_LENGTH and n in text})
