"""The one place the Dagster Definitions are assembled.

Loading them creates tens of thousands of long-lived objects (Dagster's own modules, then
every spec, op and job): the cyclic garbage collector is paused while they are built, since
its passes over them find nothing to free, and they are then frozen (moved out of the
collector's generations), so the collections of a run no longer walk them (measured by
scripts/benchmark.py, case `definitions`). The domain modules (polars, DuckDB, numpy, statsmodels) are imported by the
steps that use them, not here.
"""

import gc

_collecting = gc.isenabled()
gc.disable()

from dagster import AssetKey, Definitions, load_assets_from_modules

from lbc_pipeline import resources, sensors
from lbc_pipeline.assets import analysis, cross_wave, marts, qualitative, raw, sensitivity, staging
from lbc_pipeline.assets._common import with_conventions
from lbc_pipeline.assets.publish import build_publish_asset
from lbc_pipeline.jobs import CROSS_WAVE_KEYS, cross_wave_job, main_job

# Every asset carries the project's conventions; modules that set them keep their own.
_assets = [
    a.map_asset_specs(lambda spec, m=module.__name__.rsplit(".", 1)[1]: with_conventions(spec, m))
    for module in (raw, staging, analysis, marts, sensitivity, cross_wave, qualitative)
    for a in load_assets_from_modules([module])
]
# The wave is published (made visible to consumers) after every other asset of it.
_wave_keys = sorted({k for a in _assets for k in a.keys} - {AssetKey(k) for k in CROSS_WAVE_KEYS},
                    key=lambda k: k.to_user_string())
_publish = build_publish_asset(_wave_keys).map_asset_specs(lambda spec: with_conventions(spec, "publish"))

defs = Definitions(
    assets=[*_assets, _publish],
    asset_checks=qualitative.CHECKS,  # the other checks are declared on the steps they guard
    jobs=[main_job, cross_wave_job],
    sensors=[sensors.incoming_waves, sensors.refresh_cross_wave],
    schedules=[sensors.nightly_refresh],
    resources={"duckdb": resources.warehouse_resource(), "quality_config": resources.QualityConfig()},
)

gc.freeze()
if _collecting:
    gc.enable()
