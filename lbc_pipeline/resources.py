"""Resources: the DuckDB warehouse, one writer at a time."""

from contextlib import contextmanager

import duckdb
from dagster._utils.backoff import backoff
from dagster_duckdb import DuckDBResource
from pydantic import Field

from lbc_pipeline.config import duckdb_path


class WarehouseResource(DuckDBResource):
    """The DuckDB warehouse.

    With `database` left empty the path is resolved when a step connects, from
    `LBC_DUCKDB_PATH` (default data/warehouse/lbc.duckdb), so one loaded code location can
    serve several warehouses (tests, a second deployment). Connections are closed even
    when a step fails, so a failed step never keeps the file locked. DuckDB allows one
    writer per file: the main job runs its steps in one process, and UI or sensor runs
    share the `duckdb` pool (limit 1 in dagster.yaml).
    """

    database: str = Field(default="", description="Path of the DuckDB file; empty = LBC_DUCKDB_PATH or data/warehouse/lbc.duckdb")

    @contextmanager
    def get_connection(self):
        path = self.database or str(duckdb_path())
        if not self.database:
            duckdb_path().parent.mkdir(parents=True, exist_ok=True)
        con = backoff(
            fn=duckdb.connect,
            retry_on=(RuntimeError, duckdb.IOException),
            kwargs={"database": path, "read_only": False, "config": dict(self.connection_config)},
            max_retries=10,
        )
        try:
            yield con
        finally:
            con.close()


def warehouse_resource() -> WarehouseResource:
    return WarehouseResource()
