"""Jobs: the main job runs one wave's whole graph; the cross-wave job the pooled marts."""

from dagster import AssetSelection, define_asset_job, in_process_executor

CROSS_WAVE_GROUP = "cross_wave"

main_job = define_asset_job(
    name="lbc_main_job",
    selection=AssetSelection.all() - AssetSelection.groups(CROSS_WAVE_GROUP),
    description="Every asset and check of one wave: raw -> staging -> analysis -> marts.",
    executor_def=in_process_executor,
)
