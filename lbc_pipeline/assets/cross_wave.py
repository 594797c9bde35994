"""Cross-wave marts: the paper's models pooled over waves, and the wave-over-wave comparison.

These assets are not partitioned: each materialisation reads every wave in the warehouse
and replaces the whole table.
"""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    multi_asset,
)
import polars as pl
from dagster_duckdb import DuckDBResource

from lbc_pipeline.assets._common import table_metadata
from lbc_pipeline.config import every_wave, wave_order
from lbc_pipeline.jobs import CROSS_WAVE_KEYS
from lbc_pipeline.lib.marts import waves
from lbc_pipeline.lib.marts_docs import MARTS_DOCS
from lbc_pipeline.lib.io.warehouse import replace_table

POOLED = "pooled"


@multi_asset(
    specs=[AssetSpec(key, group_name="marts", description=MARTS_DOCS[".".join(key)][0],
                     deps=[AssetDep(["analysis", "analytic_sample"]), AssetDep(["marts", "model_coefficients"])])
           for key in CROSS_WAVE_KEYS],
    check_specs=[AssetCheckSpec("wave_drift", asset=["marts", "wave_comparison"],
                                description="WARN when group sizes, means, alpha or key coefficients change more than the thresholds between consecutive waves.")],
)
def compare_across_waves(context: AssetExecutionContext, duckdb: DuckDBResource):
    """Pool every wave (wave fixed effects) and compare each wave with the one before."""
    with duckdb.get_connection() as con:
        samples = con.sql("select * from analysis.analytic_sample order by wave, child_key").pl()
        coefficients = con.sql("select * from marts.model_coefficients").pl()
    # A wave whose run is still going has a sample but no coefficients yet: pool complete waves.
    complete = sorted(set(samples["wave"].unique()) & set(coefficients["wave"].unique()))
    incomplete = sorted(set(samples["wave"].unique()) - set(complete))
    samples = samples.filter(pl.col("wave").is_in(complete))
    coefficients = coefficients.filter(pl.col("wave").is_in(complete))
    order = wave_order(every_wave())
    frames = {}
    for specification in ("as_published", "harmonised"):
        pooled, fit = waves.pooled_models(samples, specification, order)
        frames.setdefault("marts.pooled_coefficients", []).append(pooled)
        frames.setdefault("marts.pooled_fit", []).append(fit)
    tables = {name: pl.concat(parts).with_columns(pl.lit(POOLED).alias("wave")) for name, parts in frames.items()}
    tables["marts.wave_comparison"] = waves.compare_waves(samples, coefficients, order)
    with duckdb.get_connection() as con:
        replace_table(con, tables, docs=MARTS_DOCS)
    for table, frame in tables.items():
        yield MaterializeResult(asset_key=table.split("."), metadata={
            **table_metadata(frame, table), "waves": ", ".join(complete),
            "waves_not_yet_complete": ", ".join(incomplete) or "none"})
    outcome = waves.check_drift(tables["marts.wave_comparison"])
    yield AssetCheckResult(check_name="wave_drift", asset_key=["marts", "wave_comparison"], passed=outcome.passed,
                           severity=AssetCheckSeverity.WARN, description=outcome.description,
                           metadata=outcome.metadata)
