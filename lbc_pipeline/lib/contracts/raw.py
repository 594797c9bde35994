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


# The changes the raw reader (lib/raw/reading.py) made to delivered values, as lib/raw/loading.py records them.
READ_NOTE_KINDS = ("nfkc", "qid_variant", "stata_extended_missing", "spss_user_missing", "symlink", "line_endings",
                   "sheet_read", "sheet_skipped", "date_form")

READ_NOTES_SCHEMA = register("raw.read_notes", pa.DataFrameSchema({
    "wave": pa.Column(pl.String, description="Wave id (from wave.yaml, else the folder name)"),
    "file": pa.Column(pl.String, description="The delivered file the note is about"),
    "source_row": pa.Column(pl.Int64, nullable=True,
                            description="Data row of the file (1 = first data row); null for a note on the whole file"),
    "column_name": pa.Column(pl.String, nullable=True, description="Column of the cell, as delivered; null for the whole file"),
    "kind": pa.Column(pl.String, pa.Check.isin(READ_NOTE_KINDS), description=(
        "What the reader did: nfkc (full-width characters normalised), qid_variant (a qid differing only "
        "in case, read as the first spelling), stata_extended_missing / spss_user_missing (mapped to a "
        "special code), symlink (a link to a file inside the wave folder, read), line_endings (CR-only lines), "
        "sheet_read / sheet_skipped (a sheet of a workbook of several sheets read, or skipped as a cover or "
        "notes sheet), date_form (dates of one form, such as Excel serial numbers or 2021年4月4日, read as "
        "YYYY-MM-DD: one note per column and form)")),
    "delivered": pa.Column(pl.String, nullable=True, description="The value as delivered (at most 40 characters)"),
    "read_as": pa.Column(pl.String, nullable=True, description="The value as read into the raw layer (at most 40 characters)"),
    "note": pa.Column(pl.String, description="The note in words"),
}, strict=True, description="One row per change the reader made to a delivered file or value (latest load of each wave)"))
