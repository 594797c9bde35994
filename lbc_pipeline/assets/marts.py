"""Marts: fitted models, Table 1, the paper's tables, replication, hypotheses, report."""

import json
from importlib.metadata import version

import polars as pl
from dagster import AssetDep, AssetExecutionContext, AssetSpec, MaterializeResult, MetadataValue, multi_asset
from dagster_duckdb import DuckDBResource

from lbc_pipeline.assets import wave_partitions
from lbc_pipeline.assets._common import table_metadata
from lbc_pipeline.config import REFERENCE_DIR, artifacts_dir, read_manifest, reports_dir, wave_folder
from lbc_pipeline.lib.marts import models, replication, tables
from lbc_pipeline.lib.render import report
from lbc_pipeline.lib.marts_docs import MARTS_DOCS
from lbc_pipeline.lib.io.warehouse import create_views, read_wave, replace_wave

SAMPLE = [AssetDep(["analysis", "analytic_sample"])]


def _published() -> dict:
    return json.loads((REFERENCE_DIR / "published_tables.json").read_text(encoding="utf-8"))


@multi_asset(
    specs=[
        AssetSpec(["marts", "model_coefficients"], deps=SAMPLE, group_name="marts", description=MARTS_DOCS["marts.model_coefficients"][0]),
        AssetSpec(["marts", "model_fit"], deps=SAMPLE, group_name="marts", description=MARTS_DOCS["marts.model_fit"][0]),
    ],
    partitions_def=wave_partitions,
)
def fit_models(context: AssetExecutionContext, duckdb: DuckDBResource):
    """Fit Tables 2-4 (as published and harmonised) with three SE types; save each model."""
    wave = context.partition_key
    with duckdb.get_connection() as con:
        sample = read_wave(con, "analysis.analytic_sample", wave)
    fitted = models.fit_every_model(sample, wave)
    coefficients, fit = models.model_frames(fitted, wave)
    folder = artifacts_dir(wave)
    folder.mkdir(parents=True, exist_ok=True)
    digest = models.sample_sha256(sample)
    for model in fitted:
        spec = model.spec
        path = folder / f"{spec.specification}_table{spec.table_no}_model{spec.model_no}.json"
        artifact = models.model_artifact(model, spec, digest, version("lbc_pipeline"))
        path.write_text(json.dumps(artifact, indent=1, sort_keys=True), encoding="utf-8")
    marts = {"marts.model_coefficients": coefficients, "marts.model_fit": fit}
    with duckdb.get_connection() as con:
        replace_wave(con, marts, wave, docs=MARTS_DOCS)
    for table, frame in marts.items():
        metadata = table_metadata(frame, table)
        metadata["artifacts"] = MetadataValue.path(str(folder))
        metadata["sample_sha256"] = digest
        yield MaterializeResult(asset_key=table.split("."), metadata=metadata)


@multi_asset(
    specs=[AssetSpec(["marts", "table1"], deps=SAMPLE, group_name="marts", description=MARTS_DOCS["marts.table1"][0])],
    partitions_def=wave_partitions,
)
def describe_sample(context: AssetExecutionContext, duckdb: DuckDBResource):
    """Table 1: descriptive statistics by migration group."""
    wave = context.partition_key
    with duckdb.get_connection() as con:
        table = tables.table1(read_wave(con, "analysis.analytic_sample", wave), wave)
        replace_wave(con, {"marts.table1": table}, wave, docs=MARTS_DOCS)
    yield MaterializeResult(asset_key=["marts", "table1"], metadata=table_metadata(table, "marts.table1"))


_FITS = [AssetDep(["marts", "model_coefficients"]), AssetDep(["marts", "model_fit"])]


@multi_asset(
    specs=[
        AssetSpec(["marts", "replication"], deps=_FITS, group_name="marts", description=MARTS_DOCS["marts.replication"][0]),
        AssetSpec(["marts", "hypotheses"], deps=_FITS, group_name="marts", description=MARTS_DOCS["marts.hypotheses"][0]),
    ],
    partitions_def=wave_partitions,
)
def compare_with_paper(context: AssetExecutionContext, duckdb: DuckDBResource):
    """Every published number beside ours, and the verdict on each hypothesis."""
    wave = context.partition_key
    with duckdb.get_connection() as con:
        coefficients = read_wave(con, "marts.model_coefficients", wave)
        fit = read_wave(con, "marts.model_fit", wave)
    replicated = replication.replicate(coefficients, fit, _published(), wave)
    verdicts = replication.hypotheses(coefficients, wave)
    summary = replication.summarise_replication(replicated)
    marts = {"marts.replication": replicated, "marts.hypotheses": verdicts}
    with duckdb.get_connection() as con:
        replace_wave(con, marts, wave, docs=MARTS_DOCS)
        create_views(con, ("marts",))
    metadata = table_metadata(replicated, "marts.replication")
    metadata["summary"] = MetadataValue.md(f"```\n{summary.text}\n```")
    metadata["stars_agree"] = summary.stars_agree
    yield MaterializeResult(asset_key=["marts", "replication"], metadata=metadata)
    metadata = table_metadata(verdicts, "marts.hypotheses")
    metadata["sentences"] = MetadataValue.md("\n".join(f"- {s}" for s in verdicts["sentence"].unique(maintain_order=True)))
    yield MaterializeResult(asset_key=["marts", "hypotheses"], metadata=metadata)


@multi_asset(
    specs=[
        AssetSpec(["marts", "publication_tables"], deps=[*_FITS, AssetDep(["marts", "table1"])], group_name="marts",
                  description="Tables 1-4 laid out like the paper, as Markdown, HTML, LaTeX and CSV files under data/reports/<wave>/."),
        AssetSpec(["marts", "report"], deps=[*_FITS, AssetDep(["marts", "table1"]), AssetDep(["marts", "replication"]),
                                             AssetDep(["marts", "hypotheses"])], group_name="marts",
                  description="A single-file HTML report of the wave: sample flow, reliability, Tables 1-4, replication, hypotheses."),
    ],
    partitions_def=wave_partitions,
)
def publish(context: AssetExecutionContext, duckdb: DuckDBResource):
    """Write the publication tables and the HTML report of a wave."""
    wave = context.partition_key
    with duckdb.get_connection() as con:
        frames = {t: read_wave(con, t, wave) for t in (
            "analysis.sample_flow", "analysis.scale_reliability", "marts.table1", "marts.model_coefficients",
            "marts.model_fit", "marts.replication", "marts.hypotheses")}
    folder = reports_dir(wave)
    built = {}
    for specification in models.SPECIFICATIONS:
        grids = tables.publication_tables(frames["marts.table1"], frames["marts.model_coefficients"],
                                          frames["marts.model_fit"], specification=specification)
        suffix = "" if specification == "as_published" else f"_{specification}"
        built.update({f"{stem}{suffix}": grid for stem, grid in grids.items()
                      if not (suffix and stem == "table_1")})
    written = tables.write_tables(built, folder)
    yield MaterializeResult(asset_key=["marts", "publication_tables"], metadata={
        "files": len(written), "folder": MetadataValue.path(str(folder)),
        **{stem: MetadataValue.md(tables.render_markdown(grid)) for stem, grid in built.items()
           if stem in ("table_2", "table_3", "table_4")},
    })
    manifest = read_manifest(wave_folder(wave))
    html = report.render_html_report(report.ReportContext(
        wave=wave, synthetic=manifest.synthetic,
        sample_flow=frames["analysis.sample_flow"], scale_reliability=frames["analysis.scale_reliability"],
        table1=frames["marts.table1"], coefficients=frames["marts.model_coefficients"],
        fit=frames["marts.model_fit"], replication=frames["marts.replication"],
        hypotheses=frames["marts.hypotheses"], package_version=version("lbc_pipeline"),
        description=manifest.description,
    ))
    path = folder / "report.html"
    path.write_text(html, encoding="utf-8")
    yield MaterializeResult(asset_key=["marts", "report"], metadata={
        "path": MetadataValue.path(str(path)), "bytes": len(html.encode("utf-8")),
        "synthetic": manifest.synthetic,
    })
