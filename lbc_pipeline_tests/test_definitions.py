"""The Dagster project loads, and the domain library stays free of Dagster.

Domain code that imports the orchestrator cannot be reused in a notebook or tested alone,
so the rule is checked on the source, not left to review.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import dagster as dg

import lbc_pipeline
from lbc_pipeline.resources import PUBLISH_KEY
from lbc_pipeline.assets import qualitative
from lbc_pipeline.definitions import defs
from lbc_pipeline.jobs import CROSS_WAVE_KEYS

LIB = Path(lbc_pipeline.__file__).parent / "lib"


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("lbc_main_job")
    assert job.partitions_def is not None


@pytest.mark.parametrize("collecting", [True, False])
def test_loading_the_definitions_leaves_the_garbage_collector_as_it_found_it(collecting):
    # the collector is paused while the definitions are built and their objects frozen; a
    # process that collects keeps collecting, and one that had turned it off keeps it off
    code = ("import gc, json\n"
            f"{'' if collecting else 'gc.disable()'}\n"
            "import lbc_pipeline.definitions\n"
            "print(json.dumps([gc.isenabled(), gc.get_freeze_count()]))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    enabled, frozen = json.loads(out.strip().splitlines()[-1])
    assert enabled is collecting
    assert frozen > 10_000  # Dagster's objects and the definitions' are out of the collector's way


def test_every_asset_is_partitioned_by_wave_and_prefixed_by_its_schema():
    graph = defs.resolve_asset_graph()
    keys = list(graph.get_all_asset_keys())
    assert len(keys) >= 16
    for key in keys:
        node = graph.get(key)
        if list(key.path) in [list(k) for k in CROSS_WAVE_KEYS]:
            assert node.partitions_def is None, key  # cross-wave marts read every wave
            continue
        assert node.partitions_def is not None and node.partitions_def.name == "wave", key
        assert key.path[0] in ("raw", "staging", "analysis", "marts", "publish"), key
        # the interview strand is one group across schemas (raw/staging/marts)
        assert node.group_name == ("qualitative" if key in INTERVIEW_KEYS else key.path[0]), key


def test_the_publish_step_comes_after_every_other_asset_of_a_wave():
    graph = defs.resolve_asset_graph()
    wave_keys = {k for k in graph.get_all_asset_keys()
                 if graph.get(k).partitions_def is not None and k != PUBLISH_KEY}
    assert set(graph.get(PUBLISH_KEY).parent_keys) == wave_keys
    assert PUBLISH_KEY in defs.resolve_job_def("lbc_main_job").asset_layer.selected_asset_keys
    assert PUBLISH_KEY not in defs.resolve_job_def("lbc_cross_wave_job").asset_layer.selected_asset_keys


INTERVIEW_KEYS = {key for a in (qualitative.load_interviews, qualitative.stage_interviews, qualitative.summarise_interviews,
                                qualitative.triangulate, qualitative.report_interviews) for key in a.keys}


def test_checks_are_defined_and_the_flow_guards_block():
    graph = defs.resolve_asset_graph()
    checks = {k.name: k for k in graph.asset_check_keys}
    assert {"sample_flow_conservation", "sample_flow_expected_counts", "exclusion_shares",
            "differential_attrition", "analytic_sample_expectations"} <= set(checks)
    blocking = {k.name for k in graph.asset_check_keys if graph.get_check_spec(k).blocking}
    assert {"sample_flow_conservation", "sample_flow_expected_counts", "analytic_sample_expectations"} <= blocking
    assert "interview_registry_matches_design" in blocking  # it blocks the joint display
    assert "no_raw_names_outside_raw" in checks


def test_lib_never_imports_dagster():
    offenders = []
    for path in LIB.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0].startswith("dagster")]
    assert offenders == []


def imported_modules(root: Path) -> list[tuple[str, str]]:
    """(file, module) for every import under `root`."""
    found = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(path.name, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.append((path.name, node.module))
    return found


def test_runtime_library_holds_no_synthetic_data_code():
    # The generator and its calibration are tools for making demo data, not part of a run.
    assert not (LIB / "synthetic").exists()
    assert [m for m in imported_modules(LIB) if m[1].startswith("lbc_pipeline.synthetic")] == []


def test_synthetic_package_depends_on_the_contracts_only():
    # It may read the codebook, the study, the settings and the table contracts, never the
    # pipeline's own computations (its calibration statistics are an independent check).
    # The interview demo set also reads the informant-code scheme, the interview strand's contract.
    allowed = ("lbc_pipeline.synthetic", "lbc_pipeline.codebook", "lbc_pipeline.config", "lbc_pipeline.study",
               "lbc_pipeline.lib.contracts", "lbc_pipeline.lib.qualitative.staging")
    synthetic = LIB.parent / "synthetic"
    offenders = [m for m in imported_modules(synthetic) if m[1].startswith("lbc_pipeline") and not m[1].startswith(allowed)]
    assert offenders == []


def test_every_asset_has_kinds_owners_and_a_code_version():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        spec = graph.get(key)
        assert spec.kinds, key
        assert spec.owners, key
        assert spec.code_version, key


def test_every_table_asset_shows_its_contract_as_columns():
    from lbc_pipeline.lib import contracts

    graph = defs.resolve_asset_graph()
    tables = 0
    for key in graph.get_all_asset_keys():
        table = ".".join(key.path)
        if table not in contracts.SCHEMAS:
            continue
        tables += 1
        metadata = graph.get(key).metadata
        assert metadata["dagster/table_name"] == f"lbc.{table}"
        columns = {c.name: c.description for c in metadata["dagster/column_schema"].columns}
        assert columns == contracts.contract_docs(table)[1], key
    assert tables >= 20


def test_code_version_follows_the_source(tmp_path, monkeypatch):
    # A materialisation made by other code is marked stale: the version is a digest of the files.
    from lbc_pipeline.assets import _common

    (tmp_path / "a.py").write_text("x = 1\n")
    for shared in _common.SHARED_SOURCES:
        target = tmp_path / shared
        target.parent.mkdir(parents=True, exist_ok=True)
        target.mkdir(exist_ok=True) if "." not in shared else target.write_text("")
    monkeypatch.setattr(_common, "PACKAGE", tmp_path)
    _common.code_version.cache_clear()
    before = _common.code_version("a.py")
    (tmp_path / "a.py").write_text("x = 2\n")
    _common.code_version.cache_clear()
    assert _common.code_version("a.py") != before
    _common.code_version.cache_clear()
