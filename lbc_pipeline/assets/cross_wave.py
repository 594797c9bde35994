"""Cross-wave marts: the paper's models pooled over waves, and the wave-over-wave comparison.

These assets are not partitioned: each materialisation reads every published wave (the
waves' releases, never a working database), replaces the whole tables in the cross-wave
working database and publishes them (a new serving file, in the pool `lbc_publish`).
"""

from dagster import AssetCheckSpec, AssetExecutionContext, multi_asset

from lbc_pipeline.assets._common import check_result, key_of, materialized, table_spec
from lbc_pipeline.config import every_wave, wave_order
from lbc_pipeline.assets.publish import PUBLISH_POOL
from lbc_pipeline.resources import WarehouseResource

CROSS_WAVE_TABLES = ("marts.pooled_coefficients", "marts.pooled_fit", "marts.wave_comparison")
_CODE = ("lib/marts", "lib/io", "assets/cross_wave.py")
POOLED = "pooled"


@multi_asset(
    specs=[table_spec(t, deps=["analysis.analytic_sample", "marts.model_coefficients"], kinds=["duckdb", "statsmodels"],
                      code=_CODE, partitioned=False) for t in CROSS_WAVE_TABLES],
    check_specs=[AssetCheckSpec("wave_drift", asset=key_of("marts.wave_comparison"),
                                description="WARN when group sizes, means, alpha or key coefficients change more than the thresholds between consecutive waves.")],
    pool=PUBLISH_POOL,
)
def compare_across_waves(context: AssetExecutionContext, duckdb: WarehouseResource):
    """Pool every published wave (wave fixed effects) and compare each wave with the one before."""
    # the domain modules (polars, duckdb, numpy) load when the step runs, not with the Definitions
    import polars as pl

    from lbc_pipeline.config import data_dir
    from lbc_pipeline.lib.io import publish
    from lbc_pipeline.lib.io.warehouse import replace_table
    from lbc_pipeline.lib.marts import models, waves

    samples = publish.read_published("analysis.analytic_sample").sort("wave", "child_key")
    coefficients = publish.read_published("marts.model_coefficients")
    # A wave whose run is still going has a sample but no coefficients yet: pool complete waves.
    complete = sorted(set(samples["wave"].unique()) & set(coefficients["wave"].unique()))
    incomplete = sorted(set(samples["wave"].unique()) - set(complete))
    samples = samples.filter(pl.col("wave").is_in(complete))
    coefficients = coefficients.filter(pl.col("wave").is_in(complete))
    order = wave_order(every_wave())
    frames = {}
    for specification in models.SPECIFICATIONS:
        pooled, fit = waves.pooled_models(samples, specification, order)
        frames.setdefault("marts.pooled_coefficients", []).append(pooled)
        frames.setdefault("marts.pooled_fit", []).append(fit)
    tables = {name: pl.concat(parts).with_columns(pl.lit(POOLED).alias("wave")) for name, parts in frames.items()}
    tables["marts.wave_comparison"] = waves.compare_waves(samples, coefficients, order)
    with duckdb.get_connection() as con:
        replace_table(con, tables)
        publication = publish.publish_cross_wave(con, context.run.run_id, data_dir())
    context.log.info(f"cross-wave marts of {len(complete)} published waves published ({sum(publication.tables.values())} rows)")
    for table, frame in tables.items():
        yield materialized(table, frame, waves=", ".join(complete), waves_not_yet_complete=", ".join(incomplete) or "none")
    yield check_result(waves.check_drift(tables["marts.wave_comparison"]), "wave_drift", "marts.wave_comparison")
