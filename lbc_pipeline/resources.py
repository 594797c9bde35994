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
    Within a run the database is opened once and kept open between steps, and let go as soon
    as another process waits for the lock (`lib/io/warehouse.KeptWarehouse`); the end of the
    run closes it.
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
    _in_run: bool = PrivateAttr(default=False)
    _kept: Any = PrivateAttr(default=None)  # lib.io.warehouse.KeptWarehouse, within a run

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # In a run that publishes a wave, every connection writes and reads that run's
        # pending rows (lib/io/publish.py): consumers never see a partial wave.
        self._pending_run = publishing_run(context.run)
        # Within a run (or a step process) the warehouse is opened once and kept between
        # steps, let go whenever another process waits for it (KeptWarehouse).
        self._in_run, self._kept = True, None
        # a run worker's events to a SQLite instance (lbc_pipeline/instance_sqlite.py)
        from lbc_pipeline import instance_sqlite

        instance_sqlite.install()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.release()

    def release(self) -> None:
        """Let go of the warehouse this run kept open (nothing if it keeps none)."""
        kept, self._kept = self._kept, None
        if kept is not None:
            kept.close()

    def _open(self, path: Path):
        import duckdb

        return backoff(
            fn=duckdb.connect,
            retry_on=(RuntimeError, duckdb.IOException),
            kwargs={"database": str(path), "read_only": False, "config": dict(self.connection_config)},
            max_retries=10,
        )

    @contextmanager
    def _connection(self, path: Path):
        """A connection to the warehouse at `path`, taken in turn with other processes: from
        the database this run keeps open, or (outside a run) opened and closed here."""
        from lbc_pipeline.lib.io.warehouse import KeptWarehouse, exclusive_file_lock, lock_path

        if self._in_run:
            if self._kept is not None and self._kept.path != path:
                self.release()
            if self._kept is None:
                self._kept = KeptWarehouse(path, lambda: self._open(path), self.lock_timeout_s)
            with self._kept.connection() as con:
                yield con
            return
        with exclusive_file_lock(lock_path(path), self.lock_timeout_s):
            con = self._open(path)
            try:
                yield con
            finally:
                con.close()

    @contextmanager
    def get_connection(self):
        # duckdb (and the warehouse module, which imports polars) are loaded by the steps
        # that connect, not with the Definitions
        from lbc_pipeline.lib.io.warehouse import set_pending_run

        path = Path(self.database) if self.database else duckdb_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection(path) as con:
            if self._pending_run:
                set_pending_run(con, self._pending_run)
            yield con


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
