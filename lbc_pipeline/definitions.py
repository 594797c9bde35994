"""The one place the Dagster Definitions are assembled."""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor, load_assets_from_modules

from lbc_pipeline import checks, resources
from lbc_pipeline.assets import analysis, marts, raw, staging

assets = load_assets_from_modules([raw, staging, analysis, marts])

main_job = define_asset_job(
    name="lbc_main_job",
    selection=AssetSelection.all(include_sources=False),
    description="Every asset and check of one wave: raw -> staging -> analysis -> marts.",
    executor_def=in_process_executor,
)

defs = Definitions(
    assets=assets,
    asset_checks=checks.ALL_CHECKS,
    jobs=[main_job],
    resources={"duckdb": resources.warehouse_resource(), "quality_config": checks.QualityConfig()},
)
