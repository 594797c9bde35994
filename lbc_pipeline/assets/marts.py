"""Marts: fitted models, Table 1, the paper's tables, replication, hypotheses, report."""

import json
from importlib.metadata import version

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, multi_asset

from lbc_pipeline.assets._common import file_spec, key_of, materialized, selected_tables, table_spec
from lbc_pipeline.config import REFERENCE_DIR, artifacts_dir, read_manifest, reports_dir, wave_folder
from lbc_pipeline.study import load_study
from lbc_pipeline.resources import WarehouseResource

_SAMPLE = ["analysis.analytic_sample"]
_FITS = ["marts.model_coefficients", "marts.model_fit"]
_MODELS = ("lib/marts", "lib/io", "assets/marts.py")
_RENDER = ("lib/marts", "lib/render", "assets/marts.py")


def _published() -> dict:
    return json.loads((REFERENCE_DIR / "published_tables.json").read_text(encoding="utf-8"))


@multi_asset(
    specs=[
        table_spec("marts.model_coefficients", deps=_SAMPLE, kinds=["duckdb", "statsmodels", "numpy"], code=_MODELS),
        table_spec("marts.model_fit", deps=_SAMPLE, kinds=["duckdb", "statsmodels"], code=_MODELS),
    ],
    can_subset=True,
)
def fit_models(context: AssetExecutionContext, duckdb: WarehouseResource):
    """Fit every model of study.yaml (both specifications, every SE type); save each as a JSON artifact."""
    # the domain modules (polars, duckdb, numpy) load when the step runs, not with the Definitions
    from lbc_pipeline.lib.io.warehouse import read_wave, replace_wave
    from lbc_pipeline.lib.marts import models

    wave = context.partition_key
    with duckdb.get_connection() as con:
        sample = read_wave(con, "analysis.analytic_sample", wave)
    fitted = models.fit_every_model(sample, wave)
    coefficients, fit = models.model_frames(fitted, wave)
    folder = artifacts_dir(wave, working=True)
    folder.mkdir(parents=True, exist_ok=True)
    digest = models.sample_sha256(sample)
    for model in fitted:
        artifact = models.model_artifact(model, model.spec, digest, version("lbc_pipeline"))
        (folder / f"{model.spec.stem}.json").write_text(json.dumps(artifact, indent=1, sort_keys=True), encoding="utf-8")
    built = {"marts.model_coefficients": coefficients, "marts.model_fit": fit}
    marts = {t: f for t, f in built.items() if t in selected_tables(context)}
    with duckdb.get_connection() as con:
        replace_wave(con, marts, wave)
    for table, frame in marts.items():
        yield materialized(table, frame, artifacts=MetadataValue.path(str(folder)), models=len(fitted),
                           sample_sha256=digest)


@multi_asset(
    specs=[table_spec("marts.table1", deps=_SAMPLE, kinds=["duckdb", "polars"], code=_MODELS)],
)
def describe_sample(context: AssetExecutionContext, duckdb: WarehouseResource):
    """Table 1: descriptive statistics by migration group."""
    from lbc_pipeline.lib.io.warehouse import read_wave, replace_wave
    from lbc_pipeline.lib.marts import tables

    wave = context.partition_key
    with duckdb.get_connection() as con:
        table = tables.table1(read_wave(con, "analysis.analytic_sample", wave), wave)
        replace_wave(con, {"marts.table1": table}, wave)
    yield materialized("marts.table1", table)


# The report embeds the figures and the sensitivity marts (assets/sensitivity.py).
_SENSITIVITY = [f"marts.{t}" for t in ("figures", "simple_slopes", "johnson_neyman", "cluster_sensitivity",
                                       "multilevel_icc", "mcar_test", "mi_coefficients", "robustness")]


@multi_asset(
    specs=[
        table_spec("marts.replication", deps=_FITS, kinds=["duckdb", "polars"], code=_MODELS),
        table_spec("marts.hypotheses", deps=["marts.model_coefficients"], kinds=["duckdb", "polars"], code=_MODELS),
    ],
    can_subset=True,
)
def compare_with_paper(context: AssetExecutionContext, duckdb: WarehouseResource):
    """Every published number beside ours, and the verdict on each hypothesis."""
    from lbc_pipeline.lib.io.warehouse import create_views, read_wave, replace_wave
    from lbc_pipeline.lib.marts import replication

    wave = context.partition_key
    selected = selected_tables(context)
    with duckdb.get_connection() as con:
        coefficients = read_wave(con, "marts.model_coefficients", wave)
        fit = read_wave(con, "marts.model_fit", wave)
    built = {}
    if "marts.replication" in selected:
        built["marts.replication"] = replication.replicate(coefficients, fit, _published(), wave)
    if "marts.hypotheses" in selected:
        built["marts.hypotheses"] = replication.hypotheses(coefficients, wave)
    with duckdb.get_connection() as con:
        replace_wave(con, built, wave)
        create_views(con, ("marts",))
    if "marts.replication" in built:
        replicated = built["marts.replication"]
        summary = replication.summarise_replication(replicated)
        yield materialized("marts.replication", replicated, summary=MetadataValue.md(f"```\n{summary.text}\n```"),
                           stars_agree=summary.stars_agree,
                           within_tolerance=int(replicated["within_tolerance"].fill_null(False).sum()))
    if "marts.hypotheses" in built:
        verdicts = built["marts.hypotheses"]
        yield materialized("marts.hypotheses", verdicts, sentences=MetadataValue.md(
            "\n".join(f"- {s}" for s in verdicts["sentence"].unique(maintain_order=True))))


@multi_asset(
    specs=[
        file_spec("marts.publication_tables", deps=[*_FITS, "marts.table1"], kinds=["html", "latex", "csv"], code=_RENDER,
                  description="The paper's tables laid out as printed, as Markdown, HTML, LaTeX and CSV files under data/reports/<wave>/."),
        file_spec("marts.report", deps=[*_FITS, "marts.table1", "marts.replication", "marts.hypotheses",
                                        "analysis.sample_flow", "analysis.check_results", "analysis.scale_reliability",
                                        *_SENSITIVITY], kinds=["html"], code=_RENDER,
                  description="A single-file HTML report of the wave: sample flow, data-quality checks, reliability, Tables 1-4, replication, hypotheses, figures, moderation (simple slopes, Johnson-Neyman), clustering and missing-data sensitivity, the robustness matrix."),
    ],
    can_subset=True,
)
def publish(context: AssetExecutionContext, duckdb: WarehouseResource):
    """Write the publication tables and the HTML report of a wave."""
    from lbc_pipeline.lib.io.warehouse import has_table, read_wave
    from lbc_pipeline.lib.marts import tables
    from lbc_pipeline.lib.render import figure_files, report, sensitivity_sections

    wave = context.partition_key
    selected = selected_tables(context)
    with duckdb.get_connection() as con:
        frames = {t: read_wave(con, t, wave) for t in (
            "analysis.sample_flow", "analysis.scale_reliability", "marts.table1", "marts.model_coefficients",
            "marts.model_fit", "marts.replication", "marts.hypotheses")}
        checks = read_wave(con, "analysis.check_results", wave) if has_table(con, "analysis.check_results") else None
        extra = sensitivity_sections.read_sensitivity_marts(con, wave)
    folder = reports_dir(wave, working=True)
    if "marts.publication_tables" in selected:
        study = load_study()
        built = {}
        for specification in study.specifications:
            grids = tables.publication_tables(frames["marts.table1"], frames["marts.model_coefficients"],
                                              frames["marts.model_fit"], specification=specification)
            suffix = "" if specification == study.reference_specification else f"_{specification}"
            built.update({f"{stem}{suffix}": grid for stem, grid in grids.items() if not (suffix and stem == "table_1")})
        written = tables.write_tables(built, folder)
        yield MaterializeResult(asset_key=key_of("marts.publication_tables"), metadata={
            "files": len(written), "folder": MetadataValue.path(str(folder)),
            **{stem: MetadataValue.md(tables.render_markdown(grid)) for stem, grid in built.items()
               if stem.removeprefix("table_").isdigit() and stem != "table_1"},
        })
    if "marts.report" in selected:
        manifest = read_manifest(wave_folder(wave))
        html = report.render_html_report(report.ReportContext(
            wave=wave, synthetic=manifest.synthetic, description=manifest.description,
            sample_flow=frames["analysis.sample_flow"], scale_reliability=frames["analysis.scale_reliability"],
            table1=frames["marts.table1"], coefficients=frames["marts.model_coefficients"],
            fit=frames["marts.model_fit"], replication=frames["marts.replication"],
            hypotheses=frames["marts.hypotheses"], package_version=version("lbc_pipeline"), checks=checks,
            extra_sections=sensitivity_sections.sensitivity_sections(extra, figure_files.read_figures(folder / "figures")),
        ))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "report.html"
        path.write_text(html, encoding="utf-8")
        yield MaterializeResult(asset_key=key_of("marts.report"), metadata={
            "path": MetadataValue.path(str(path)), "bytes": len(html.encode("utf-8")), "synthetic": manifest.synthetic,
        })
