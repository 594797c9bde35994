"""Staging layer: typed, special codes resolved, duplicates collapsed, quarantine."""


import polars as pl
from dagster import AssetDep, AssetExecutionContext, AssetSpec, Failure, MaterializeResult, multi_asset
from dagster_duckdb import DuckDBResource

from lbc_pipeline.assets import wave_partitions
from lbc_pipeline.assets._common import table_metadata
from lbc_pipeline.lib.staging.clean import clean_distribution, clean_questionnaires
from lbc_pipeline.lib.raw.reading import ROW_COLUMN, RawFileError
from lbc_pipeline.lib.io.warehouse import read_wave, replace_wave

_RAW = [AssetDep(["raw", "questionnaires"]), AssetDep(["raw", "distribution"])]


@multi_asset(
    specs=[
        AssetSpec(["staging", "questionnaires"], deps=_RAW, group_name="staging", description="One row per returned questionnaire (distinct qid): typed answers, special codes and out-of-range values missing, no personal data."),
        AssetSpec(["staging", "distribution"], deps=_RAW, group_name="staging", description="One row per school: questionnaires handed out, typed."),
        AssetSpec(["staging", "missing_values"], deps=_RAW, group_name="staging", description="One row per missing value with its reason (not answered, refused, don't know, not applicable, out of range, unparseable)."),
        AssetSpec(["staging", "quarantine"], deps=_RAW, group_name="staging", description="One row per data-entry error: the raw value and the rule it broke."),
        AssetSpec(["staging", "entry_duplicates"], deps=_RAW, group_name="staging", description="One row per qid keyed more than once: identical or conflicting."),
    ],
    partitions_def=wave_partitions,
)
def clean_wave(context: AssetExecutionContext, duckdb: DuckDBResource):
    """Type and validate a wave's raw files against the codebook (pandera, lazy)."""
    wave = context.partition_key
    with duckdb.get_connection() as con:
        raw_q = read_wave(con, "raw.questionnaires", wave)
        raw_d = read_wave(con, "raw.distribution", wave)
        files = dict(con.execute(
            "select role, file from raw.load_log where wave = ?", [wave]).fetchall())
    try:
        cleaned = clean_questionnaires(_as_loaded(raw_q), wave, files.get("questionnaires", "questionnaires"))
        distribution = clean_distribution(_as_loaded(raw_d), wave, files.get("distribution", "distribution"))
    except RawFileError as exc:
        raise Failure(description=str(exc)) from None
    tables = {
        "staging.questionnaires": cleaned.questionnaires,
        "staging.distribution": distribution,
        "staging.missing_values": cleaned.missing_values,
        "staging.quarantine": cleaned.quarantine,
        "staging.entry_duplicates": cleaned.entry_duplicates,
    }
    with duckdb.get_connection() as con:
        replace_wave(con, tables, wave)
    for table, frame in tables.items():
        metadata = table_metadata(frame, table)
        if table == "staging.missing_values":
            metadata["by_reason"] = {r: int(n) for r, n in frame.group_by("reason").len().iter_rows()}
        yield MaterializeResult(asset_key=table.split("."), metadata=metadata)


def _as_loaded(raw: pl.DataFrame) -> pl.DataFrame:
    """A raw-layer table back in the reader's shape (`_row`, no wave column)."""
    return raw.drop("wave").rename({"source_row": ROW_COLUMN})
