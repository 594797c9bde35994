"""From the raw interview tables to staging: rules, quarantine, types and redaction.

A row that breaks a rule goes to `staging.interview_quarantine` (one row per rule broken,
naming the delivered table, row and column) and stays out of staging; so do the segments of
a quarantined interview (an excerpt without consent may not be used). The rules:

interviews
- `missing_consent`: no consent, or one that does not cover the role (a child needs
  child_and_guardian; teachers adult or school; parents and grandparents adult).
- `unknown_role`; `unknown_school` (not in the survey's distribution file).
- `informant_code_mismatch`: not four digits, or its first two do not give the role's group
  and the school (`INFORMANT_PREFIXES`, the paper's scheme).
- `duration_out_of_bounds`: not a whole number of minutes in `PLAUSIBLE_MINUTES` for the group.
- `interview_date_invalid`: not a date, or outside the wave's fieldwork window.
- `migration_group_invalid`: a child, parent or grandparent needs none/mother/father/both;
  a teacher none at all.
- `duplicate_interview`: an interview_id delivered twice (every copy quarantined).
codebook: `invalid_stance`, `invalid_hypothesis`, `unknown_parent_code`, `duplicate_code`.
segments: `unknown_interview`, `interview_quarantined`, `unknown_code` (not in the code
book that passed), `empty_text`, `duplicate_segment` (the same segment and code twice).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass

import polars as pl

from lbc_pipeline.config import WaveManifest
from lbc_pipeline.lib.qualitative import contracts as qc
from lbc_pipeline.lib.qualitative.redact import Redactor

# The informant code's first two characters by group and school (shared/spec/qualitative.md:
# 04 children of the ethnic-Korean primary school, 06 of the ethnic-Korean secondary school,
# 08 of a Han secondary school, 16 a head teacher of the ethnic-Korean secondary school, 18 a
# teacher of a Han secondary school, 40 grandparents; the rest continue the pattern).
INFORMANT_PREFIXES = {
    "child": {"S1": "04", "S2": "06", "S3": "08", "S4": "10"},
    "teacher": {"S1": "14", "S2": "16", "S3": "18", "S4": "20"},
    "parent": {"S1": "24", "S2": "26", "S3": "28", "S4": "30"},
    "grandparent": {"S1": "40", "S2": "42", "S3": "44", "S4": "46"},
}
PLAUSIBLE_MINUTES = {"child": (10, 60), "teacher": (30, 150), "parent": (20, 120), "grandparent": (20, 120)}
CONSENT_BY_GROUP = {"child": ("child_and_guardian",), "teacher": ("adult", "school"), "parent": ("adult",),
                    "grandparent": ("adult",)}
_POSITION = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def role_group(role: str | None) -> str | None:
    if role in ("head_teacher", "teacher"):
        return "teacher"
    return role if role in qc.ROLE_GROUPS else None


@dataclass(frozen=True)
class StagedInterviews:
    interviews: pl.DataFrame
    codes: pl.DataFrame
    segments: pl.DataFrame
    quarantine: pl.DataFrame

    def tables(self) -> dict[str, pl.DataFrame]:
        return {"staging.interviews": self.interviews, "staging.interview_codes": self.codes,
                "staging.interview_segments": self.segments, "staging.interview_quarantine": self.quarantine}


class _Quarantine:
    def __init__(self, wave: str):
        self.wave = wave
        self.rows: list[dict] = []

    def add(self, table: str, row: dict, record: str | None, column: str, rule: str, detail: str,
            show_value: bool = True) -> None:
        self.rows.append({"wave": self.wave, "table_name": table, "source_row": row["source_row"],
                          "record_id": row.get(record) if record else None, "column_name": column,
                          "raw_value": row.get(column) if show_value else None, "rule": rule, "detail": detail})

    def frame(self) -> pl.DataFrame:
        schema = {"wave": pl.String, "table_name": pl.String, "source_row": pl.Int64, "record_id": pl.String,
                  "column_name": pl.String, "raw_value": pl.String, "rule": pl.String, "detail": pl.String}
        return pl.DataFrame(self.rows, schema=schema).sort("table_name", "source_row", "rule")


def interview_problems(row: dict, schools: set[str], manifest: WaveManifest | None) -> list[tuple[str, str, str]]:
    """(column, rule, detail) for each rule one registry row breaks."""
    problems = []
    role, group = row.get("role"), role_group(row.get("role"))
    if role not in qc.ROLES:
        problems.append(("role", "unknown_role", f"one of {', '.join(qc.ROLES)}"))
    consent = row.get("consent")
    allowed = CONSENT_BY_GROUP.get(group or "", qc.CONSENTS)
    if consent not in allowed:
        problems.append(("consent", "missing_consent", f"a {role or 'informant'} interview needs consent "
                         f"{' or '.join(allowed)}" + ("" if consent else "; none is recorded")))
    school = row.get("school_id")
    if school not in schools:
        problems.append(("school_id", "unknown_school", "a school of the survey's distribution file"))
    elif group is not None:
        prefix = INFORMANT_PREFIXES.get(group, {}).get(school)
        code = row.get("informant_code") or ""
        if not re.fullmatch(r"\d{4}", code) or (prefix is not None and code[:2] != prefix):
            expected = f"{prefix}xx" if prefix else "four digits"
            problems.append(("informant_code", "informant_code_mismatch",
                             f"a {group} of {school} has code {expected}"))
    minutes = row.get("duration_min")
    if group is not None:
        low, high = PLAUSIBLE_MINUTES[group]
        if not (minutes and re.fullmatch(r"\d+", minutes) and low <= int(minutes) <= high):
            problems.append(("duration_min", "duration_out_of_bounds", f"whole minutes, {low}-{high} for a {group}"))
    day = _date(row.get("interview_date"))
    if day is None:
        problems.append(("interview_date", "interview_date_invalid", "a date YYYY-MM-DD"))
    elif manifest is not None and manifest.has_fieldwork and not manifest.fieldwork_start <= day <= manifest.fieldwork_end:
        problems.append(("interview_date", "interview_date_invalid",
                         f"inside the fieldwork window {manifest.fieldwork_start} to {manifest.fieldwork_end}"))
    migration = row.get("child_migration_group")
    if group == "teacher" and migration is not None:
        problems.append(("child_migration_group", "migration_group_invalid", "empty for a teacher"))
    elif group not in (None, "teacher") and migration not in qc.MIGRATION_GROUPS:
        problems.append(("child_migration_group", "migration_group_invalid", "none, mother, father or both"))
    return problems


def _date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


def stage_interviews(raw: dict[str, pl.DataFrame], wave: str, schools: set[str], manifest: WaveManifest | None,
                     redactor: Redactor) -> StagedInterviews:
    """Apply the rules to the raw tables (`raw.interviews`, `raw.interview_segments`,
    `raw.interview_codes` rows of one wave) and build the staging tables, redacted."""
    quarantine = _Quarantine(wave)

    # code book
    code_rows = raw["raw.interview_codes"].sort("source_row").to_dicts()
    counts = Counter(r["code"] for r in code_rows)
    known = {r["code"] for r in code_rows}
    good_codes = []
    for r in code_rows:
        bad = False
        if counts[r["code"]] > 1:
            quarantine.add("codebook", r, "code", "code", "duplicate_code", "each code once"); bad = True
        if r["stance"] not in qc.STANCES:
            quarantine.add("codebook", r, "code", "stance", "invalid_stance", ", ".join(qc.STANCES)); bad = True
        if r["hypothesis"] is not None and r["hypothesis"] not in qc.HYPOTHESES:
            quarantine.add("codebook", r, "code", "hypothesis", "invalid_hypothesis", "H1, H2, H3 or empty"); bad = True
        if r["parent_code"] is not None and r["parent_code"] not in known:
            quarantine.add("codebook", r, "code", "parent_code", "unknown_parent_code", "a code of the code book"); bad = True
        if not bad:
            good_codes.append(r)
    parents = {r["code"]: r["parent_code"] for r in good_codes}

    def level(code: str) -> int:
        depth, seen = 1, {code}
        while parents.get(code) and parents[code] not in seen:
            code = parents[code]
            seen.add(code)
            depth += 1
        return depth

    codes = pl.DataFrame([{
        "wave": wave, "code": r["code"], "label": redactor.redact(r["label"]).text, "parent_code": r["parent_code"],
        "level": level(r["code"]), "hypothesis": r["hypothesis"], "stance": r["stance"],
        "definition": redactor.redact(r["definition"]).text, "source_row": r["source_row"],
    } for r in good_codes], schema=_schema("staging.interview_codes"))

    # registry
    interview_rows = raw["raw.interviews"].sort("source_row").to_dicts()
    ids = Counter(r["interview_id"] for r in interview_rows)
    registry, quarantined_ids = [], set()
    for r in interview_rows:
        problems = interview_problems(r, schools, manifest)
        if ids[r["interview_id"]] > 1:
            problems.append(("interview_id", "duplicate_interview", "each interview once"))
        for column, rule, detail in problems:
            quarantine.add("interviews", r, "interview_id", column, rule, detail)
        if problems:
            quarantined_ids.add(r["interview_id"])
        else:
            registry.append(r)
    interviews = pl.DataFrame([{
        "wave": wave, "interview_id": r["interview_id"], "informant_code": r["informant_code"], "role": r["role"],
        "role_group": role_group(r["role"]), "school_id": r["school_id"],
        "child_migration_group": r["child_migration_group"], "destination": redactor.redact(r.get("destination")).text,
        "interview_date": _date(r["interview_date"]), "duration_min": int(r["duration_min"]),
        "language": r.get("language"), "consent": r["consent"], "source_row": r["source_row"],
    } for r in registry], schema=_schema("staging.interviews"))

    # segments
    by_id = {r["interview_id"]: r for r in registry}
    staged_codes = {r["code"] for r in good_codes}
    segment_rows = raw["raw.interview_segments"].sort("source_row").to_dicts()
    pairs = Counter((r["segment_id"], r["code"]) for r in segment_rows)
    segments = []
    for r in segment_rows:
        problems = []
        if r["interview_id"] in quarantined_ids:
            problems.append(("interview_id", "interview_quarantined", "its interview broke a rule (see the interviews rows)"))
        elif r["interview_id"] not in by_id:
            problems.append(("interview_id", "unknown_interview", "an interview of the registry"))
        if r["code"] not in staged_codes:
            problems.append(("code", "unknown_code", "a code of the code book"))
        if not r["text"]:
            problems.append(("text", "empty_text", "an excerpt"))
        if pairs[(r["segment_id"], r["code"])] > 1:
            problems.append(("segment_id", "duplicate_segment", "each segment coded once with a code"))
        for column, rule, detail in problems:
            quarantine.add("segments", r, "segment_id", column, rule, detail, show_value=column != "text")
        if problems:
            continue
        interview = by_id[r["interview_id"]]
        redacted = redactor.redact(r["text"])
        match = _POSITION.match(r.get("position") or "")
        segments.append({
            "wave": wave, "interview_id": r["interview_id"], "segment_id": r["segment_id"], "code": r["code"],
            "informant_code": interview["informant_code"], "role": interview["role"],
            "role_group": role_group(interview["role"]), "school_id": interview["school_id"],
            "child_migration_group": interview["child_migration_group"], "text": redacted.text,
            "n_redactions": redacted.by_dictionary + redacted.by_rule,
            "start_char": int(match.group(1)) if match else None, "end_char": int(match.group(2)) if match else None,
            "source_row": r["source_row"],
        })
    segments_frame = pl.DataFrame(segments, schema=_schema("staging.interview_segments"))
    return StagedInterviews(
        interviews=qc.validated("staging.interviews", interviews),
        codes=qc.validated("staging.interview_codes", codes),
        segments=qc.validated("staging.interview_segments", segments_frame),
        quarantine=qc.validated("staging.interview_quarantine", quarantine.frame()),
    )


def _schema(table: str) -> dict[str, pl.DataType]:
    from lbc_pipeline.lib.contracts import schema_for

    return {name: column.dtype.type for name, column in schema_for(table).columns.items()}
