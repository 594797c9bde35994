"""Proof that no raw name leaves the raw layer: the dictionary of names, and a search of every
text outside `raw` (and of the report) for them. The functions read the connection's own
database: a wave's working database (one wave, raw included) or a serving file (no raw).

Person names (the interview registry's names, the survey's `student_name`s) are searched in
every text column of every non-raw table and in the whole HTML report. School names are
searched in the interview strand's tables and the report's interview section only: the
survey strand publishes schools' names on purpose (`staging.distribution`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import duckdb

from lbc_pipeline.lib.io.warehouse import SCHEMAS, has_table, warehouse_tables
from lbc_pipeline.lib.qualitative.redact import MIN_ENTRY_LENGTH

INTERVIEW_TABLE_PREFIXES = ("interview", "triangulation")


def _names(con: duckdb.DuckDBPyConnection, sql: str) -> set[str]:
    try:
        return {r[0].strip() for r in con.execute(sql).fetchall() if r[0] and len(r[0].strip()) >= MIN_ENTRY_LENGTH}
    except duckdb.CatalogException:
        return set()


def survey_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every child's name on the survey's rolls, sorted."""
    if not has_table(con, "raw.questionnaires"):
        return []
    return sorted(r[0] for r in con.execute(
        "select distinct student_name from raw.questionnaires where student_name is not null").fetchall())


def raw_person_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every person's name the raw layer holds."""
    names = set()
    if has_table(con, "raw.questionnaires"):
        names = _names(con, "select distinct student_name from raw.questionnaires")
    if has_table(con, "raw.interviews"):
        interviews = "raw.interviews"
        columns = [c for c, t in zip(*_columns(con, interviews)) if "name" in c and t == "VARCHAR"]
        for column in columns:
            names |= _names(con, f'select distinct "{column}" from {interviews}')
    return names


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> tuple[list[str], list[str]]:
    result = con.sql(f"select * from {relation} limit 0")
    return result.columns, [str(t) for t in result.types]


def raw_roll_numbers(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every school roll number (`student_no`) the raw layer holds."""
    if not has_table(con, "raw.questionnaires"):
        return set()
    return _names(con, "select distinct student_no from raw.questionnaires")


def raw_school_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    if not has_table(con, "raw.distribution"):
        return set()
    return _names(con, "select distinct school_name from raw.distribution")


def text_values(con: duckdb.DuckDBPyConnection, interview_tables_only: bool = False) -> dict[str, list[str]]:
    """Distinct values of every text column of every table outside `raw` (staging, analysis,
    marts): `schema.table.column` -> values."""
    out = {}
    for table in warehouse_tables(con, tuple(s for s in SCHEMAS if s != "raw")):
        if interview_tables_only and not table.split(".")[1].startswith(INTERVIEW_TABLE_PREFIXES):
            continue
        schema, name = table.split(".", 1)
        relation = f'"{schema}"."{name}"'
        for column, column_type in zip(*_columns(con, relation)):
            if column_type != "VARCHAR":
                continue
            values = con.execute(f'select distinct "{column}" from {relation} where "{column}" is not null').fetchall()
            out[f"{table}.{column}"] = [v[0] for v in values]
    return out


# Embedded images (base64 data URIs) are binary, not text anyone reads; their letters can
# form a short name between '+' and '/', so they are left out of the search.
DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+")
DIGIT_RUN = re.compile(r"[0-9]+")


def find_leaks(texts: dict[str, Iterable[str]], names: Iterable[str]) -> list[tuple[str, str]]:
    """(where, name) for every name found inside a text (embedded images left out). Names in
    Latin letters match whole words only ("Li" is not found in "Likert"), numbers (roll
    numbers) whole numbers only (2015010101 is not found in 20150101011)."""
    names = sorted({n for n in names if n and len(n) >= MIN_ENTRY_LENGTH}, key=lambda n: (-len(n), n))
    numbers = {n for n in names if n.isascii() and n.isdigit()}  # found as whole digit runs: a set lookup
    words = [n for n in names if n not in numbers]
    if not names:
        return []

    def word(n: str) -> str:
        if re.search("[A-Za-z]", n):
            return rf"(?<![A-Za-z]){re.escape(n)}(?![A-Za-z])"
        return re.escape(n)

    pattern = re.compile("|".join(word(n) for n in words)) if words else None
    leaks = set()
    for where, values in texts.items():
        for value in values:
            text = DATA_URI.sub(" ", value or "")
            if numbers:
                leaks.update((where, run) for run in DIGIT_RUN.findall(text) if run in numbers)
            if pattern is not None:
                for match in pattern.finditer(text):
                    leaks.add((where, match.group(0)))
    return sorted(leaks)
