"""The publish step: the last step of a wave's run makes what the run built visible to
consumers at once, as a new serving file (lib/io/publish.py). It depends on every other
asset of the wave, so it runs only when all of them were built and no blocking check failed;
it runs in the pool `lbc_publish` (one slot for the whole instance, on every machine)."""

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from lbc_pipeline.assets import wave_partitions
from lbc_pipeline.assets._common import record_published, record_unpublished
from lbc_pipeline.config import data_dir, duckdb_path
from lbc_pipeline.resources import PUBLISH_KEY, WarehouseResource

PUBLISH_POOL = "lbc_publish"


def build_publish_asset(upstream):
    """The publish asset, downstream of `upstream` (every other asset of a wave)."""

    @asset(key=PUBLISH_KEY, deps=upstream, partitions_def=wave_partitions, group_name="publish",
           kinds={"duckdb"}, pool=PUBLISH_POOL,
           description="Publishes the wave: a new serving file (data/warehouse/lbc.duckdb) is built from every "
                       "wave's release, this run's working database in place of the wave's, searched for every "
                       "personal value, and renamed over the old one; data/artifacts/<wave> and "
                       "data/reports/<wave> then point to this run's files. Until then consumers see the previous "
                       "publication (or nothing). One row per publication in publish.wave_versions.")
    def wave_versions(context: AssetExecutionContext, duckdb: WarehouseResource) -> MaterializeResult:
        from lbc_pipeline.lib.io import publish as publishing  # duckdb: loaded when the step runs

        wave = context.partition_key
        with duckdb.get_connection() as con:
            try:
                publication = publishing.publish_wave(con, wave, context.run.run_id, data_dir())
            except publishing.PublicationRefused as exc:
                record_unpublished(context, wave, str(exc))
                raise Failure(description=str(exc)) from None
        tables = publication.tables
        context.log.info(f"wave {wave}: published {len(tables)} tables ({sum(tables.values())} rows) of run "
                         f"{context.run.run_id} in {duckdb_path()}")
        record_published(context, wave, publication, duckdb_path())
        return MaterializeResult(metadata={
            "dagster/row_count": 1,
            "published": MetadataValue.bool(True),
            "published_at": MetadataValue.text(f"{publication.published_at:%Y-%m-%d %H:%M:%S} UTC"),
            "serving_file": MetadataValue.path(str(duckdb_path())),
            "tables": len(tables), "rows": sum(tables.values()),
            # lock waits: none for another wave's run (each wave has its own working database)
            "lock_wait_s/working_database": float(duckdb.lock_waited_s()),
            "lock_wait_s/publication": float(publication.lock_wait_s),
            "tables_published": MetadataValue.md("\n".join(f"- `{t}`: {n} rows" for t, n in tables.items())),
        })

    return wave_versions
