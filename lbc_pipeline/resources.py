"""Resources: the DuckDB warehouse, one writer at a time."""

from __future__ import annotations

from dagster_duckdb import DuckDBResource

from lbc_pipeline.config import duckdb_path


def warehouse_resource() -> DuckDBResource:
    """The warehouse at `LBC_DUCKDB_PATH` (default data/warehouse/lbc.duckdb).

    The path is read when the Definitions load. DuckDB allows one writer per file: the
    main job runs its steps in one process, and UI or sensor runs share the `duckdb` pool
    (limit 1), so writers never fail on the file lock.
    """
    path = duckdb_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return DuckDBResource(database=str(path))
