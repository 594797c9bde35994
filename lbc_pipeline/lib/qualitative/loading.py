"""A wave's interview delivery laid out as the raw layer stores it.

`raw_interview_tables` gives `raw.interviews`, `raw.interview_segments`, `raw.interview_codes`
(text as delivered, a `source_row` per row, the wave on every row, extra columns kept) and
`raw.interview_load_log`; a wave without an `interviews/` folder gets the same tables, empty,
so that re-running a wave whose interviews were withdrawn clears them.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from lbc_pipeline.lib.qualitative import contracts as qc
from lbc_pipeline.lib.qualitative.reading import CONTRACT_ORDER, InterviewDelivery
from lbc_pipeline.lib.raw.reading import ROW_COLUMN

RAW_TABLE_OF = {"interviews": "raw.interviews", "segments": "raw.interview_segments", "codebook": "raw.interview_codes"}
LOG_SCHEMA = {"wave": pl.String, "file": pl.String, "role": pl.String, "sha256": pl.String, "size_bytes": pl.Int64,
              "rows": pl.Int64, "format": pl.String, "status": pl.String, "loaded_at": pl.Datetime("us")}


def raw_interview_tables(delivery: InterviewDelivery | None, wave: str, loaded_at: dt.datetime) -> dict[str, pl.DataFrame]:
    """The raw tables of one wave's interviews (empty when `delivery` is None)."""
    tables = {}
    for table, raw_name in RAW_TABLE_OF.items():
        if delivery is None:
            frame = pl.DataFrame(schema={"wave": pl.String, "source_row": pl.Int64,
                                         **{c: pl.String for c in CONTRACT_ORDER[table]}})
        else:
            frame = delivery.tables[table].rename({ROW_COLUMN: "source_row"}).select(
                pl.lit(wave).alias("wave"), pl.all())
        tables[raw_name] = qc.validated(raw_name, frame)
    log = [f.log_row(wave, loaded_at) for f in delivery.files] if delivery is not None else []
    tables["raw.interview_load_log"] = qc.validated("raw.interview_load_log", pl.DataFrame(log, schema=LOG_SCHEMA))
    return tables
