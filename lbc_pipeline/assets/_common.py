"""What every asset module shares: the markdown preview and row-count metadata."""


import polars as pl
from dagster import MetadataValue


def preview(frame: pl.DataFrame, rows: int = 8) -> MetadataValue:
    """A short Markdown table of a frame's first rows for the Dagster UI."""
    head = frame.head(rows)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * head.width]
    for row in head.iter_rows():
        lines.append("| " + " | ".join("" if v is None else str(v) for v in row) + " |")
    return MetadataValue.md("\n".join(lines))


def table_metadata(frame: pl.DataFrame, table: str) -> dict:
    return {
        "dagster/row_count": frame.height,
        "table": table,
        "preview": preview(frame),
    }
