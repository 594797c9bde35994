"""The publish step: the last step of a wave's run makes everything the run wrote visible to
consumers at once (lib/io/publish.py). It depends on every other asset of the wave, so it
runs only when all of them were built and no blocking check failed."""

from dagster import (
    AssetExecutionContext, AssetKey, Failure, MaterializeResult, MetadataValue, RunsFilter, asset,
)
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from lbc_pipeline.assets import wave_partitions
from lbc_pipeline.config import data_dir
from lbc_pipeline.resources import PUBLISH_KEY, WarehouseResource, publishing_run


def runs_in_progress(context) -> set[str]:
    """Ids of the Dagster runs not yet finished (their pending rows and folders are kept)."""
    return set(context.instance.get_run_ids(RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES))))


def build_publish_asset(upstream: list[AssetKey]):
    """The publish asset, downstream of `upstream` (every other asset of a wave)."""

    @asset(key=PUBLISH_KEY, deps=upstream, partitions_def=wave_partitions, group_name="publish",
           kinds={"duckdb"},
           description="Publishes the wave: in one transaction, the wave's rows of every table this run wrote "
                       "replace the previous version, and data/artifacts/<wave> and data/reports/<wave> point to "
                       "this run's files. Until then consumers see the previous complete version (or nothing). "
                       "One row per publication in publish.wave_versions.")
    def wave_versions(context: AssetExecutionContext, duckdb: WarehouseResource) -> MaterializeResult:
        from lbc_pipeline.lib.io import publish as publishing  # duckdb: loaded when the step runs

        wave, run = context.partition_key, publishing_run(context.run)
        if run is None:  # cannot happen: selecting this asset makes the run a publishing one
            raise Failure(description="publish/wave_versions runs only in a run that publishes the wave")
        with duckdb.get_connection() as con:
            pending = publishing.pending_tables(con, wave, run)
            if not pending:
                raise Failure(description=f"wave {wave}: this run wrote no table of the wave, so there is nothing "
                                          "to publish; materialise the whole wave (lbc run, or lbc_main_job)")
            tables = publishing.publish_wave(con, wave, run, data_dir())
            publishing.discard_stale(con, data_dir(), wave, runs_in_progress(context))
        context.log.info(f"wave {wave}: published {len(tables)} tables ({sum(tables.values())} rows) of run {run}")
        return MaterializeResult(metadata={
            "dagster/row_count": 1,
            "tables": len(tables), "rows": sum(tables.values()),
            "published": MetadataValue.md("\n".join(f"- `{t}`: {n} rows" for t, n in tables.items())),
        })

    return wave_versions
