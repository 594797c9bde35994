"""Raw layer: a wave's files as delivered (personal data included), and the load log."""

import datetime as dt

from dagster import AssetExecutionContext, Failure, multi_asset

from lbc_pipeline.assets._common import materialized, selected_tables, table_spec
from lbc_pipeline.assets.analysis import prestart_gx_worker
from lbc_pipeline.resources import WarehouseResource

_CODE = ("lib/raw", "lib/io", "config.py", "assets/raw.py")
_PERSONAL = {"pii": "names_and_roll_numbers"}


@multi_asset(
    specs=[
        table_spec("raw.questionnaires", kinds=["duckdb", "polars"], code=_CODE, tags=_PERSONAL),
        table_spec("raw.distribution", kinds=["duckdb", "polars"], code=_CODE),
        table_spec("raw.load_log", deps=["raw.questionnaires", "raw.distribution"], kinds=["duckdb", "polars"], code=_CODE),
        table_spec("raw.read_notes", deps=["raw.questionnaires", "raw.distribution"], kinds=["duckdb", "polars"], code=_CODE),
    ],
    can_subset=True,
)
def load_raw_wave(context: AssetExecutionContext, duckdb: WarehouseResource):
    """Read a wave's questionnaires and distribution files into the raw layer."""
    # the domain modules (polars, duckdb, numpy) load when the step runs, not with the Definitions
    from lbc_pipeline.lib.io.warehouse import replace_wave
    from lbc_pipeline.lib.raw.loading import load_wave_files, record_rejection
    from lbc_pipeline.lib.raw.reading import RawFileError

    wave = context.partition_key
    prestart_gx_worker(context)  # great-expectations imports and warms up while the run goes on
    loaded_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    try:
        wave_files = load_wave_files(wave)
    except RawFileError as exc:
        with duckdb.get_connection() as con:
            record_rejection(con, wave, exc, loaded_at)
        raise Failure(description=str(exc), metadata={"file": str(exc.path), "sheet": exc.sheet or "",
                                                      "row": exc.row or 0, "column": exc.column or ""}) from None
    selected = selected_tables(context)
    tables = {t: f for t, f in wave_files.raw_tables(loaded_at).items() if t in selected}
    with duckdb.get_connection() as con:
        replace_wave(con, tables, wave)
    for table, frame in tables.items():
        extra = {}
        shown = None
        if table == "raw.load_log":
            extra["files_sha256"] = wave_files.delivery.files
        if table == "raw.questionnaires":
            extra["extra_columns"] = ", ".join(wave_files.questionnaires.extra_columns) or "none"
            extra["encoding"] = wave_files.questionnaires.encoding or wave_files.questionnaires.format
            shown = frame.drop("student_name", "student_no")  # the preview shows no personal data
        yield materialized(table, frame, shown, **extra)
