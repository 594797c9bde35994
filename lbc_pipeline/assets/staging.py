"""Staging layer: typed, special codes resolved, duplicates collapsed, quarantine; the codebook
as tables."""

from typing import TYPE_CHECKING

from dagster import AssetExecutionContext, Failure, multi_asset

from lbc_pipeline.assets._common import materialized, selected_tables, table_spec
from lbc_pipeline.resources import WarehouseResource

if TYPE_CHECKING:
    import polars as pl

_CODE = ("lib/staging", "lib/io", "assets/staging.py")
_KINDS = ["duckdb", "polars", "pandera"]
_Q = ["raw.questionnaires"]
# The codebook the wave is read with, as tables (from codebook.yaml, no upstream asset).
CODEBOOK_TABLES = ("staging.codebook_variables", "staging.codebook_values", "staging.codebook_special_codes")


@multi_asset(
    specs=[
        table_spec("staging.questionnaires", deps=_Q, kinds=_KINDS, code=_CODE),
        table_spec("staging.distribution", deps=["raw.distribution"], kinds=_KINDS, code=_CODE),
        table_spec("staging.missing_values", deps=_Q, kinds=_KINDS, code=_CODE),
        table_spec("staging.quarantine", deps=_Q, kinds=_KINDS, code=_CODE),
        table_spec("staging.entry_duplicates", deps=_Q, kinds=_KINDS, code=_CODE),
        *[table_spec(t, kinds=["duckdb", "yaml"], code=_CODE, description=None) for t in CODEBOOK_TABLES],
    ],
    can_subset=True,
)
def clean_wave(context: AssetExecutionContext, duckdb: WarehouseResource):
    """Type and validate a wave's raw files against the codebook (pandera, lazy)."""
    # the domain modules (polars, duckdb, numpy) load when the step runs, not with the Definitions
    from lbc_pipeline.lib.io.warehouse import read_wave, replace_wave
    from lbc_pipeline.lib.raw.reading import RawFileError
    from lbc_pipeline.lib.staging.clean import clean_distribution, clean_questionnaires
    from lbc_pipeline.lib.staging.codebook_tables import codebook_tables

    wave = context.partition_key
    with duckdb.get_connection() as con:
        raw_q = read_wave(con, "raw.questionnaires", wave)
        raw_d = read_wave(con, "raw.distribution", wave)
        files = dict(read_wave(con, "raw.load_log", wave).select("role", "file").iter_rows())
    try:
        cleaned = clean_questionnaires(_as_loaded(raw_q), wave, files.get("questionnaires", "questionnaires"))
        distribution = clean_distribution(_as_loaded(raw_d), wave, files.get("distribution", "distribution"))
    except RawFileError as exc:
        raise Failure(description=str(exc)) from None
    built = {
        "staging.questionnaires": cleaned.questionnaires,
        "staging.distribution": distribution,
        "staging.missing_values": cleaned.missing_values,
        "staging.quarantine": cleaned.quarantine,
        "staging.entry_duplicates": cleaned.entry_duplicates,
        **codebook_tables(wave),
    }
    selected = selected_tables(context)
    tables = {t: f for t, f in built.items() if t in selected}
    with duckdb.get_connection() as con:
        replace_wave(con, tables, wave)
    for table, frame in tables.items():
        extra = {}
        if table == "staging.missing_values":
            extra = {f"by_reason/{r}": int(n) for r, n in frame.group_by("reason").len().sort("reason").iter_rows()}
        yield materialized(table, frame, **extra)


def _as_loaded(raw: "pl.DataFrame") -> "pl.DataFrame":
    """A raw-layer table back in the reader's shape (`_row`, no wave column)."""
    from lbc_pipeline.lib.raw.reading import ROW_COLUMN

    return raw.drop("wave").rename({"source_row": ROW_COLUMN})
