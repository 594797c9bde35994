"""The contract of every warehouse table: one pandera schema per table, one module per layer
(raw, staging, analysis, marts). See `base` for what is derived from a contract.

Importing this package is cheap: pandera and the contracts load on first use (the Dagster
definitions need only `catalog`, which reads them from `catalog.json`). Any function below
registers every contract first, those declared beside their domain code included (see
`REGISTERING_MODULES`).
"""

from __future__ import annotations

import importlib

# Modules that register contracts when imported: the four layers, and the marts and
# qualitative tables declared beside their code. A test checks that this list is complete.
REGISTERING_MODULES = (
    "lbc_pipeline.lib.contracts.raw",
    "lbc_pipeline.lib.contracts.staging",
    "lbc_pipeline.lib.contracts.analysis",
    "lbc_pipeline.lib.contracts.marts",
    "lbc_pipeline.lib.qualitative.contracts",
    "lbc_pipeline.lib.marts.missing_data",
    "lbc_pipeline.lib.marts.moderation",
    "lbc_pipeline.lib.marts.robustness",
    "lbc_pipeline.lib.marts.sensitivity",
)
_loading = False


def _registry():
    """`base`, with every contract registered."""
    global _loading
    from lbc_pipeline.lib.contracts import base

    if not _loading:
        _loading = True  # a registering module that calls back while loading gets `base` as it is
        for module in REGISTERING_MODULES:
            importlib.import_module(module)
    return base


# Names that need no registry (used while the contracts are being declared).
_FROM_BASE = ("QID", "WAVE", "register", "describe_codes")
_FROM_MODULES = {"ANALYTIC_COLUMNS": "analysis", "MISSING_REASONS": "staging", "answer_schema": "staging"}


def __getattr__(name: str):
    if name in _FROM_BASE:
        from lbc_pipeline.lib.contracts import base

        return getattr(base, name)
    if name == "SCHEMAS":
        return _registry().SCHEMAS
    if name in _FROM_MODULES:
        _registry()
        return getattr(importlib.import_module(f"lbc_pipeline.lib.contracts.{_FROM_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def schema_for(table: str):
    """The contract of a warehouse table (`schema.table`)."""
    return _registry().schema_for(table)


def tables() -> list[str]:
    """Every table with a contract, sorted."""
    return _registry().tables()


def contract_docs(table: str) -> tuple[str, dict[str, str]]:
    """The grain and the column descriptions of a table's contract."""
    return _registry().contract_docs(table)


def dtypes(table: str, drop: tuple[str, ...] = ()):
    """Column name -> polars dtype, in the contract's order (for frames built in code); read
    from the catalogue (no pandera), which a test holds equal to `base.dtypes`."""
    from lbc_pipeline.lib.contracts import catalog

    return catalog.dtypes(table, drop)


def empty_frame(table: str):
    """A frame with the contract's columns and no rows."""
    import polars as pl

    return pl.DataFrame(schema=dtypes(table))


def frame(table: str, rows, drop: tuple[str, ...] = (), **kwargs):
    """Rows as a frame typed by the table's contract (columns in its order)."""
    import polars as pl

    return pl.DataFrame(rows, schema=dtypes(table, drop), **kwargs)


def primary_key(table: str) -> list[str]:
    """The columns whose values are unique together in the table (its grain)."""
    return _registry().primary_key(table)


def validate(table: str, data):
    """Validate a frame against its table's contract (every failure at once)."""
    return _registry().validate(table, data)


def value_domains(table: str) -> dict[str, dict]:
    """Per column, the values its contract allows (great-expectations suites are built from these)."""
    return _registry().value_domains(table)


__all__ = [
    "ANALYTIC_COLUMNS", "MISSING_REASONS", "QID", "SCHEMAS", "WAVE", "answer_schema", "contract_docs", "dtypes",
    "empty_frame", "frame", "primary_key", "register", "schema_for", "tables", "validate", "value_domains",
]
