"""Contracts of the raw layer: files as delivered (text), the load log, rejected deliveries.

Raw tables keep every delivered column, so their contracts are not strict: columns the
codebook does not know are kept (and listed in raw.load_log.extra_columns).
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from lbc_pipeline.codebook import load_codebook
from lbc_pipeline.lib.contracts.base import WAVE, register


def _raw_file(role: str, grain: str) -> pa.DataFrameSchema:
    columns = {"wave": WAVE, "source_row": pa.Column(pl.Int64, description="Row number in the delivered file (1 = first data row)")}
    for var in load_codebook().file_variables(role):
        columns[var.name] = pa.Column(pl.String, nullable=True, required=False,
                                      description=f"{var.en} ({var.zh}), as delivered (text)")
    return pa.DataFrameSchema(columns, strict=False, description=grain)


register("raw.questionnaires", _raw_file(
    "questionnaires", "One row per keyed row of the questionnaires file, every value as delivered (text), "
    "personal data included: the only layer that holds names and roll numbers; extra columns kept"))
register("raw.distribution", _raw_file("distribution", "One row per row of the distribution file, as delivered"))

register("raw.load_log", pa.DataFrameSchema({
    "wave": WAVE,
    "file": pa.Column(pl.String, description="File name"),
    "role": pa.Column(pl.String, pa.Check.isin(["questionnaires", "distribution"]), description="questionnaires or distribution"),
    "sha256": pa.Column(pl.String, description="SHA-256 of the file's bytes"),
    "size_bytes": pa.Column(pl.Int64, description="File size in bytes"),
    "rows": pa.Column(pl.Int64, description="Data rows read"),
    "format": pa.Column(pl.String, description="csv, xlsx, sav, dta or parquet"),
    "encoding": pa.Column(pl.String, nullable=True, description="Detected text encoding (csv: utf-8, utf-8-sig, gb18030)"),
    "extra_columns": pa.Column(pl.List(pl.String), description="Columns not in the codebook, kept in the raw layer"),
    "value_labels": pa.Column(pl.String, nullable=True, description="Value labels stored in the file (sav/dta), as JSON"),
    "loaded_at": pa.Column(pl.Datetime("us"), description="When it was loaded (UTC)"),
}, strict=True, unique=['wave', 'role'], description="One row per file loaded for a wave (the latest load)"))

register("raw.rejected_files", pa.DataFrameSchema({
    "wave": WAVE,
    "file": pa.Column(pl.String, description="The file (or wave.yaml / folder) at fault"),
    "source_row": pa.Column(pl.Int64, nullable=True, description="Data row of the file at fault (1 = first data row), where known"),
    "column_name": pa.Column(pl.String, nullable=True, description="Column at fault, where known"),
    "reason": pa.Column(pl.String, description="What is wrong"),
    "message": pa.Column(pl.String, description="The full message: file, row, column and reason"),
    "rejected_at": pa.Column(pl.Datetime("us"), description="When the delivery was rejected (UTC)"),
}, strict=False, description="One row per rejected delivery attempt: the file, row and column at fault and why (history kept)"))
