"""Resources: the working databases of the waves (one writer per wave) and the data-quality
thresholds."""

from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster._utils.backoff import backoff
from dagster import AssetKey, ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from lbc_pipeline.config import cross_wave_working_path, working_path
from lbc_pipeline.lib.quality.outcome import QualitySettings

MAIN_JOB = "lbc_main_job"
PUBLISH_KEY = AssetKey(["publish", "wave_versions"])


PARTITION_TAG = "dagster/partition"


def whole_wave_run(run) -> bool:
    """Whether the run materialises the whole of a wave (the main job, no subset)."""
    return run is not None and run.job_name == MAIN_JOB and not run.asset_selection


class WarehouseResource(ConfigurableResource):
    """The working database of the run's wave (`data/restricted/waves/<wave>/work.duckdb`;
    the cross-wave marts' own for an unpartitioned run), one writer at a time per wave.

    Each wave is built in a database of its own, so runs of different waves share no lock
    and run side by side; runs of the same wave take turns step by step on an OS lock on
    `<database>.lock`. Within a run the database is opened once and kept open between
    steps, let go as soon as another process waits for it (`lib/io/warehouse.KeptWarehouse`);
    the end of the run closes it. Consumers never open these files: they read the serving
    file that the publish step builds (lib/io/publish.py). `database` set: every connection
    goes to that file instead (tests, one-off tools).
    """

    database: str = Field(default="", description="Path of a DuckDB file for every connection; empty = the run's wave's working database")
    connection_config: dict[str, Any] = Field(default={}, description="DuckDB configuration options of every connection")
    lock_timeout_s: float = Field(default=1800.0, description="How long a step waits for another run of the same wave")
    _wave: str | None = PrivateAttr(default=None)
    _whole_run: str | None = PrivateAttr(default=None)  # a run of the whole wave, until its state is started
    _in_run: bool = PrivateAttr(default=False)
    _kept: Any = PrivateAttr(default=None)  # lib.io.warehouse.KeptWarehouse, within a run

    def setup_for_execution(self, context: InitResourceContext) -> None:
        run = context.run
        self._wave = run.tags.get(PARTITION_TAG) if run is not None else None
        self._whole_run = run.run_id if whole_wave_run(run) and self._wave else None
        # Within a run (or a step process) the working database is opened once and kept
        # between steps, let go whenever another process waits for it (KeptWarehouse).
        self._in_run, self._kept = True, None
        # a run worker's events to a SQLite instance (lbc_pipeline/instance_sqlite.py)
        from lbc_pipeline import instance_sqlite

        instance_sqlite.install()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.release()

    def release(self) -> None:
        """Let go of the database this run kept open (nothing if it keeps none)."""
        kept, self._kept = self._kept, None
        if kept is not None:
            kept.close()

    def lock_waited_s(self) -> float:
        """How long this run (in this process) waited for the working database's lock."""
        return self._kept.waited_s if self._kept is not None else 0.0

    def path(self) -> Path:
        """The database this resource's connections open."""
        if self.database:
            return Path(self.database)
        return working_path(self._wave) if self._wave else cross_wave_working_path()

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
        """A connection to the database at `path`, taken in turn with other processes: from
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
        # duckdb is loaded by the steps that connect, not with the Definitions
        from lbc_pipeline.lib.io.publish import ensure_restricted

        path = self.path()
        if not self.database:
            ensure_restricted()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection(path) as con:
            if self._whole_run and not self.database:
                from lbc_pipeline.lib.io.publish import start_working_state

                start_working_state(con, self._wave, self._whole_run)  # a no-op after the run's first
                self._whole_run = None
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
