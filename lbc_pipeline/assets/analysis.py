"""Analysis layer: derived measures, the sample flow and the analysis sample.

The data-quality checks on the sample flow and the analysis sample run inside this step, on
the frames it has just built: when an ERROR check fails, nothing downstream (marts,
artifacts, publication tables, report, publication of the wave, cross-wave pooling) is
built; WARN checks report. Their outcomes are also written to `analysis.check_results`,
which the report and `lbc replication` state.
"""

from dagster import AssetCheckSpec, AssetExecutionContext, Failure, MetadataValue, multi_asset

from lbc_pipeline.assets import wave_partitions
from lbc_pipeline.assets._common import (
    check_result, key_of, materialized, record_unpublished, selected_tables, table_spec,
)
from lbc_pipeline.lib.quality.outcome import ERROR
from lbc_pipeline.config import read_manifest, wave_folder
from lbc_pipeline.resources import QualityConfig, WarehouseResource

_CODE = ("lib/analysis", "lib/quality", "lib/io", "assets/analysis.py")
_KINDS = ["duckdb", "polars", "pandera"]

QUALITY_CHECKS = [
    AssetCheckSpec("sample_flow_conservation", partitions_def=wave_partitions, asset=key_of("analysis.sample_flow"), blocking=True,
                   description="Every step conserves questionnaires (n_before = n_excluded + n_after) and every returned questionnaire is analysed or has a reason."),
    AssetCheckSpec("sample_flow_expected_counts", partitions_def=wave_partitions, asset=key_of("analysis.sample_flow"), blocking=True,
                   description="The flow's counts equal the wave manifest's expected counts (ERROR); without expectations, a WARN report."),
    AssetCheckSpec("analytic_sample_expectations", partitions_def=wave_partitions, asset=key_of("analysis.analytic_sample"), blocking=True,
                   description="great-expectations suite on the analysis sample: types, ranges (from its contract), non-null, unique keys, migration groups and their sizes."),
    AssetCheckSpec("fieldwork_window", partitions_def=wave_partitions, asset=key_of("analysis.sample_flow"),
                   description="WARN when the wave has no fieldwork window, so survey dates were not checked against it."),
    AssetCheckSpec("exclusion_shares", partitions_def=wave_partitions, asset=key_of("analysis.exclusions"),
                   description="WARN when one exclusion reason removes more than the configured share of valid questionnaires."),
    AssetCheckSpec("differential_attrition", partitions_def=wave_partitions, asset=key_of("analysis.exclusions"),
                   description="WARN when excluded and analysed valid children differ by school, gender, grade or migration group (chi-square tests)."),
]


@multi_asset(
    specs=[
        table_spec("analysis.measures", deps=["staging.questionnaires", "staging.missing_values"], kinds=_KINDS, code=_CODE),
        table_spec("analysis.teacher_attitude_efa", deps=["analysis.measures"], kinds=[*_KINDS[:2], "numpy"], code=_CODE),
        table_spec("analysis.exclusions", deps=["analysis.measures", "staging.distribution"], kinds=_KINDS, code=_CODE),
        table_spec("analysis.questionnaire_status", deps=["analysis.exclusions"], kinds=_KINDS, code=_CODE),
        table_spec("analysis.sample_flow", deps=["analysis.questionnaire_status", "staging.distribution"], kinds=_KINDS, code=_CODE),
        table_spec("analysis.sample_flow_reasons", deps=["analysis.exclusions", "analysis.sample_flow"], kinds=_KINDS, code=_CODE),
        table_spec("analysis.analytic_sample", deps=["analysis.measures", "analysis.sample_flow", "analysis.teacher_attitude_efa"],
                   kinds=_KINDS, code=_CODE, tags={"pii": "pseudonymised"}),
        table_spec("analysis.scale_reliability", deps=["analysis.analytic_sample"], kinds=[*_KINDS[:2], "numpy"], code=_CODE),
        table_spec("analysis.check_results", deps=["analysis.sample_flow", "analysis.exclusions", "analysis.analytic_sample"],
                   kinds=["duckdb", "polars", "great_expectations"], code=_CODE),
    ],
    check_specs=QUALITY_CHECKS,
    can_subset=True,
)
def build_analysis(context: AssetExecutionContext, duckdb: WarehouseResource, quality_config: QualityConfig):
    """Derive measures, apply validity and exclusion rules, build the analysis sample."""
    # the domain modules (polars, duckdb, numpy) load when the step runs, not with the Definitions
    import polars as pl

    from lbc_pipeline.lib.analysis.sample import build_sample, pseudonym_key
    from lbc_pipeline.lib.io.warehouse import create_views, read_wave, replace_wave
    from lbc_pipeline.lib.quality import gx_worker, rules

    wave = context.partition_key
    manifest = read_manifest(wave_folder(wave))
    with duckdb.get_connection() as con:
        questionnaires = read_wave(con, "staging.questionnaires", wave)
        missing = read_wave(con, "staging.missing_values", wave)
        distribution = read_wave(con, "staging.distribution", wave)
    result = build_sample(questionnaires, missing, distribution, manifest, wave, pseudonym_key())
    # the great-expectations suite validates in its worker while this step writes its tables
    gx = (gx_worker.submit(result.analytic_sample, manifest, quality_config.settings())
          if GX_CHECK in {key.name for key in context.selected_asset_check_keys} else None)
    built = {  # in lineage order: a multi-asset yields its tables upstream first
        "analysis.measures": result.measures,
        "analysis.teacher_attitude_efa": pl.DataFrame(result.factor.as_rows(wave)),
        "analysis.exclusions": result.exclusions,
        "analysis.questionnaire_status": result.status,
        "analysis.sample_flow": result.flow,
        "analysis.sample_flow_reasons": result.flow_reasons,
        "analysis.analytic_sample": result.analytic_sample,
        "analysis.scale_reliability": pl.DataFrame([r.as_row(wave, "analysed") for r in result.reliability]),
    }
    selected = selected_tables(context)
    tables = {t: f for t, f in built.items() if t in selected}
    with duckdb.get_connection() as con:
        replace_wave(con, tables, wave)
    # every check's outcome (great-expectations' from its worker, which ran meanwhile)
    outcomes = quality_outcomes(context, result, manifest, quality_config, gx)
    checks = {"analysis.check_results": rules.outcomes_table(wave, outcomes)}
    checks = {t: f for t, f in checks.items() if t in selected}
    with duckdb.get_connection() as con:
        replace_wave(con, checks, wave)
        create_views(con, ("staging", "analysis"))
    tables.update(checks)
    blocked = [(name, outcome) for name, _, outcome in outcomes if outcome.severity == ERROR and not outcome.passed]
    if blocked:
        # The wave stops here: its check results are recorded (UI, analysis.check_results in
        # the working database), no table of it is shown as a healthy materialisation, and
        # the pages a user opens say why it is not published.
        for name, asset, outcome in outcomes:
            yield check_result(outcome, name, asset)
        message = blocked_message(wave, blocked)
        record_unpublished(context, wave, message)
        raise Failure(description=message, metadata={"wave": wave, "blocking_checks": ", ".join(n for n, _ in blocked)})
    for table, frame in tables.items():
        extra = {}
        if table == "analysis.sample_flow":
            extra["flow"] = MetadataValue.md("| step | before | excluded | after |\n|---|---|---|---|\n" + "\n".join(
                f"| {r['step']} | {r['n_before']} | {r['n_excluded']} | {r['n_after']} |" for r in frame.to_dicts()))
            extra.update({f"n_after/{r['step']}": int(r["n_after"]) for r in frame.to_dicts()})
        if table == "analysis.analytic_sample":
            extra.update({f"group/{g}": int(n) for g, n in frame.group_by("migration_group").len().sort("migration_group").iter_rows()})
        if table == "analysis.scale_reliability":
            extra["depression_alpha"] = float(result.reliability[0].alpha)
        yield materialized(table, frame, **extra)
    for name, asset, outcome in outcomes:
        yield check_result(outcome, name, asset)


GX_CHECK = "analytic_sample_expectations"


def blocked_message(wave: str, blocked) -> str:
    """The one-line reason a wave stops at its blocking checks, in words."""
    reasons = "; ".join(f"{name}: {outcome.description}" for name, outcome in blocked)
    return (f"wave {wave} is not published: blocking check {reasons}. Consumers keep the wave's previous "
            f"publication, if any; fix the delivery (or the threshold) and run `lbc run --wave {wave}` again")


def gx_check_in_run(context: AssetExecutionContext) -> bool:
    """Whether this run (may) validate the analysis sample with great-expectations in this
    process (the in-process executors: `lbc run`, tests; a multiprocess run validates in the
    analysis step's own process)."""
    if context.job_def.executor_def.name not in ("execute_in_process_executor", "in_process"):
        return False
    run = context.run
    if run.asset_check_selection is not None:
        return any(key.name == GX_CHECK for key in run.asset_check_selection)
    return run.asset_selection is None or key_of("analysis.analytic_sample") in run.asset_selection


def prestart_gx_worker(context: AssetExecutionContext) -> None:
    """Start (import and warm) the great-expectations worker now, for a run that will validate
    the analysis sample later: the cost moves off the analysis step (see lib/quality/gx_worker)."""
    from lbc_pipeline.lib.quality import gx_worker

    if gx_check_in_run(context) and gx_worker.prestart():
        context.log.debug("great-expectations worker started")


def quality_outcomes(context: AssetExecutionContext, result, manifest, quality_config: QualityConfig,
                     gx: "gx_worker.Pending | None" = None):
    """(check name, guarded table, outcome) of each check on the flow and the sample that
    this run selected, in the order of QUALITY_CHECKS (`gx`: the great-expectations
    validation already submitted, else it is run here)."""
    import polars as pl

    from lbc_pipeline.lib.quality import gx_worker, rules

    selected = {key.name for key in context.selected_asset_check_keys}
    sample = result.analytic_sample
    settings = quality_config.settings()
    rules_by_name = {
        "sample_flow_conservation": lambda: rules.check_conservation(result.flow, result.status),
        "sample_flow_expected_counts": lambda: rules.check_expected_counts(
            result.flow, dict(sample.group_by("migration_group").len().iter_rows()), manifest),
        GX_CHECK: gx.result if gx is not None else lambda: gx_worker.validate(sample, manifest, settings),
        "fieldwork_window": lambda: rules.check_fieldwork_window(manifest),
        "exclusion_shares": lambda: rules.check_exclusion_shares(
            result.flow_reasons, int(result.flow.filter(pl.col("step") == "valid")["n_after"][0]), settings),
        "differential_attrition": lambda: rules.check_differential_attrition(result.status, settings),
    }
    return [(spec.name, ".".join(spec.asset_key.path), rules_by_name[spec.name]())
            for spec in QUALITY_CHECKS if spec.name in selected]
