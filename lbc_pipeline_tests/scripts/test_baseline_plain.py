"""The benchmark baseline (scripts/baseline_plain.py) computes what the pipeline computes.

A speed comparison means something only if both sides do the same work and get the same
answer: the plain pandas + statsmodels script, written from instrument.md without project
code, must give the pipeline's sample flow and every estimate and standard error
(conventional, HC3, clustered by school) of the fourteen published models, to 1e-8; the two
models of teacher's attitude to 1e-5, because the baseline scores it with statsmodels'
iterative maximum-likelihood fit (tolerance 1e-7) where the pipeline uses its exact closed form.
The pipeline side runs its library functions in-process (no Dagster, no warehouse), which
are the functions the assets call to build `marts.model_coefficients`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lbc_pipeline.lib.analysis.sample import build_sample
from lbc_pipeline.lib.marts.models import fit_every_model, model_frames
from lbc_pipeline.lib.raw.loading import load_folder
from lbc_pipeline.lib.staging.clean import clean_distribution, clean_questionnaires

ROOT = Path(__file__).resolve().parents[2]
WAVE = ROOT / "data" / "raw" / "2019"


def _baseline_module():
    spec = importlib.util.spec_from_file_location("baseline_plain", ROOT / "scripts" / "baseline_plain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def baseline():
    coefficients, counts = _baseline_module().run(WAVE)
    return pl.from_pandas(coefficients), counts


@pytest.fixture(scope="module")
def pipeline():
    files = load_folder(WAVE)
    cleaned = clean_questionnaires(files.questionnaires.frame, "2019", "questionnaires.csv")
    distribution = clean_distribution(files.distribution.frame, "2019", "distribution.csv")
    result = build_sample(cleaned.questionnaires, cleaned.missing_values, distribution, files.manifest,
                          "2019", b"\x01" * 32)
    coefficients, _ = model_frames(fit_every_model(result.analytic_sample, "2019"), "2019")
    return coefficients.filter(pl.col("specification") == "as_published"), result.flow


def test_sample_flow_is_the_pipelines(baseline, pipeline) -> None:
    _, counts = baseline
    flow = dict(pipeline[1].select("step", "n_after").iter_rows())
    assert counts == {k: flow[k] for k in ("distributed", "returned", "valid", "analysed")}
    assert counts["analysed"] == 605


def test_same_models_terms_and_se_types(baseline, pipeline) -> None:
    keys = ["table_no", "model_no", "term", "se_type"]
    ours = baseline[0].select(keys).sort(keys)
    theirs = pipeline[0].select(keys).sort(keys)
    assert ours.equals(theirs)
    assert ours.select("table_no", "model_no").unique().height == 14
    assert sorted(ours["se_type"].unique().to_list()) == ["HC3", "cluster_school", "nonrobust"]


@pytest.mark.parametrize("column", ["estimate", "std_error", "p_value"])
def test_every_coefficient_equals_the_pipelines(baseline, pipeline, column: str) -> None:
    # estimate: OLS coefficients; std_error: conventional, HC3 and CR1 cluster SEs;
    # p_value: t distribution (residual df, or G-1 for the clustered rows)
    keys = ["table_no", "model_no", "term", "se_type"]
    joined = baseline[0].join(pipeline[0], on=keys, how="inner", suffix="_pipeline")
    assert joined.height == pipeline[0].height
    difference = np.abs(joined[column].to_numpy() - joined[f"{column}_pipeline"].to_numpy())
    factor = joined["model_no"].is_in([2]).to_numpy() & joined["table_no"].is_in([3, 4]).to_numpy()
    for mask, tolerance in ((~factor, 1e-8), (factor, 1e-5)):
        worst = joined.filter(mask).with_columns(pl.Series("diff", difference[mask])).sort("diff", descending=True).row(0, named=True)
        assert difference[mask].max() <= tolerance, worst


def test_a_wrong_rule_is_caught(baseline, pipeline, monkeypatch) -> None:
    # negative case: a baseline that swaps the mother-away and father-away groups no longer matches
    module = _baseline_module()
    monkeypatch.setattr(module, "DUMMIES", {"mother_away": "father", "father_away": "mother", "both_away": "both"})
    coefficients, _ = module.run(WAVE)
    keys = ["table_no", "model_no", "term", "se_type"]
    joined = pl.from_pandas(coefficients).join(pipeline[0], on=keys, suffix="_pipeline")
    assert np.abs(joined["estimate"] - joined["estimate_pipeline"]).max() > 1e-3
