"""Sensitivity marts: what the buffering means (simple slopes, Johnson-Neyman, figures) and
how robust it is (clustering, missing data, the robustness matrix)."""

from dagster import AssetDep, AssetExecutionContext, AssetSpec, MaterializeResult, MetadataValue, multi_asset

from lbc_pipeline.assets import wave_partitions
from lbc_pipeline.assets._common import materialized, table_spec
from lbc_pipeline.config import reports_dir
from lbc_pipeline.resources import WarehouseResource

# The domain modules (lib.io.warehouse, lib.marts.{moderation, missing_data, sensitivity,
# robustness}, lib.render; polars, duckdb, scipy, statsmodels, pandera) are imported in the
# step bodies: loading the Definitions does not need them.

GROUP = "marts"  # the group is the key prefix (a test checks); the module groups the sensitivity marts
SAMPLE = "analysis.analytic_sample"
SOURCES = ["analysis.measures", "staging.questionnaires"]
_CODE = ("lib/marts", "lib/render", "assets/sensitivity.py")
_KINDS = ["duckdb", "statsmodels", "numpy"]
FIGURES_SHOWN_IN_UI = ("sample_flow", "interaction_model1", "jn_model1")


def _spec(table: str, deps: list[str]) -> AssetSpec:
    """A sensitivity mart's asset spec, built from its contract like every table asset."""
    return table_spec(table, deps=deps, kinds=_KINDS, code=_CODE)


def _write(context: AssetExecutionContext, duckdb: WarehouseResource, marts: dict):
    from lbc_pipeline.lib.io.warehouse import replace_wave

    with duckdb.get_connection() as con:
        replace_wave(con, marts, context.partition_key)
    for table, frame in marts.items():
        yield materialized(table, frame)


@multi_asset(specs=[_spec("marts.simple_slopes", [SAMPLE]), _spec("marts.johnson_neyman", [SAMPLE])])
def explain_moderation(context: AssetExecutionContext, duckdb: WarehouseResource):
    """Simple slopes and Johnson-Neyman regions of the six Table 4 models."""
    from lbc_pipeline.lib.io.warehouse import read_wave
    from lbc_pipeline.lib.marts import moderation

    wave = context.partition_key
    with duckdb.get_connection() as con:
        sample = read_wave(con, "analysis.analytic_sample", wave)
    slopes, jn = moderation.explain_moderation(sample, wave)
    yield from _write(context, duckdb, {"marts.simple_slopes": slopes, "marts.johnson_neyman": jn})


@multi_asset(
    specs=[AssetSpec(["marts", "figures"], group_name=GROUP, deps=[
        AssetDep(SAMPLE.split(".")), AssetDep(["analysis", "sample_flow"]), AssetDep(["analysis", "sample_flow_reasons"]),
        AssetDep(["marts", "model_coefficients"]), AssetDep(["marts", "johnson_neyman"])],
        description="SVG and PNG figures under data/reports/<wave>/figures/: interaction, Johnson-Neyman and "
                    "coefficient plots, the sample flow, depression by group.")],
    partitions_def=wave_partitions,
)
def draw_figures(context: AssetExecutionContext, duckdb: WarehouseResource):
    """Draw the wave's figures (SVG and PNG)."""
    from lbc_pipeline.lib.io.warehouse import read_wave
    from lbc_pipeline.lib.render import figure_files, figures

    wave = context.partition_key
    with duckdb.get_connection() as con:
        frames = {t: read_wave(con, t, wave) for t in ("analysis.analytic_sample", "analysis.sample_flow",
                  "analysis.sample_flow_reasons", "marts.model_coefficients", "marts.johnson_neyman")}
    folder = reports_dir(wave, working=True) / "figures"
    written = figures.draw_wave_figures(
        frames["analysis.analytic_sample"], frames["marts.model_coefficients"], frames["analysis.sample_flow"],
        frames["analysis.sample_flow_reasons"], frames["marts.johnson_neyman"], folder)
    metadata = {"folder": MetadataValue.path(str(folder)), "figures": len(written)}
    for f in written:
        metadata[f.stem] = MetadataValue.path(str(f.svg))
        if f.stem in FIGURES_SHOWN_IN_UI:
            metadata[f"{f.stem}_preview"] = MetadataValue.md(f"![{f.title}]({figure_files.png_data_uri(f.png)})")
    yield MaterializeResult(asset_key=["marts", "figures"], metadata=metadata)


@multi_asset(specs=[_spec("marts.cluster_sensitivity", SOURCES + [SAMPLE]), _spec("marts.multilevel_icc", SOURCES + [SAMPLE])])
def test_clustering(context: AssetExecutionContext, duckdb: WarehouseResource):
    """School fixed effects, wild cluster bootstrap (Rademacher, Webb) and a class random intercept."""
    from lbc_pipeline.lib.io.warehouse import read_wave
    from lbc_pipeline.lib.marts import sensitivity

    wave = context.partition_key
    with duckdb.get_connection() as con:
        measures = read_wave(con, "analysis.measures", wave)
        questionnaires = read_wave(con, "staging.questionnaires", wave)
    cluster, icc = sensitivity.clustering_sensitivity_of_wave(measures, questionnaires, wave)
    yield from _write(context, duckdb, {"marts.cluster_sensitivity": cluster, "marts.multilevel_icc": icc})


@multi_asset(specs=[_spec("marts.mcar_test", SOURCES), _spec("marts.mi_coefficients", SOURCES + [SAMPLE])])
def handle_missing_data(context: AssetExecutionContext, duckdb: WarehouseResource):
    """Little's MCAR test and the models after multiple imputation (Rubin's rules)."""
    from lbc_pipeline.lib.io.warehouse import read_wave
    from lbc_pipeline.lib.marts import missing_data

    wave = context.partition_key
    with duckdb.get_connection() as con:
        measures = read_wave(con, "analysis.measures", wave)
        questionnaires = read_wave(con, "staging.questionnaires", wave)
    mcar, mi = missing_data.missing_data_sensitivity(measures, questionnaires, wave)
    yield from _write(context, duckdb, {"marts.mcar_test": mcar, "marts.mi_coefficients": mi})


@multi_asset(specs=[_spec("marts.robustness", ["marts.model_coefficients", "marts.cluster_sensitivity",
                                               "marts.mi_coefficients"])])
def judge_robustness(context: AssetExecutionContext, duckdb: WarehouseResource):
    """The main effect and H1-H3 under every analysis: the robustness matrix."""
    from lbc_pipeline.lib.io.warehouse import read_wave, replace_wave
    from lbc_pipeline.lib.marts import robustness

    wave = context.partition_key
    with duckdb.get_connection() as con:
        matrix = robustness.robustness_matrix(read_wave(con, "marts.model_coefficients", wave),
                                              read_wave(con, "marts.cluster_sensitivity", wave),
                                              read_wave(con, "marts.mi_coefficients", wave), wave)
        replace_wave(con, {"marts.robustness": matrix}, wave)
    yield materialized("marts.robustness", matrix, verdicts=MetadataValue.md(
        "```\n" + "\n".join(robustness.robustness_lines(matrix)) + "\n```"))
