"""The contracts of the interview strand's tables, registered with `lib.contracts.register`.

Raw tables keep what was delivered (text, extra columns allowed: `strict=False`); staging
tables are typed and hold no personal data (excerpts redacted, names dropped); marts
summarise. Every frame is validated against its contract before it is written.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from lbc_pipeline.lib.contracts import WAVE, register

ROLES = ("child", "head_teacher", "teacher", "parent", "grandparent")
ROLE_GROUPS = ("child", "teacher", "parent", "grandparent")
MIGRATION_GROUPS = ("none", "mother", "father", "both")
CONSENTS = ("child_and_guardian", "adult", "school")
STANCES = ("supports", "qualifies", "contradicts", "context")
HYPOTHESES = ("H1", "H2", "H3")
AGREEMENTS = ("convergent", "complementary", "divergent", "silent")
QUARANTINE_RULES = (
    "missing_consent", "unknown_role", "unknown_school", "informant_code_mismatch", "duration_out_of_bounds",
    "interview_date_invalid", "migration_group_invalid", "duplicate_interview",
    "unknown_code", "unknown_interview", "interview_quarantined", "empty_text", "duplicate_segment",
    "invalid_stance", "invalid_hypothesis", "unknown_parent_code", "duplicate_code",
)

SOURCE_ROW = pa.Column(pl.Int64, description="Row number in the delivered file (1 = first data row), or the element's position in the .qdpx project")


def _text(description: str, nullable: bool = True) -> pa.Column:
    return pa.Column(pl.String, nullable=nullable, description=description + " (text as delivered)")


RAW_INTERVIEWS = register("raw.interviews", pa.DataFrameSchema({
    "wave": WAVE, "source_row": SOURCE_ROW,
    "interview_id": _text("Interview identifier"),
    "informant_code": _text("Four-character informant code: group and school, then person"),
    "role": _text("child, head_teacher, teacher, parent or grandparent"),
    "school_id": _text("School identifier, as in the survey's distribution file"),
    "child_migration_group": _text("Parents' migration of the child (or of the child a parent or grandparent speaks about): none, mother, father, both"),
    "destination": _text("Where the migrant parent works"),
    "interview_date": _text("Date of the interview"),
    "duration_min": _text("Length in minutes"),
    "language": _text("Language of the interview"),
    "consent": _text("Consent recorded: child_and_guardian, adult, school"),
    "interviewer": _text("Interviewer"),
}, strict=False, description="One row per interview of the registry as delivered (text), personal data included "
   "(e.g. informant_name): the only layer that holds names; extra columns kept"))

RAW_SEGMENTS = register("raw.interview_segments", pa.DataFrameSchema({
    "wave": WAVE, "source_row": SOURCE_ROW,
    "interview_id": _text("Interview identifier"),
    "segment_id": _text("Segment identifier"),
    "code": _text("Code applied to the segment"),
    "text": _text("The excerpt, unredacted: may name children, parents, teachers and schools"),
    "position": _text("start-end characters in the transcript (or a paragraph number)"),
}, strict=False, description="One row per coded segment as delivered (one row per coding of a selection), excerpt unredacted"))

RAW_CODES = register("raw.interview_codes", pa.DataFrameSchema({
    "wave": WAVE, "source_row": SOURCE_ROW,
    "code": _text("Code"), "label": _text("Label"), "parent_code": _text("Parent code (the hierarchy)"),
    "hypothesis": _text("H1, H2, H3 or empty"), "stance": _text("supports, qualifies, contradicts, context"),
    "definition": _text("Definition"),
}, strict=False, description="One row per code of the code book as delivered"))

RAW_LOAD_LOG = register("raw.interview_load_log", pa.DataFrameSchema({
    "wave": WAVE,
    "file": pa.Column(pl.String, description="File name in the wave's interviews/ folder"),
    "role": pa.Column(pl.String, pa.Check.isin(["interviews", "segments", "codebook", "qdpx"]), description="interviews, segments, codebook (tables) or qdpx (REFI-QDA project)"),
    "sha256": pa.Column(pl.String, description="SHA-256 of the file's bytes"),
    "size_bytes": pa.Column(pl.Int64, description="File size in bytes"),
    "rows": pa.Column(pl.Int64, nullable=True, description="Rows read (a .qdpx: interviews + codings + codes); null when not read"),
    "format": pa.Column(pl.String, description="csv, xlsx or qdpx"),
    "status": pa.Column(pl.String, description="read, or why the file was not read"),
    "loaded_at": pa.Column(pl.Datetime("us"), description="When it was loaded (UTC)"),
}, strict=True, description="One row per file of a wave's interviews folder at the latest load"))

STAGING_INTERVIEWS = register("staging.interviews", pa.DataFrameSchema({
    "wave": WAVE,
    "interview_id": pa.Column(pl.String, unique=True, description="Interview identifier"),
    "informant_code": pa.Column(pl.String, description="Four-character pseudonymous informant code (kept: it names no one)"),
    "role": pa.Column(pl.String, pa.Check.isin(list(ROLES)), description="child, head_teacher, teacher, parent, grandparent"),
    "role_group": pa.Column(pl.String, pa.Check.isin(list(ROLE_GROUPS)), description="child, teacher (head teachers included), parent, grandparent"),
    "school_id": pa.Column(pl.String, description="School identifier"),
    "child_migration_group": pa.Column(pl.String, pa.Check.isin(list(MIGRATION_GROUPS)), nullable=True, description="The child's parents' migration: none, mother, father, both (null for teachers)"),
    "destination": pa.Column(pl.String, nullable=True, description="Where the migrant parent works (redacted)"),
    "interview_date": pa.Column(pl.Date, description="Date of the interview"),
    "duration_min": pa.Column(pl.Int64, pa.Check.gt(0), description="Length in minutes"),
    "language": pa.Column(pl.String, nullable=True, description="Language of the interview"),
    "consent": pa.Column(pl.String, pa.Check.isin(list(CONSENTS)), description="Consent recorded"),
    "source_row": SOURCE_ROW,
}, strict=True, description="One row per interview that passed every rule: typed, no names (informant_name, interviewer and other extra columns stay in raw)"))

STAGING_CODES = register("staging.interview_codes", pa.DataFrameSchema({
    "wave": WAVE,
    "code": pa.Column(pl.String, unique=True, description="Code"),
    "label": pa.Column(pl.String, nullable=True, description="Label"),
    "parent_code": pa.Column(pl.String, nullable=True, description="Parent code (null at the top of the hierarchy)"),
    "level": pa.Column(pl.Int64, pa.Check.ge(1), description="Depth in the hierarchy (1 = top)"),
    "hypothesis": pa.Column(pl.String, pa.Check.isin(list(HYPOTHESES)), nullable=True, description="H1, H2, H3, or null (overall themes)"),
    "stance": pa.Column(pl.String, pa.Check.isin(list(STANCES)), description="What the theme says about the hypothesis's buffering: supports, qualifies (same direction, a different mechanism or a limit), contradicts, context"),
    "definition": pa.Column(pl.String, nullable=True, description="Definition (redacted)"),
    "source_row": SOURCE_ROW,
}, strict=True, description="One row per code of the code book that passed every rule"))

STAGING_SEGMENTS = register("staging.interview_segments", pa.DataFrameSchema({
    "wave": WAVE,
    "interview_id": pa.Column(pl.String, description="Interview identifier"),
    "segment_id": pa.Column(pl.String, description="Segment identifier"),
    "code": pa.Column(pl.String, description="Code (in staging.interview_codes)"),
    "informant_code": pa.Column(pl.String, description="Informant code of the interview"),
    "role": pa.Column(pl.String, description="Informant's role"),
    "role_group": pa.Column(pl.String, description="child, teacher, parent, grandparent"),
    "school_id": pa.Column(pl.String, description="School identifier"),
    "child_migration_group": pa.Column(pl.String, nullable=True, description="The child's parents' migration (null for teachers)"),
    "text": pa.Column(pl.String, description="The excerpt, redacted: names of people and schools replaced by role placeholders such as [classmate], [teacher], [school]"),
    "n_redactions": pa.Column(pl.Int64, pa.Check.ge(0), description="Names replaced in the excerpt (dictionary and rules)"),
    "start_char": pa.Column(pl.Int64, nullable=True, description="Start character in the transcript (null if position is not start-end)"),
    "end_char": pa.Column(pl.Int64, nullable=True, description="End character in the transcript"),
    "source_row": SOURCE_ROW,
}, strict=True, unique=["wave", "segment_id", "code"], description="One row per coded segment that passed every rule, excerpt redacted"))

STAGING_QUARANTINE = register("staging.interview_quarantine", pa.DataFrameSchema({
    "wave": WAVE,
    "table_name": pa.Column(pl.String, pa.Check.isin(["interviews", "segments", "codebook"]), description="The delivered table the row comes from"),
    "source_row": SOURCE_ROW,
    "record_id": pa.Column(pl.String, nullable=True, description="interview_id, segment_id or code of the row"),
    "column_name": pa.Column(pl.String, description="Column at fault"),
    "raw_value": pa.Column(pl.String, nullable=True, description="The value at fault as delivered (never an excerpt or a name)"),
    "rule": pa.Column(pl.String, pa.Check.isin(list(QUARANTINE_RULES)), description="The rule broken: " + ", ".join(QUARANTINE_RULES)),
    "detail": pa.Column(pl.String, description="What the rule expects"),
}, strict=True, description="One row per delivered row x rule it breaks; quarantined rows (and the segments of a quarantined interview) are left out of staging"))

REGISTRY = register("marts.interview_registry", pa.DataFrameSchema({
    "wave": WAVE,
    "dimension": pa.Column(pl.String, pa.Check.isin(["total", "role_group", "role", "school", "migration_group"]), description="What the row counts by"),
    "grp": pa.Column(pl.String, description="The group (e.g. child, S2, mother; 'all' for the total)"),
    "n_interviews": pa.Column(pl.Int64, description="Interviews in staging (passed every rule)"),
    "expected": pa.Column(pl.Int64, nullable=True, description="Interviews wave.yaml expects (interviews.expected; total and role groups)"),
    "matches_expected": pa.Column(pl.Boolean, nullable=True, description="n_interviews = expected (null without an expectation)"),
    "duration_min_min": pa.Column(pl.Int64, nullable=True, description="Shortest interview (minutes)"),
    "duration_min_median": pa.Column(pl.Float64, nullable=True, description="Median length (minutes)"),
    "duration_min_max": pa.Column(pl.Int64, nullable=True, description="Longest interview (minutes)"),
    "first_date": pa.Column(pl.Date, nullable=True, description="First interview date"),
    "last_date": pa.Column(pl.Date, nullable=True, description="Last interview date"),
}, strict=True, description="One row per dimension x group of the interview registry: counts, lengths, dates, and the expected count"))

FREQUENCIES = register("marts.interview_code_frequencies", pa.DataFrameSchema({
    "wave": WAVE,
    "code": pa.Column(pl.String, description="Code"),
    "label": pa.Column(pl.String, nullable=True, description="Label"),
    "hypothesis": pa.Column(pl.String, nullable=True, description="H1, H2, H3 or null"),
    "stance": pa.Column(pl.String, description="supports, qualifies, contradicts, context"),
    "dimension": pa.Column(pl.String, pa.Check.isin(["all", "role_group", "migration_group"]), description="all, role_group, or migration_group (the child's; teachers' interviews are not in this dimension)"),
    "grp": pa.Column(pl.String, description="The group ('all' for dimension all)"),
    "n_segments": pa.Column(pl.Int64, description="Segments coded with the code in the group"),
    "n_informants": pa.Column(pl.Int64, description="Informants (interviews) with at least one such segment"),
    "n_interviews_in_group": pa.Column(pl.Int64, description="Interviews in the group"),
    "share_informants": pa.Column(pl.Float64, nullable=True, description="n_informants / n_interviews_in_group"),
}, strict=True, description="One row per code x dimension x group, zero counts included (the code matrix)"))

COOCCURRENCE = register("marts.interview_code_cooccurrence", pa.DataFrameSchema({
    "wave": WAVE,
    "code_a": pa.Column(pl.String, description="First code (alphabetical order)"),
    "code_b": pa.Column(pl.String, description="Second code"),
    "dimension": pa.Column(pl.String, pa.Check.isin(["all", "role_group", "migration_group"]), description="all, role_group or migration_group"),
    "grp": pa.Column(pl.String, description="The group"),
    "n_interviews": pa.Column(pl.Int64, pa.Check.gt(0), description="Interviews coded with both codes"),
    "n_interviews_a": pa.Column(pl.Int64, description="Interviews coded with code_a"),
    "n_interviews_b": pa.Column(pl.Int64, description="Interviews coded with code_b"),
    "jaccard": pa.Column(pl.Float64, description="n_interviews / interviews coded with either"),
}, strict=True, description="One row per pair of codes x dimension x group that co-occur in at least one interview"))

TRIANGULATION = register("marts.triangulation", pa.DataFrameSchema({
    "wave": WAVE,
    "hypothesis": pa.Column(pl.String, pa.Check.isin(list(HYPOTHESES)), description="H1, H2, H3"),
    "topic": pa.Column(pl.String, description="What the hypothesis is about"),
    "survey_supported": pa.Column(pl.Boolean, description="marts.hypotheses: some measure shows buffering"),
    "survey_finding": pa.Column(pl.String, pa.Check.isin(["buffering", "no buffering"]), description="The survey's verdict in words"),
    "survey_evidence": pa.Column(pl.String, description="Which measures buffer (or none), from marts.hypotheses"),
    **{f"n_segments_{s}": pa.Column(pl.Int64, description=f"Segments of the hypothesis's codes with stance {s}") for s in STANCES},
    **{f"n_informants_{s}": pa.Column(pl.Int64, description=f"Informants with at least one {s} segment") for s in STANCES},
    "n_informants": pa.Column(pl.Int64, description="Informants with a supports, qualifies or contradicts segment"),
    "informants_by_role": pa.Column(pl.String, description="Those informants by role group"),
    "dominant_stance": pa.Column(pl.String, nullable=True, description="Stance held by the most informants (ties: qualifies, then contradicts, then supports); null when silent"),
    "agreement": pa.Column(pl.String, pa.Check.isin(list(AGREEMENTS)), description="convergent, complementary, divergent or silent, by the documented rule (lib/qualitative/marts.py)"),
    "agreement_note": pa.Column(pl.String, description="Why: the rule applied to the counts"),
}, strict=True, unique=["wave", "hypothesis"], description="One row per hypothesis: the joint display of the survey's verdict and the interview evidence, with the agreement label"))

EXAMPLES = register("marts.triangulation_examples", pa.DataFrameSchema({
    "wave": WAVE,
    "hypothesis": pa.Column(pl.String, description="H1, H2, H3"),
    "rank": pa.Column(pl.Int64, description="Order of the example (1 = first shown)"),
    "stance": pa.Column(pl.String, description="Stance of the example's code"),
    "code": pa.Column(pl.String, description="Code"),
    "segment_id": pa.Column(pl.String, description="Segment identifier"),
    "informant_code": pa.Column(pl.String, description="Informant code (pseudonymous)"),
    "citation": pa.Column(pl.String, description="How the excerpt is cited: role, school, and for children the parents' migration"),
    "excerpt": pa.Column(pl.String, description="The excerpt, redacted"),
}, strict=True, description="One row per example excerpt of the joint display (two or three per hypothesis), redacted"))


def validated(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """The frame, validated against its registered contract (raises pandera's SchemaErrors)."""
    from lbc_pipeline.lib.contracts import schema_for

    return schema_for(table).validate(frame, lazy=True)
