"""The Dagster project loads, and the domain library stays free of Dagster.

Domain code that imports the orchestrator cannot be reused in a notebook or tested alone,
so the rule is checked on the source, not left to review.
"""

import ast
from pathlib import Path

import dagster as dg

import lbc_pipeline
from lbc_pipeline.assets import qualitative
from lbc_pipeline.definitions import defs
from lbc_pipeline.jobs import CROSS_WAVE_KEYS

LIB = Path(lbc_pipeline.__file__).parent / "lib"


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("lbc_main_job")
    assert job.partitions_def is not None


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
        assert key.path[0] in ("raw", "staging", "analysis", "marts"), key
        # the interview strand is one group across schemas (raw/staging/marts)
        assert node.group_name == ("qualitative" if key in INTERVIEW_KEYS else key.path[0]), key


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
