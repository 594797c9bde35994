"""The one place the Dagster Definitions are assembled."""

from dagster import Definitions, load_assets_from_modules

from lbc_pipeline import checks, resources, sensors
from lbc_pipeline.assets import analysis, cross_wave, marts, raw, sensitivity, staging
from lbc_pipeline.jobs import cross_wave_job, main_job

defs = Definitions(
    assets=load_assets_from_modules([raw, staging, analysis, marts, sensitivity, cross_wave]),
    asset_checks=checks.ALL_CHECKS,
    jobs=[main_job, cross_wave_job],
    sensors=[sensors.incoming_waves, sensors.refresh_cross_wave],
    schedules=[sensors.nightly_refresh],
    resources={"duckdb": resources.warehouse_resource(), "quality_config": checks.QualityConfig()},
)
