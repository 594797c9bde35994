"""Asset checks that guard the sample flow and the analysis sample.

ERROR-level checks are blocking: when one fails the marts are not built from bad data.
WARN-level checks report (exclusion shares, differential attrition, waves without expected
counts). The rules themselves live in `lib/quality.py`.
"""


import warnings

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    ConfigurableResource,
    asset_check,
)
from dagster_duckdb import DuckDBResource
from pydantic import Field

from lbc_pipeline.assets import wave_partitions
from lbc_pipeline.config import read_manifest, wave_folder
from lbc_pipeline.lib.quality import rules as quality
from lbc_pipeline.lib.io.warehouse import read_wave


# Partitioned asset checks are a preview feature of this Dagster release; the project pins the
# release and tests the behaviour it relies on, so the warning is noise for researchers.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")


class QualityConfig(ConfigurableResource):
    """Thresholds of the WARN-level data-quality checks."""

    max_exclusion_share: float = Field(
        default=0.10, description="WARN when one exclusion reason applies to more than this share of valid questionnaires")
    attrition_alpha: float = Field(
        default=0.05, description="WARN when excluded and analysed children differ at p below this")
    min_group_size: int = Field(
        default=20, description="Smallest migration group the great-expectations suite accepts")

    def settings(self) -> quality.QualitySettings:
        return quality.QualitySettings(self.max_exclusion_share, self.attrition_alpha, self.min_group_size)


def _read(duckdb: DuckDBResource, wave: str, *tables: str) -> list:
    """One wave's rows of each table, read in one connection."""
    with duckdb.get_connection() as con:
        return [read_wave(con, table, wave) for table in tables]


def _result(outcome: quality.Outcome) -> AssetCheckResult:
    return AssetCheckResult(
        passed=outcome.passed,
        severity=AssetCheckSeverity.ERROR if outcome.severity == quality.ERROR else AssetCheckSeverity.WARN,
        description=outcome.description,
        metadata=outcome.metadata,
    )


@asset_check(asset=["analysis", "sample_flow"], blocking=True, partitions_def=wave_partitions,
             description="Every step conserves questionnaires (n_before = n_excluded + n_after) and every returned questionnaire is analysed or has a reason.")
def sample_flow_conservation(context: AssetCheckExecutionContext, duckdb: DuckDBResource) -> AssetCheckResult:
    flow, status = _read(duckdb, context.partition_key, "analysis.sample_flow", "analysis.questionnaire_status")
    return _result(quality.check_conservation(flow, status))


@asset_check(asset=["analysis", "sample_flow"], blocking=True, partitions_def=wave_partitions,
             description="The flow's counts equal the wave manifest's expected counts (ERROR); without expectations, a WARN report.")
def sample_flow_expected_counts(context: AssetCheckExecutionContext, duckdb: DuckDBResource) -> AssetCheckResult:
    wave = context.partition_key
    flow, sample = _read(duckdb, wave, "analysis.sample_flow", "analysis.analytic_sample")
    groups = dict(sample.group_by("migration_group").len().iter_rows())
    return _result(quality.check_expected_counts(flow, groups, read_manifest(wave_folder(wave))))


@asset_check(asset=["analysis", "sample_flow"], partitions_def=wave_partitions,
             description="WARN when the wave has no fieldwork window, so survey dates were not checked against it.")
def fieldwork_window(context: AssetCheckExecutionContext) -> AssetCheckResult:
    return _result(quality.check_fieldwork_window(read_manifest(wave_folder(context.partition_key))))


@asset_check(asset=["analysis", "exclusions"], partitions_def=wave_partitions,
             description="WARN when one exclusion reason removes more than the configured share of valid questionnaires.")
def exclusion_shares(context: AssetCheckExecutionContext, duckdb: DuckDBResource,
                     quality_config: QualityConfig) -> AssetCheckResult:
    reasons, flow = _read(duckdb, context.partition_key, "analysis.sample_flow_reasons", "analysis.sample_flow")
    n_valid = int(flow.filter(flow["step"] == "valid")["n_after"][0])
    return _result(quality.check_exclusion_shares(reasons, n_valid, quality_config.settings()))


@asset_check(asset=["analysis", "exclusions"], partitions_def=wave_partitions,
             description="WARN when excluded and analysed valid children differ by school, gender, grade or migration group (chi-square tests).")
def differential_attrition(context: AssetCheckExecutionContext, duckdb: DuckDBResource,
                           quality_config: QualityConfig) -> AssetCheckResult:
    (status,) = _read(duckdb, context.partition_key, "analysis.questionnaire_status")
    return _result(quality.check_differential_attrition(status, quality_config.settings()))


@asset_check(asset=["analysis", "analytic_sample"], blocking=True, partitions_def=wave_partitions,
             description="great-expectations suite on the analysis sample: types, ranges, non-null, unique keys, migration groups and their sizes.")
def analytic_sample_expectations(context: AssetCheckExecutionContext, duckdb: DuckDBResource,
                                 quality_config: QualityConfig) -> AssetCheckResult:
    wave = context.partition_key
    (sample,) = _read(duckdb, wave, "analysis.analytic_sample")
    return _result(quality.check_analytic_sample_gx(sample, read_manifest(wave_folder(wave)), quality_config.settings()))


ALL_CHECKS = [sample_flow_conservation, sample_flow_expected_counts, fieldwork_window, exclusion_shares,
              differential_attrition, analytic_sample_expectations]
