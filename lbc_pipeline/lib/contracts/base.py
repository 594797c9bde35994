"""The registry of table contracts and what is derived from them.

A contract is a pandera schema: its `description` is the table's grain ("One row per ..."),
each column's `description` its meaning, its checks the values it may take. From it come
the DuckDB `COMMENT`s, the polars dtypes of frames built in code, the Dagster column
schema, the great-expectations value ranges, and the validation of every frame before it
is written.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandera.polars as pa
import polars as pl

WAVE = pa.Column(pl.String, description="Wave identifier (the partition key, e.g. '2019')")
QID = pa.Column(pl.String, description="Questionnaire serial number, unique within a wave")

SCHEMAS: dict[str, pa.DataFrameSchema] = {}


def register(name: str, schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    """Make `schema` the contract of table `name` (`schema.table`); returns it."""
    if not schema.description:
        raise ValueError(f"{name}: a contract states its grain as its description")
    undocumented = [c for c, col in schema.columns.items() if not col.description]
    if undocumented:
        raise ValueError(f"{name}: columns without a description: {undocumented}")
    SCHEMAS[name] = schema
    return schema


def schema_for(table: str) -> pa.DataFrameSchema:
    """The contract of a warehouse table (`schema.table`)."""
    try:
        return SCHEMAS[table]
    except KeyError:
        raise KeyError(f"{table} has no contract; register one in lbc_pipeline/lib/contracts/") from None


def tables() -> list[str]:
    """Every table with a contract, sorted."""
    return sorted(SCHEMAS)


def contract_docs(table: str) -> tuple[str, dict[str, str]]:
    """The grain and the column descriptions of a table's contract."""
    contract = schema_for(table)
    return contract.description, {name: column.description or "" for name, column in contract.columns.items()}


def dtypes(table: str, drop: tuple[str, ...] = ()) -> dict[str, pl.DataType]:
    """Column name -> polars dtype, in the contract's order (for frames built in code)."""
    return {name: column.dtype.type for name, column in schema_for(table).columns.items() if name not in drop}


def empty_frame(table: str) -> pl.DataFrame:
    """A frame with the contract's columns and no rows."""
    return pl.DataFrame(schema=dtypes(table))


def frame(table: str, rows: list[dict] | list[tuple], drop: tuple[str, ...] = (), **kwargs) -> pl.DataFrame:
    """Rows as a frame typed by the table's contract (columns in its order)."""
    return pl.DataFrame(rows, schema=dtypes(table, drop), **kwargs)


def primary_key(table: str) -> list[str]:
    """The columns whose values are unique together in the table (its grain), from the
    contract's `unique`; empty when rows are not unique by key (e.g. a history)."""
    contract = schema_for(table)
    unique = list(contract.unique or [])
    # A key column that may be null cannot be part of a primary key: such a grain stays a
    # uniqueness check of the contract only.
    if any(contract.columns[c].nullable for c in unique):
        return []
    return unique


def validate(table: str, data: pl.DataFrame) -> pl.DataFrame:
    """Validate a frame against its table's contract (every failure at once)."""
    return schema_for(table).validate(data, lazy=True)


def value_domains(table: str) -> dict[str, dict]:
    """Per column, the values its contract allows: {'min_value', 'max_value'} for a range
    check, {'allowed_values'} for a set. Great-expectations suites are built from these."""
    domains: dict[str, dict] = {}
    for name, column in schema_for(table).columns.items():
        for check in column.checks:
            stats = dict(check.statistics or {})
            if check.name == "in_range":
                domains[name] = {"min_value": stats["min_value"], "max_value": stats["max_value"]}
            elif check.name == "isin":
                domains[name] = {"allowed_values": sorted(stats["allowed_values"])}
    return domains


def describe_codes(codes: Mapping[int, tuple[str, str]]) -> str:
    """'1 = boy (男); 2 = girl (女)' for a column's codes and labels."""
    return "; ".join(f"{code} = {en} ({zh})" for code, (en, zh) in codes.items())
