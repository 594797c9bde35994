"""Raw layer: a wave's files as delivered (personal data included), and the load log."""


import datetime as dt

import polars as pl
from dagster import AssetExecutionContext, AssetSpec, Failure, MaterializeResult, multi_asset
from dagster_duckdb import DuckDBResource

from lbc_pipeline.assets import wave_partitions
from lbc_pipeline.assets._common import table_metadata
from lbc_pipeline.lib.raw.loading import load_wave_files, record_rejection
from lbc_pipeline.lib.raw.reading import RawFileError
from lbc_pipeline.lib.io.warehouse import replace_wave

RAW_TABLES = ("raw.questionnaires", "raw.distribution", "raw.load_log", "raw.read_notes")


@multi_asset(
    specs=[
        AssetSpec(["raw", "questionnaires"], description="Returned questionnaires as keyed in, every row and column as delivered (text), personal data included; one row per keyed row.", group_name="raw"),
        AssetSpec(["raw", "distribution"], description="Questionnaires handed out per school, as delivered.", group_name="raw"),
        AssetSpec(["raw", "load_log"], description="One row per file loaded: sha256, size, rows, format, encoding, extra columns, value labels, time.", group_name="raw"),
        AssetSpec(["raw", "read_notes"], description="One row per change the reader made to a delivered value (full-width characters, qid case variants, Stata/SPSS missing values, symlinks).", group_name="raw"),
    ],
    partitions_def=wave_partitions,
)
def load_raw_wave(context: AssetExecutionContext, duckdb: DuckDBResource):
    """Read a wave's questionnaires and distribution files into the raw layer."""
    wave = context.partition_key
    loaded_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    try:
        wave_files = load_wave_files(wave)
    except RawFileError as exc:
        with duckdb.get_connection() as con:
            record_rejection(con, wave, exc, loaded_at)
        raise Failure(description=str(exc), metadata={"file": str(exc.path), "row": exc.row or 0,
                                                      "column": exc.column or ""}) from None
    tables = wave_files.raw_tables(loaded_at)
    with duckdb.get_connection() as con:
        replace_wave(con, tables, wave)
    for table, frame in tables.items():
        schema, name = table.split(".")
        metadata = table_metadata(frame, table)
        if table == "raw.load_log":
            metadata["files_sha256"] = wave_files.delivery.files
        if table == "raw.questionnaires":
            metadata["extra_columns"] = ", ".join(wave_files.questionnaires.extra_columns) or "none"
            metadata["encoding"] = wave_files.questionnaires.encoding or wave_files.questionnaires.format
            metadata["preview"] = table_metadata(frame.drop("student_name", "student_no"), table)["preview"]
        yield MaterializeResult(asset_key=[schema, name], metadata=metadata)
