"""Resources: the DuckDB warehouse (one writer at a time) and the data-quality thresholds."""

from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster._utils.backoff import backoff
from dagster import AssetKey, ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from lbc_pipeline.config import duckdb_path
from lbc_pipeline.lib.quality.outcome import QualitySettings

MAIN_JOB = "lbc_main_job"
PUBLISH_KEY = AssetKey(["publish", "wave_versions"])


def publishing_run(run) -> str | None:
    """The run's id when it publishes a wave as a unit (the main job, or any selection that
    includes the publish step): its wave tables are then written pending and its files into
    a version folder of its own, until its publish step. None for other runs (a subset
    materialised in the UI replaces just those assets' rows, in place)."""
    if run is None:
        return None
    selection = run.asset_selection
    if not selection:  # the whole job (an empty or absent selection)
        return run.run_id if run.job_name == MAIN_JOB else None
    return run.run_id if PUBLISH_KEY in selection else None


class WarehouseResource(ConfigurableResource):
    """The DuckDB warehouse, with its writers serialised across runs and processes.

    DuckDB allows one read-write connection per file: every step that connects first takes an
    exclusive lock on `<database>.lock`, so concurrent runs (the sensor's, the schedule's,
    several waves at once) take turns step by step instead of failing on the file lock.
    With `database` left empty the path is resolved when a step connects, from
    `LBC_DUCKDB_PATH` (default data/warehouse/lbc.duckdb), so one loaded code location can
    serve several warehouses. Connections are closed even when a step fails. A DuckDB CLI or
    notebook holding the file read-write still blocks runs (connection retries, then a clear
    failure): analysts should open it read-only.
    """

    database: str = Field(default="", description="Path of the DuckDB file; empty = LBC_DUCKDB_PATH or data/warehouse/lbc.duckdb")
    connection_config: dict[str, Any] = Field(default={}, description="DuckDB configuration options of every connection")
    lock_timeout_s: float = Field(default=1800.0, description="How long a step waits for another run's connection to end")
    _pending_run: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # In a run that publishes a wave, every connection writes and reads that run's
        # pending rows (lib/io/publish.py): consumers never see a partial wave.
        self._pending_run = publishing_run(context.run)
        # a run worker's events to a SQLite instance (lbc_pipeline/instance_sqlite.py)
        from lbc_pipeline import instance_sqlite

        instance_sqlite.install()

    @contextmanager
    def get_connection(self):
        # duckdb (and the warehouse module, which imports polars) are loaded by the steps
        # that connect, not with the Definitions
        import duckdb

        from lbc_pipeline.lib.io.warehouse import exclusive_file_lock, lock_path, set_pending_run

        path = Path(self.database) if self.database else duckdb_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_file_lock(lock_path(path), self.lock_timeout_s):
            con = backoff(
                fn=duckdb.connect,
                retry_on=(RuntimeError, duckdb.IOException),
                kwargs={"database": str(path), "read_only": False, "config": dict(self.connection_config)},
                max_retries=10,
            )
            try:
                if self._pending_run:
                    set_pending_run(con, self._pending_run)
                yield con
            finally:
                con.close()


def warehouse_resource() -> WarehouseResource:
    return WarehouseResource()


_DEFAULTS = QualitySettings()  # the thresholds are declared once, in lib/quality/rules.py


class QualityConfig(ConfigurableResource):
    """Thresholds of the data-quality checks, settable per run in the launchpad."""

    max_exclusion_share: float = Field(
        default=_DEFAULTS.max_exclusion_share, description="WARN when one exclusion reason applies to more than this share of valid questionnaires")
    attrition_alpha: float = Field(
        default=_DEFAULTS.attrition_alpha, description="WARN when excluded and analysed children differ at p below this")
    min_group_size: int = Field(
        default=_DEFAULTS.min_group_size, description="Smallest migration group the great-expectations suite accepts")

    def settings(self) -> QualitySettings:
        return QualitySettings(self.max_exclusion_share, self.attrition_alpha, self.min_group_size)
