"""WARN-level asset checks on the sample flow and the exclusions: they report, never block.

The ERROR-level checks are declared on the analysis step itself (assets/analysis.py), so that
a failure stops everything downstream. The rules live in `lib/quality/rules.py`.
"""


import warnings

from dagster import AssetCheckExecutionContext, AssetCheckResult, asset_check
from dagster_duckdb import DuckDBResource

from lbc_pipeline.assets import wave_partitions
from lbc_pipeline.assets._common import check_result
from lbc_pipeline.config import read_manifest, wave_folder
from lbc_pipeline.lib.quality import rules as quality
from lbc_pipeline.lib.io.warehouse import read_wave
from lbc_pipeline.resources import QualityConfig


# Partitioned asset checks are a preview feature of this Dagster release; the project pins the
# release and tests the behaviour it relies on, so the warning is noise for researchers.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")


def _read(duckdb: DuckDBResource, wave: str, *tables: str) -> list:
    """One wave's rows of each table, read in one connection."""
    with duckdb.get_connection() as con:
        return [read_wave(con, table, wave) for table in tables]


@asset_check(asset=["analysis", "sample_flow"], partitions_def=wave_partitions,
             description="WARN when the wave has no fieldwork window, so survey dates were not checked against it.")
def fieldwork_window(context: AssetCheckExecutionContext) -> AssetCheckResult:
    return check_result(quality.check_fieldwork_window(read_manifest(wave_folder(context.partition_key))))


@asset_check(asset=["analysis", "exclusions"], partitions_def=wave_partitions,
             description="WARN when one exclusion reason removes more than the configured share of valid questionnaires.")
def exclusion_shares(context: AssetCheckExecutionContext, duckdb: DuckDBResource,
                     quality_config: QualityConfig) -> AssetCheckResult:
    reasons, flow = _read(duckdb, context.partition_key, "analysis.sample_flow_reasons", "analysis.sample_flow")
    n_valid = int(flow.filter(flow["step"] == "valid")["n_after"][0])
    return check_result(quality.check_exclusion_shares(reasons, n_valid, quality_config.settings()))


@asset_check(asset=["analysis", "exclusions"], partitions_def=wave_partitions,
             description="WARN when excluded and analysed valid children differ by school, gender, grade or migration group (chi-square tests).")
def differential_attrition(context: AssetCheckExecutionContext, duckdb: DuckDBResource,
                           quality_config: QualityConfig) -> AssetCheckResult:
    (status,) = _read(duckdb, context.partition_key, "analysis.questionnaire_status")
    return check_result(quality.check_differential_attrition(status, quality_config.settings()))


# The ERROR checks (sample_flow_conservation, sample_flow_expected_counts,
# analytic_sample_expectations) run inside the analysis step: see assets/analysis.py.
ALL_CHECKS = [fieldwork_window, exclusion_shares, differential_attrition]
