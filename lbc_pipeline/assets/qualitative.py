"""The interview strand: raw -> staging -> marts of a wave's `interviews/` folder, the joint
display with the survey's verdicts, and the report's interview section (group `qualitative`).

Independent of the survey strand up to the point where it needs it (the survey's raw names
for redaction, `marts.hypotheses` for the joint display, the report file): a broken interview
delivery fails these assets only.
"""

import datetime as dt

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset_check,
    multi_asset,
)

from lbc_pipeline.assets import wave_partitions
from lbc_pipeline.assets._common import table_metadata
from lbc_pipeline.config import read_manifest, reports_dir, wave_folder
from lbc_pipeline.lib.qualitative.tables import RAW_TABLES, STAGING_TABLES
from lbc_pipeline.resources import WarehouseResource

# The domain modules (pandera, polars, duckdb) are imported in the step bodies: loading the
# Definitions does not need them.


GROUP = "qualitative"
_RAW = [AssetDep(t.split(".")) for t in RAW_TABLES[:3]]
_STAGING = [AssetDep(t.split(".")) for t in STAGING_TABLES]
_SURVEY_RAW = [AssetDep(["raw", "questionnaires"]), AssetDep(["raw", "distribution"])]
REGISTRY_CHECK = "interview_registry_matches_design"
QUARANTINE_CHECK = "interview_rows_pass_the_rules"


def _spec(table: str, description: str, deps=()) -> AssetSpec:
    return AssetSpec(table.split("."), deps=list(deps), group_name=GROUP, description=description)


@multi_asset(
    specs=[
        _spec("raw.interviews", "One row per interview of the registry as delivered (text), names included."),
        _spec("raw.interview_segments", "One row per coded segment as delivered, excerpt unredacted."),
        _spec("raw.interview_codes", "One row per code of the code book as delivered."),
        _spec("raw.interview_load_log", "One row per file of the interviews folder: sha256, rows, read or not."),
    ],
    partitions_def=wave_partitions,
)
def load_interviews(context: AssetExecutionContext, duckdb: WarehouseResource):
    """Read a wave's interviews folder (three tables or a REFI-QDA .qdpx) into the raw layer."""
    from lbc_pipeline.lib.io.warehouse import replace_wave
    from lbc_pipeline.lib.qualitative import pipeline
    from lbc_pipeline.lib.raw.loading import record_rejection
    from lbc_pipeline.lib.raw.reading import RawFileError

    wave = context.partition_key
    loaded_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    try:
        tables = pipeline.load_interviews(wave_folder(wave), wave, loaded_at)
    except RawFileError as exc:
        with duckdb.get_connection() as con:
            record_rejection(con, wave, exc, loaded_at)
        raise Failure(description=str(exc), metadata={"file": str(exc.path), "row": exc.row or 0,
                                                      "column": exc.column or ""}) from None
    with duckdb.get_connection() as con:
        replace_wave(con, tables, wave)
    for table, frame in tables.items():
        metadata = table_metadata(frame, table)
        if table == "raw.interviews":
            metadata["preview"] = MetadataValue.md(f"{frame.height} interviews (names not previewed)")
        if table == "raw.interview_segments":
            metadata["preview"] = MetadataValue.md(f"{frame.height} coded segments (excerpts not previewed)")
        yield MaterializeResult(asset_key=table.split("."), metadata=metadata)


@multi_asset(
    specs=[
        _spec("staging.interviews", "One row per interview that passed every rule: typed, no names.", _RAW + _SURVEY_RAW),
        _spec("staging.interview_codes", "One row per code that passed every rule, with its level in the hierarchy.", _RAW + _SURVEY_RAW),
        _spec("staging.interview_segments", "One row per coded segment that passed every rule, excerpt redacted.", _RAW + _SURVEY_RAW),
        _spec("staging.interview_quarantine", "One row per delivered row x rule it breaks (consent, codes, informant codes, durations, ...).", _RAW + _SURVEY_RAW),
    ],
    check_specs=[AssetCheckSpec(QUARANTINE_CHECK, partitions_def=wave_partitions, asset=["staging", "interview_quarantine"],
                                description="WARN when delivered interview rows broke a rule and were left out "
                                "(staging.interview_quarantine lists them by table, row, column and rule).")],
    partitions_def=wave_partitions,
)
def stage_interviews(context: AssetExecutionContext, duckdb: WarehouseResource):
    """Apply the interview rules, quarantine rows that break them, redact names in excerpts."""
    from lbc_pipeline.lib.io.warehouse import read_wave, replace_wave
    from lbc_pipeline.lib.qualitative import pipeline, privacy

    wave = context.partition_key
    with duckdb.get_connection() as con:
        raw = {t: read_wave(con, t, wave) for t in RAW_TABLES[:3]}
        names = privacy.survey_names(con)
        distribution = read_wave(con, "raw.distribution", wave)
    staged = pipeline.stage(raw, names, distribution, read_manifest(wave_folder(wave)), wave)
    tables = staged.tables()
    with duckdb.get_connection() as con:
        replace_wave(con, tables, wave)
    for table, frame in tables.items():
        metadata = table_metadata(frame, table)
        if table == "staging.interview_quarantine":
            metadata["by_rule"] = {r: int(n) for r, n in frame.group_by("rule").len().iter_rows()}
        if table == "staging.interview_segments":
            metadata["names_replaced"] = int(frame["n_redactions"].sum() or 0)
        yield MaterializeResult(asset_key=table.split("."), metadata=metadata)
    by_rule = {r: int(n) for r, n in staged.quarantine.group_by("rule").len().sort("rule").iter_rows()}
    yield AssetCheckResult(
        check_name=QUARANTINE_CHECK, asset_key=["staging", "interview_quarantine"], passed=not by_rule,
        severity=AssetCheckSeverity.WARN,
        description="no interview row broke a rule" if not by_rule else
        f"{staged.quarantine.height} rule break(s) left rows out: " + ", ".join(f"{r} {n}" for r, n in by_rule.items()),
        metadata={"by_rule": by_rule or {"none": 0}})


@multi_asset(
    specs=[
        _spec("marts.interview_registry", "One row per dimension x group of the registry, beside wave.yaml's expected counts.", _STAGING),
        _spec("marts.interview_code_frequencies", "One row per code x role group or child's migration group (the code matrix).", _STAGING),
        _spec("marts.interview_code_cooccurrence", "One row per pair of codes found in the same interview, by group.", _STAGING),
    ],
    check_specs=[AssetCheckSpec(REGISTRY_CHECK, partitions_def=wave_partitions, asset=["marts", "interview_registry"], blocking=True,
                                description="ERROR: the interviews that passed the rules match wave.yaml's interviews.expected "
                                "(total and by role group); a failure blocks the joint display.")],
    partitions_def=wave_partitions,
)
def summarise_interviews(context: AssetExecutionContext, duckdb: WarehouseResource):
    """Count the registry against the design and build the code matrix."""
    from lbc_pipeline.lib.io.warehouse import read_wave, replace_wave
    from lbc_pipeline.lib.qualitative import marts as qm, pipeline

    wave = context.partition_key
    with duckdb.get_connection() as con:
        staged = {t: read_wave(con, t, wave) for t in STAGING_TABLES}
        delivered = not read_wave(con, "raw.interviews", wave).is_empty()
    try:
        expected = qm.expected_interviews(wave_folder(wave))
    except ValueError as exc:  # an interviews.expected block with unknown keys
        raise Failure(description=str(exc)) from None
    tables = pipeline.summarise(staged, expected, wave)
    with duckdb.get_connection() as con:
        replace_wave(con, tables, wave)
    for table, frame in tables.items():
        yield MaterializeResult(asset_key=table.split("."), metadata=table_metadata(frame, table))
    outcome = qm.check_registry(tables["marts.interview_registry"], expected, delivered)
    yield AssetCheckResult(check_name=REGISTRY_CHECK, asset_key=["marts", "interview_registry"], passed=outcome.passed,
                           severity=AssetCheckSeverity.ERROR, description=outcome.description, metadata=outcome.metadata)


@multi_asset(
    specs=[
        _spec("marts.triangulation", "One row per hypothesis: survey verdict beside interview evidence, and the agreement label.",
              [AssetDep(["marts", "interview_registry"]), AssetDep(["marts", "hypotheses"]), *_STAGING]),
        _spec("marts.triangulation_examples", "Two or three redacted example excerpts per hypothesis.",
              [AssetDep(["marts", "interview_registry"]), AssetDep(["marts", "hypotheses"]), *_STAGING]),
    ],
    partitions_def=wave_partitions,
)
def triangulate(context: AssetExecutionContext, duckdb: WarehouseResource):
    """Set each hypothesis's survey verdict beside the interview evidence (the joint display)."""
    from lbc_pipeline.lib.io.warehouse import read_wave, replace_wave
    from lbc_pipeline.lib.qualitative import pipeline

    wave = context.partition_key
    with duckdb.get_connection() as con:
        staged = {t: read_wave(con, t, wave) for t in STAGING_TABLES}
        hypotheses = read_wave(con, "marts.hypotheses", wave)
        distribution = read_wave(con, "raw.distribution", wave)
    try:
        tables = pipeline.joint_display(hypotheses, staged, distribution, wave)
    except ValueError as exc:  # marts.hypotheses lacks a hypothesis for this wave
        raise Failure(description=str(exc)) from None
    with duckdb.get_connection() as con:
        replace_wave(con, tables, wave)
    labels = {r["hypothesis"]: r["agreement"] for r in tables["marts.triangulation"].iter_rows(named=True)}
    for table, frame in tables.items():
        metadata = table_metadata(frame, table)
        if table == "marts.triangulation":
            metadata["agreement"] = MetadataValue.md("\n".join(f"- {h}: {a}" for h, a in labels.items()) or "no interviews")
        yield MaterializeResult(asset_key=table.split("."), metadata=metadata)


@multi_asset(
    specs=[AssetSpec(["marts", "report_interviews"], group_name=GROUP,
                     deps=[AssetDep(["marts", "report"]), AssetDep(["marts", "triangulation"]),
                           AssetDep(["marts", "triangulation_examples"]), AssetDep(["marts", "interview_code_frequencies"])],
                     description="The interviews' section of data/reports/<wave>/report.html: registry, code matrix heat map, joint display.")],
    partitions_def=wave_partitions,
)
def report_interviews(context: AssetExecutionContext, duckdb: WarehouseResource):
    """Write the interviews' section into the wave's HTML report."""
    from lbc_pipeline.lib.io.warehouse import read_wave
    from lbc_pipeline.lib.qualitative.report import SECTION_KEY, interviews_section
    from lbc_pipeline.lib.render.report import with_section

    wave = context.partition_key
    with duckdb.get_connection() as con:
        frames = {t: read_wave(con, t, wave) for t in (
            "marts.interview_registry", "staging.interview_quarantine", "marts.interview_code_frequencies",
            "staging.interview_codes", "marts.triangulation", "marts.triangulation_examples")}
    manifest = read_manifest(wave_folder(wave))
    body = interviews_section(wave, manifest.synthetic, frames["marts.interview_registry"],
                              frames["staging.interview_quarantine"], frames["marts.interview_code_frequencies"],
                              frames["staging.interview_codes"], frames["marts.triangulation"],
                              frames["marts.triangulation_examples"])
    path = reports_dir(wave, working=True) / "report.html"
    path.write_text(with_section(path.read_text(encoding="utf-8"), SECTION_KEY, body), encoding="utf-8")
    yield MaterializeResult(asset_key=["marts", "report_interviews"], metadata={
        "path": MetadataValue.path(str(path)), "section_bytes": len(body.encode("utf-8"))})


@asset_check(asset=["marts", "report_interviews"], partitions_def=wave_partitions, blocking=True,
             description="ERROR when a raw name (interview registry, survey roll) appears in any table outside raw or in the "
             "HTML report, or a school's name in an interview table or the report's interview section.")
def no_raw_names_outside_raw(context: AssetCheckExecutionContext, duckdb: WarehouseResource) -> AssetCheckResult:
    from lbc_pipeline.lib.qualitative import privacy
    from lbc_pipeline.lib.qualitative.report import SECTION_KEY

    wave = context.partition_key
    with duckdb.get_connection() as con:
        people, schools = privacy.raw_person_names(con), privacy.raw_school_names(con)
        texts = privacy.text_values(con)
        interview_texts = {k: v for k, v in texts.items() if k.split(".")[1].startswith(privacy.INTERVIEW_TABLE_PREFIXES)}
    page = (reports_dir(wave, working=True) / "report.html").read_text(encoding="utf-8")
    begin, end = f"<!-- section:{SECTION_KEY} -->", f"<!-- /section:{SECTION_KEY} -->"
    section_text = page[page.find(begin):page.find(end)] if begin in page else ""
    leaks = privacy.find_leaks({**texts, "report.html": [page]}, people)
    leaks += privacy.find_leaks({**interview_texts, "report.html#interviews": [section_text]}, schools)
    where = sorted({w for w, _ in leaks})
    return AssetCheckResult(
        passed=not leaks, severity=AssetCheckSeverity.ERROR,
        description=(f"no raw name outside raw: {len(people)} person and {len(schools)} school names searched in "
                     f"{len(texts)} text columns and the report") if not leaks else
        f"{len(leaks)} raw name(s) found outside raw, in: {', '.join(where[:10])}",
        metadata={"text_columns": len(texts), "names_searched": len(people) + len(schools), "leaks": len(leaks)})


CHECKS = [no_raw_names_outside_raw]
