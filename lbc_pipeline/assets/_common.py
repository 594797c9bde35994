"""What every asset module shares: specs built from the table contracts (description, column
schema, table name, kinds, owners, tags, code version), subsetting, and the metadata each
materialisation reports (row count, a Markdown preview)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
)

from lbc_pipeline.assets import wave_partitions
from lbc_pipeline.lib.contracts import catalog
from lbc_pipeline.lib.quality.outcome import ERROR, Outcome

if TYPE_CHECKING:  # polars is loaded by the steps, not with the Definitions
    import polars as pl

PACKAGE = Path(__file__).resolve().parent.parent
OWNERS = ["team:lbc-research"]
# Files every stage's result depends on besides its own code: the codebook, the study
# definition and the table contracts.
SHARED_SOURCES = ("codebook.yaml", "codebook.py", "study.yaml", "study.py", "lib/contracts")


@cache
def code_version(*sources: str) -> str:
    """A digest of the source files (or folders) a stage runs, relative to the package, and
    of the shared definitions: it changes when the code that builds the asset changes, so
    the UI marks materialisations made by older code as stale."""
    digest = hashlib.sha256()
    for source in (*SHARED_SOURCES, *sources):
        path = PACKAGE / source
        files = sorted(path.rglob("*.py")) + sorted(path.rglob("*.yaml")) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(PACKAGE)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


@cache
def column_schema(table: str) -> TableSchema:
    """The table's columns, types and descriptions from its contract (the UI's Columns tab;
    read from the contracts' catalogue, which a test holds equal to the pandera contracts)."""
    return TableSchema(columns=[
        TableColumn(name=name, type=dtype, description=description)
        for name, dtype, description in catalog.columns(table)
    ])


def key_of(table: str) -> AssetKey:
    """`raw.questionnaires` -> AssetKey(["raw", "questionnaires"]): the key prefix is the DuckDB schema."""
    return AssetKey(table.split("."))


def table_spec(table: str, *, deps: Iterable[str] = (), kinds: Sequence[str], code: Sequence[str],
               tags: Mapping[str, str] | None = None, description: str | None = None,
               partitioned: bool = True) -> AssetSpec:
    """The spec of the asset that is warehouse table `table` (`schema.table`): partitioned by
    wave (unless it spans every wave), grouped by its schema (the stage), described and typed
    by its contract."""
    schema, _ = table.split(".")
    return AssetSpec(
        key_of(table),
        deps=[AssetDep(key_of(d)) for d in deps],
        group_name=schema,
        description=description or catalog.description(table),
        kinds=set(kinds),
        owners=OWNERS,
        tags={"layer": schema, **(tags or {})},
        code_version=code_version(*code),
        partitions_def=wave_partitions if partitioned else None,
        metadata={"dagster/table_name": f"lbc.{table}", "dagster/column_schema": column_schema(table)},
    )


def file_spec(key: str, *, deps: Iterable[str], kinds: Sequence[str], code: Sequence[str], description: str) -> AssetSpec:
    """The spec of an asset that is a set of files (publication tables, the report)."""
    return AssetSpec(
        key_of(key), deps=[AssetDep(key_of(d)) for d in deps], group_name=key.split(".")[0],
        description=description, kinds=set(kinds), owners=OWNERS, tags={"layer": "marts", "output": "files"},
        code_version=code_version(*code), partitions_def=wave_partitions,
    )


def selected_tables(context: AssetExecutionContext) -> set[str]:
    """The tables (`schema.table`) this run materialises: the multi-asset's selected subset."""
    return {".".join(key.path) for key in context.selected_asset_keys}


def preview(frame: pl.DataFrame, rows: int = 8) -> MetadataValue:
    """A short Markdown table of a frame's first rows for the Dagster UI."""
    head = frame.head(rows)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * head.width]
    for row in head.iter_rows():
        lines.append("| " + " | ".join("" if v is None else str(v) for v in row) + " |")
    return MetadataValue.md("\n".join(lines))


def materialized(table: str, frame: pl.DataFrame, shown: pl.DataFrame | None = None, **extra) -> MaterializeResult:
    """The materialisation of a table: its row count, name, columns and a preview of `shown`
    (default the frame itself), plus `extra` metadata."""
    return MaterializeResult(asset_key=key_of(table), metadata={
        "dagster/row_count": frame.height,
        "dagster/table_name": f"lbc.{table}",
        "dagster/column_schema": column_schema(table),
        "preview": preview(frame if shown is None else shown),
        **extra,
    })


def typed_metadata(metadata: Mapping) -> dict[str, MetadataValue]:
    """A rule's metadata as typed Dagster values: numbers stay numbers (plottable in the UI),
    lists of records become tables, other nested values Markdown lists."""
    typed = {}
    for name, value in metadata.items():
        if isinstance(value, bool):
            typed[name] = MetadataValue.bool(value)
        elif isinstance(value, int):
            typed[name] = MetadataValue.int(value)
        elif isinstance(value, float):
            typed[name] = MetadataValue.float(value)
        elif isinstance(value, str):
            typed[name] = MetadataValue.text(value)
        elif value is None:
            typed[name] = MetadataValue.null()
        elif isinstance(value, Mapping) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()):
            for key, number in value.items():
                typed[f"{name}/{key}"] = MetadataValue.float(float(number)) if isinstance(number, float) else MetadataValue.int(number)
        else:
            typed[name] = MetadataValue.md(_markdown(value))
    return typed


def _markdown(value) -> str:
    if isinstance(value, Mapping):
        return "\n".join(f"- **{k}**: {_inline(v)}" for k, v in value.items()) or "(none)"
    if isinstance(value, (list, tuple)):
        return "\n".join(f"- {_inline(v)}" for v in value) or "(none)"
    return str(value)


def _inline(value) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_inline(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_inline(v) for v in value)
    return str(value)


def check_result(outcome: Outcome, check_name: str | None = None, asset: str | None = None) -> AssetCheckResult:
    """A rule's outcome as a Dagster check result with typed metadata."""
    return AssetCheckResult(
        check_name=check_name,
        asset_key=key_of(asset) if asset else None,
        passed=outcome.passed,
        severity=AssetCheckSeverity.ERROR if outcome.severity == ERROR else AssetCheckSeverity.WARN,
        description=outcome.description,
        metadata=typed_metadata(outcome.metadata),
    )


def table_metadata(frame: pl.DataFrame, table: str) -> dict:
    """The metadata of a table's materialisation (as `materialized` reports it), for assets
    that build their MaterializeResult themselves."""
    return dict(materialized(table, frame).metadata)


def with_conventions(spec: AssetSpec, module: str) -> AssetSpec:
    """Fill in what every asset carries (kinds, owners, layer tag, code version, and for a
    warehouse table its name and column schema from the contract) where a spec left it out."""
    table = ".".join(spec.key.path)
    metadata = dict(spec.metadata or {})
    if catalog.has_contract(table):
        metadata.setdefault("dagster/table_name", f"lbc.{table}")
        metadata.setdefault("dagster/column_schema", column_schema(table))
    return spec.replace_attributes(
        kinds=spec.kinds or {"duckdb", "python"},
        owners=spec.owners or OWNERS,
        tags={"layer": spec.key.path[0], **(spec.tags or {})},
        code_version=spec.code_version or code_version("lib", f"assets/{module}.py"),
        metadata=metadata,
    )


# The pages a user opens to learn whether a wave is published: each gets an observation per
# publication and per blocked run, with the run and, when blocked, the reason in words.
PUBLICATION_PAGES = ("analysis.analytic_sample", "marts.model_coefficients", "marts.report", "publish.wave_versions")


def _observe(context, wave: str, metadata: dict) -> None:
    from dagster import AssetObservation

    for page in PUBLICATION_PAGES:
        context.log_event(AssetObservation(asset_key=key_of(page), partition=wave, metadata=metadata,
                                           description=metadata["status"].value))


def record_unpublished(context, wave: str, message: str) -> None:
    """Say on the publication pages that this run of `wave` was stopped and is not published."""
    _observe(context, wave, {
        "status": MetadataValue.text(f"NOT PUBLISHED: {message}"),
        "published": MetadataValue.bool(False),
        "run_id": MetadataValue.text(context.run.run_id),
        "reason": MetadataValue.text(message),
        "retry": MetadataValue.text(f"lbc run --wave {wave}  (or Materialize all, partition {wave}, in the UI)"),
    })


def record_published(context, wave: str, publication, serving: Path) -> None:
    """Say on the publication pages which run's output consumers now see for `wave`."""
    _observe(context, wave, {
        "status": MetadataValue.text(f"published: run {publication.run_id} at {publication.published_at:%Y-%m-%d %H:%M:%S} UTC"),
        "published": MetadataValue.bool(True),
        "run_id": MetadataValue.text(publication.run_id),
        "published_at": MetadataValue.text(f"{publication.published_at:%Y-%m-%d %H:%M:%S} UTC"),
        "serving_file": MetadataValue.path(str(serving)),
    })
