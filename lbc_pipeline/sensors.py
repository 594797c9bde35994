"""Noticing new waves: a sensor on data/incoming and a nightly refresh of stale waves.

A delivery is a wave folder dropped into `data/incoming/` (configurable with
`LBC_INCOMING_DIR`). The sensor checks it quickly (manifest, both files readable, required
columns), registers its wave as a dynamic partition and requests a run. The cursor keeps
each wave's file digests: the same files again request nothing; changed files request a new
run whose tags record what changed; a broken delivery is skipped with its reason and nothing
is registered. The files are read in place and never changed.
"""

import json

from dagster import (
    DefaultScheduleStatus,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunStatusSensorContext,
    run_status_sensor,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    schedule,
    sensor,
)

from lbc_pipeline.assets import wave_partitions
from lbc_pipeline.config import incoming_dir, wave_folder
from lbc_pipeline.jobs import cross_wave_job, main_job
from lbc_pipeline.lib.raw.loading import Delivery, inspect_delivery
from lbc_pipeline.lib.raw.reading import RawFileError

DELIVERY_TAG = "lbc/delivery"
FINGERPRINT_TAG = "lbc/fingerprint"


def scan_incoming(cursor: dict[str, dict[str, str]]) -> tuple[list[tuple[Delivery, str]], list[str]]:
    """New or changed deliveries (with what changed) and the reasons broken ones were skipped."""
    root = incoming_dir()
    if not root.exists():
        return [], [f"{root} does not exist"]
    found, skipped = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            delivery = inspect_delivery(folder)
        except RawFileError as exc:
            skipped.append(f"{folder.name}: {exc}")
            continue
        previous = cursor.get(delivery.wave)
        if previous != delivery.files:
            found.append((delivery, delivery.changes_since(previous)))
    return found, skipped


@sensor(job=main_job, minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING,
        description="Registers and runs each new or changed wave delivered to data/incoming.")
def incoming_waves(context: SensorEvaluationContext):
    cursor = json.loads(context.cursor) if context.cursor else {}
    found, skipped = scan_incoming(cursor)
    for reason in skipped:
        context.log.warning(f"skipped delivery {reason}")
    if not found:
        return SkipReason("; ".join(skipped) if skipped else f"no new or changed delivery in {incoming_dir()}")
    registered = set(context.instance.get_dynamic_partitions(wave_partitions.name))
    new_waves = sorted({d.wave for d, _ in found} - registered)
    requests = []
    for delivery, change in found:
        cursor[delivery.wave] = delivery.files
        requests.append(RunRequest(
            partition_key=delivery.wave,
            run_key=f"{delivery.wave}:{delivery.fingerprint}",
            tags={DELIVERY_TAG: change[:1000], FINGERPRINT_TAG: delivery.fingerprint},
        ))
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[wave_partitions.build_add_request(new_waves)] if new_waves else [],
        cursor=json.dumps(cursor, sort_keys=True),
    )


def stale_waves(instance, waves: list[str]) -> dict[str, str]:
    """Registered waves whose files differ from those of their last raw load, with why."""
    from dagster import AssetKey, AssetRecordsFilter

    stale = {}
    for wave in waves:
        try:
            current = inspect_delivery(wave_folder(wave)).files
        except (FileNotFoundError, RawFileError) as exc:
            stale[wave] = f"unreadable: {exc}"
            continue
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(["raw", "load_log"]), asset_partitions=[wave]), limit=1
        ).records
        loaded = records[0].asset_materialization.metadata.get("files_sha256") if records else None
        if loaded is None:
            stale[wave] = "never loaded"
        elif loaded.value != current:
            stale[wave] = "files changed since the last load"
    return stale


@schedule(job=main_job, cron_schedule="0 2 * * *", default_status=DefaultScheduleStatus.RUNNING,
          description="Nightly: re-runs every wave whose files changed since its last load (or never loaded).")
def nightly_refresh(context: ScheduleEvaluationContext):
    waves = sorted(context.instance.get_dynamic_partitions(wave_partitions.name))
    stale = stale_waves(context.instance, waves)
    if not stale:
        return SkipReason(f"all {len(waves)} registered waves are up to date")
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return [RunRequest(partition_key=wave, run_key=f"nightly:{day}:{wave}", tags={DELIVERY_TAG: why})
            for wave, why in stale.items()]


@run_status_sensor(run_status=DagsterRunStatus.SUCCESS, monitored_jobs=[main_job], request_job=cross_wave_job,
                   default_status=DefaultSensorStatus.RUNNING,
                   description="After a wave's run succeeds, refresh the pooled and comparison marts.")
def refresh_cross_wave(context: RunStatusSensorContext):
    return RunRequest(run_key=f"cross-wave:{context.dagster_run.run_id}")
