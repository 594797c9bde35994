"""Analysis layer: derived measures, the sample flow and the analysis sample."""


import polars as pl
from dagster import AssetDep, AssetExecutionContext, AssetSpec, MaterializeResult, MetadataValue, multi_asset
from dagster_duckdb import DuckDBResource

from lbc_pipeline.assets import wave_partitions
from lbc_pipeline.assets._common import table_metadata
from lbc_pipeline.config import wave_folder, read_manifest
from lbc_pipeline.lib.analysis.sample import build_sample, pseudonym_key
from lbc_pipeline.lib.io.warehouse import create_views, read_wave, replace_wave

_STAGING = [AssetDep(["staging", t]) for t in ("questionnaires", "distribution", "missing_values")]

ANALYSIS_TABLES = {
    "analysis.measures": "One row per returned questionnaire: derived measures and analysis codings, with the reason a measure is missing.",
    "analysis.teacher_attitude_efa": "One row per head-teacher item: one-factor EFA loadings, uniqueness, score weights and fit diagnostics.",
    "analysis.exclusions": "One row per returned questionnaire that left the sample: stage, primary reason, every reason.",
    "analysis.sample_flow": "One row per step from questionnaires handed out to children analysed (n_before = n_excluded + n_after).",
    "analysis.sample_flow_reasons": "One row per step and reason: primary and any-position counts.",
    "analysis.questionnaire_status": "One row per returned questionnaire: invalid, excluded or analysed.",
    "analysis.analytic_sample": "One row per child in the models (pseudonymous child_key).",
    "analysis.scale_reliability": "One row per scale: Cronbach's alpha with item statistics.",
}


@multi_asset(
    specs=[AssetSpec(t.split("."), deps=_STAGING, group_name="analysis", description=d)
           for t, d in ANALYSIS_TABLES.items()],
    partitions_def=wave_partitions,
)
def build_analysis(context: AssetExecutionContext, duckdb: DuckDBResource):
    """Derive measures, apply validity and exclusion rules, build the analysis sample."""
    wave = context.partition_key
    manifest = read_manifest(wave_folder(wave))
    with duckdb.get_connection() as con:
        questionnaires = read_wave(con, "staging.questionnaires", wave)
        missing = read_wave(con, "staging.missing_values", wave)
        distribution = read_wave(con, "staging.distribution", wave)
    result = build_sample(questionnaires, missing, distribution, manifest, wave, pseudonym_key())
    efa = pl.DataFrame(result.factor.as_rows(wave))
    reliability = pl.DataFrame(
        [r.as_row(wave, "analysed") for r in result.reliability]
    )
    tables = {
        "analysis.measures": result.measures,
        "analysis.teacher_attitude_efa": efa,
        "analysis.exclusions": result.exclusions,
        "analysis.sample_flow": result.flow,
        "analysis.sample_flow_reasons": result.flow_reasons,
        "analysis.questionnaire_status": result.status,
        "analysis.analytic_sample": result.analytic_sample,
        "analysis.scale_reliability": reliability,
    }
    with duckdb.get_connection() as con:
        replace_wave(con, tables, wave)
        create_views(con, ("staging", "analysis"))
    flow_text = "\n".join(
        f"| {r['step']} | {r['n_before']} | {r['n_excluded']} | {r['n_after']} |" for r in result.flow.to_dicts()
    )
    for table, frame in tables.items():
        metadata = table_metadata(frame, table)
        if table == "analysis.sample_flow":
            metadata["flow"] = MetadataValue.md("| step | before | excluded | after |\n|---|---|---|---|\n" + flow_text)
        if table == "analysis.analytic_sample":
            metadata["groups"] = {g: int(n) for g, n in frame.group_by("migration_group").len().iter_rows()}
        if table == "analysis.scale_reliability":
            metadata["depression_alpha"] = float(result.reliability[0].alpha)
        yield MaterializeResult(asset_key=table.split("."), metadata=metadata)
