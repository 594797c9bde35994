"""Noticing new waves: a sensor on data/incoming and a nightly refresh of stale waves.

A delivery is a wave folder dropped into `data/incoming/` (configurable with
`LBC_INCOMING_DIR`). The sensor validates it exactly as the job's raw step will
(`validate_delivery`: manifest, files, every value rule), registers its wave as a dynamic
partition and requests a run. The cursor keeps each wave's file digests: the same files
again request nothing; changed files request a new run whose tags record what changed. A
refused delivery is skipped with its reason, nothing is registered, one row goes to
`raw.rejected_files` of the wave's working database (restricted tier; once per version of
its files, remembered in the cursor under
`.rejected`) and the other folders are handled as usual: one unreadable folder never fails
the tick. The files are read in place and never changed.
"""

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

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
from lbc_pipeline.config import incoming_dir, read_manifest, wave_folder, working_path
from lbc_pipeline.jobs import cross_wave_job, main_job

if TYPE_CHECKING:  # the reading modules (polars, duckdb) load when a tick runs, not with the Definitions
    from lbc_pipeline.lib.raw.loading import Delivery
    from lbc_pipeline.lib.raw.reading import RawFileError

DELIVERY_TAG = "lbc/delivery"
FINGERPRINT_TAG = "lbc/fingerprint"


REJECTED_KEY = ".rejected"  # cursor entry of refused folders (a wave id never starts with a dot)


@dataclass
class Scan:
    """One look at data/incoming: deliveries to run, refusals new since the cursor, and the
    reasons folders were skipped (refusals included)."""

    found: "list[tuple[Delivery, str]]" = field(default_factory=list)
    rejected: "list[tuple[str, RawFileError, dict[str, str]]]" = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def scan_incoming(cursor: dict) -> Scan:
    """New or changed deliveries (with what changed) and the reasons broken ones were skipped."""
    from lbc_pipeline.lib.raw.loading import folder_digests, inspect_delivery
    from lbc_pipeline.lib.raw.reading import RawFileError

    root = incoming_dir()
    scan = Scan()
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except FileNotFoundError:
        scan.skipped.append(f"{root} does not exist")
        return scan
    except OSError as exc:
        scan.skipped.append(f"{root}: cannot list the folder ({exc.strerror})")
        return scan
    rejected_before = cursor.get(REJECTED_KEY, {})
    seen = [files for wave, files in cursor.items() if wave != REJECTED_KEY]
    for folder in folders:
        try:
            digests = folder_digests(folder)
            if digests in seen:
                continue  # these files were validated and requested before
            if rejected_before.get(folder.name) == digests:
                scan.skipped.append(f"{folder.name}: refused before, files unchanged")
                continue
            delivery = inspect_delivery(folder)
        except RawFileError as exc:
            scan.skipped.append(f"{folder.name}: {exc}")
            scan.rejected.append((folder.name, exc, _safe_digests(folder)))
            continue
        except OSError as exc:
            scan.skipped.append(f"{folder.name}: cannot read the folder ({exc.strerror or exc})")
            continue
        except Exception as exc:  # one folder must never fail the tick for the others
            scan.skipped.append(f"{folder.name}: could not be validated ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:200] if str(exc) else ''})")
            continue
        previous = cursor.get(delivery.wave)
        if previous != delivery.files:
            scan.found.append((delivery, delivery.changes_since(previous)))
    return scan


def _safe_digests(folder: Path) -> dict[str, str]:
    from lbc_pipeline.lib.raw.loading import folder_digests

    try:
        return folder_digests(folder)
    except OSError:
        return {}


def record_refusals(rejected: "list[tuple[str, RawFileError, dict[str, str]]]", log) -> None:
    """One row per newly refused delivery in `raw.rejected_files` of the wave's working
    database (a short wait for its lock; when a run of that wave holds it the refusal is
    logged and recorded at the next change)."""
    if not rejected:
        return
    from lbc_pipeline.lib.io.publish import ensure_restricted
    from lbc_pipeline.lib.io.warehouse import connect, exclusive_file_lock, lock_path
    from lbc_pipeline.lib.raw.loading import record_rejection

    at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    for folder, error, _ in rejected:
        wave = _wave_of(folder)
        try:
            ensure_restricted()
            path = working_path(wave)
            path.parent.mkdir(parents=True, exist_ok=True)
            with exclusive_file_lock(lock_path(path), timeout_s=10.0):
                with connect(path) as con:
                    record_rejection(con, wave, error, at)
        except Exception as exc:  # the refusal is still in the skip reason and the log
            log.warning(f"could not record the refused delivery {folder} in raw.rejected_files: {exc}")


def _wave_of(folder_name: str) -> str:
    try:
        return read_manifest(incoming_dir() / folder_name).wave
    except Exception:
        return folder_name


@sensor(job=main_job, minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING,
        description="Registers and runs each new or changed wave delivered to data/incoming.")
def incoming_waves(context: SensorEvaluationContext):
    cursor = json.loads(context.cursor) if context.cursor else {}
    scan = scan_incoming(cursor)
    found, skipped = scan.found, scan.skipped
    for reason in skipped:
        context.log.warning(f"skipped delivery {reason}")
    record_refusals(scan.rejected, context.log)
    if scan.rejected:
        cursor.setdefault(REJECTED_KEY, {}).update({name: digests for name, _, digests in scan.rejected})
        if not found:
            return SensorResult(skip_reason="; ".join(skipped), cursor=json.dumps(cursor, sort_keys=True))
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

    from lbc_pipeline.lib.raw.loading import inspect_delivery
    from lbc_pipeline.lib.raw.reading import RawFileError

    stale = {}
    for wave in waves:
        try:
            current = inspect_delivery(wave_folder(wave)).files
        except (FileNotFoundError, RawFileError, OSError) as exc:
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
