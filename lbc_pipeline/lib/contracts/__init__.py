"""The contract of every warehouse table: one pandera schema per table, one module per layer
(raw, staging, analysis, marts). See `base` for what is derived from a contract.

Importing this package registers every contract.
"""

from lbc_pipeline.lib.contracts import analysis, marts, raw, staging  # noqa: F401  (registers)
from lbc_pipeline.lib.contracts.analysis import ANALYTIC_COLUMNS
from lbc_pipeline.lib.contracts.base import (
    QID,
    SCHEMAS,
    WAVE,
    contract_docs,
    dtypes,
    empty_frame,
    frame,
    primary_key,
    register,
    schema_for,
    tables,
    validate,
    value_domains,
)
from lbc_pipeline.lib.contracts.staging import MISSING_REASONS, answer_schema

__all__ = [
    "ANALYTIC_COLUMNS", "MISSING_REASONS", "QID", "SCHEMAS", "WAVE", "answer_schema", "contract_docs", "dtypes",
    "empty_frame", "frame", "primary_key", "register", "schema_for", "tables", "validate", "value_domains",
]
