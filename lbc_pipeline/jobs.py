"""Jobs: the main job runs one wave's whole graph; the cross-wave job the pooled marts."""

from dagster import AssetSelection, define_asset_job, in_process_executor

CROSS_WAVE_KEYS = (["marts", "pooled_coefficients"], ["marts", "pooled_fit"], ["marts", "wave_comparison"])

main_job = define_asset_job(
    name="lbc_main_job",
    selection=AssetSelection.all() - AssetSelection.assets(*CROSS_WAVE_KEYS),
    description="Every asset and check of one wave: raw -> staging -> analysis -> marts.",
    executor_def=in_process_executor,
)

cross_wave_job = define_asset_job(
    name="lbc_cross_wave_job",
    selection=AssetSelection.assets(*CROSS_WAVE_KEYS),
    description="Pooled models and the wave-over-wave comparison over every wave in the warehouse.",
    executor_def=in_process_executor,
)
