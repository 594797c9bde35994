"""Data-quality rules on the sample flow and the analysis sample, as pure functions.

Each rule returns an `Outcome` (passed, severity, description, metadata) that the Dagster
asset checks report as they are; the rules know nothing of Dagster. Severities: `ERROR`
blocks the downstream assets, `WARN` reports.

scipy.stats and great-expectations are imported inside the rules that use them: both are
slow to import. The Definitions do not load this module (nor polars): what they need of
it, the severities, `Outcome` and the thresholds, is in `outcome.py`.
"""

from __future__ import annotations


import polars as pl

from lbc_pipeline.config import WaveManifest
from lbc_pipeline.lib.quality.outcome import ERROR, WARN, Outcome, QualitySettings

def check_conservation(flow: pl.DataFrame, status: pl.DataFrame) -> Outcome:
    """At every step n_before = n_excluded + n_after, steps chain, no count is negative, and
    every returned questionnaire ends analysed or with a reason."""
    problems = []
    rows = flow.sort("step_order").to_dicts()
    for previous, row in zip([None, *rows], rows):
        if row["n_before"] != row["n_excluded"] + row["n_after"]:
            problems.append(f"{row['step']}: {row['n_before']} != {row['n_excluded']} + {row['n_after']}")
        if min(row["n_before"], row["n_excluded"], row["n_after"]) < 0:
            problems.append(f"{row['step']}: a negative count")
        if previous is not None and previous["n_after"] != row["n_before"]:
            problems.append(f"{row['step']} starts at {row['n_before']}, the step before ends at {previous['n_after']}")
    unexplained = status.filter((pl.col("status") != "analysed") & pl.col("primary_reason").is_null()).height
    if unexplained:
        problems.append(f"{unexplained} questionnaires left the sample without a reason")
    analysed = status.filter(pl.col("status") == "analysed").height
    if rows and rows[-1]["n_after"] != analysed:
        problems.append(f"flow ends at {rows[-1]['n_after']} but {analysed} are analysed")
    return Outcome(
        passed=not problems, severity=ERROR,
        description="every step conserves questionnaires" if not problems else "; ".join(problems),
        metadata={"steps": len(rows), "analysed": analysed, "problems": problems},
    )


def check_expected_counts(flow: pl.DataFrame, groups: dict[str, int], manifest: WaveManifest) -> Outcome:
    """The flow's counts against the wave's expected counts (ERROR when they differ); a wave
    without expectations gets a WARN report of its counts."""
    observed = {
        "distributed": _step(flow, "distributed", "n_after"),
        "returned": _step(flow, "returned", "n_after"),
        "valid": _step(flow, "valid", "n_after"),
        "analysed": _step(flow, "analysed", "n_after"),
    }
    metadata = {"observed": observed, "groups": groups}
    if not manifest.expected and not manifest.expected_groups:
        return Outcome(False, WARN, "no expected counts in the wave's manifest: counts reported, not checked",
                       metadata)
    expected = {**manifest.expected, **{f"group_{k}": v for k, v in manifest.expected_groups.items()}}
    actual = {**observed, **{f"group_{k}": groups.get(k, 0) for k in manifest.expected_groups}}
    differ = {k: {"expected": v, "observed": actual.get(k)} for k, v in expected.items() if actual.get(k) != v}
    metadata["expected"] = expected
    metadata["differences"] = differ
    description = ("counts as expected: " + ", ".join(f"{k} {v}" for k, v in expected.items())) if not differ else (
        "counts differ from the manifest: " + ", ".join(f"{k} {d['observed']} (expected {d['expected']})" for k, d in differ.items()))
    return Outcome(not differ, ERROR, description, metadata)


def _step(flow: pl.DataFrame, step: str, column: str) -> int | None:
    row = flow.filter(pl.col("step") == step)
    return int(row[column][0]) if row.height else None


def check_fieldwork_window(manifest: WaveManifest) -> Outcome:
    """WARN when the wave has no fieldwork window: the outside_fieldwork rule was not applied."""
    if manifest.has_fieldwork:
        return Outcome(True, WARN, f"fieldwork window {manifest.fieldwork_start} to {manifest.fieldwork_end} applied",
                       {"start": str(manifest.fieldwork_start), "end": str(manifest.fieldwork_end)})
    why = "the wave has no wave.yaml" if not manifest.has_manifest else "wave.yaml gives no fieldwork window"
    return Outcome(False, WARN, f"{why}: survey dates were not checked (outside_fieldwork rule not applied)",
                   {"has_manifest": manifest.has_manifest})


def check_exclusion_shares(flow_reasons: pl.DataFrame, n_valid: int, settings: QualitySettings) -> Outcome:
    """WARN when one reason (any position) removes more than the configured share of the
    valid questionnaires."""
    shares = (
        flow_reasons.filter(pl.col("step").is_in(["parents_alive", "analysed"]))
        .with_columns((pl.col("n_any") / max(n_valid, 1)).alias("share"))
        .sort("share", descending=True)
    )
    high = shares.filter(pl.col("share") > settings.max_exclusion_share)
    table = {r["reason"]: round(r["share"], 4) for r in shares.filter(pl.col("n_any") > 0).to_dicts()}
    description = (
        f"no reason removes more than {settings.max_exclusion_share:.0%} of valid questionnaires"
        if not high.height else
        "high exclusion shares: " + ", ".join(f"{r['reason']} {r['share']:.1%}" for r in high.to_dicts())
    )
    return Outcome(not high.height, WARN, description,
                   {"threshold": settings.max_exclusion_share, "shares": table})


def check_differential_attrition(status: pl.DataFrame, settings: QualitySettings) -> Outcome:
    """Excluded vs analysed valid children by school, gender, grade and migration group
    (where known): chi-square test of independence per characteristic; WARN when p < alpha."""
    from scipy import stats

    valid = status.filter(pl.col("status") != "invalid")
    tests = {}
    flagged = []
    for column in ("school_id", "girl", "grade", "migration_group"):
        known = valid.filter(pl.col(column).is_not_null())
        table = (
            known.group_by(column, "status").agg(pl.len().alias("n"))
            .pivot(on="status", index=column, values="n").fill_null(0)
        )
        if "excluded" not in table.columns or "analysed" not in table.columns or table.height < 2:
            tests[column] = {"note": "not testable (one level or no exclusions)"}
            continue
        observed = table.select("analysed", "excluded").to_numpy()
        observed = observed[observed.sum(axis=1) > 0]
        chi2, p, dof, _ = stats.chi2_contingency(observed)
        excluded_share = {
            str(r[column]): round(r["excluded"] / (r["excluded"] + r["analysed"]), 4)
            for r in table.to_dicts() if r["excluded"] + r["analysed"]
        }
        tests[column] = {"chi2": round(float(chi2), 4), "dof": int(dof), "p_value": float(p),
                         "excluded_share_by_level": excluded_share}
        if p < settings.attrition_alpha:
            flagged.append(f"{column} (chi2={chi2:.2f}, df={dof}, p={p:.3g})")
    description = ("excluded and analysed children differ by " + ", ".join(flagged)) if flagged else (
        f"no difference between excluded and analysed children at p < {settings.attrition_alpha}")
    return Outcome(not flagged, WARN, description, {"alpha": settings.attrition_alpha, "tests": tests})


GROUP_WORDS = {"none": "parents-at-home", "mother": "mother-away", "father": "father-away",
               "both": "both-parents-away"}


def small_groups(sizes: dict[str, int], minimum: int) -> list[str]:
    """Each migration group below the minimum size, in words ("mother-away group has 9
    children; the minimum is 20 (quality_config.min_group_size)"); a group with no child too."""
    out = []
    for group, label in GROUP_WORDS.items():
        n = int(sizes.get(group, 0))
        if n < minimum:
            children = "no child" if n == 0 else ("1 child" if n == 1 else f"{n} children")
            out.append(f"{label} group has {children}; the minimum is {minimum} (quality_config.min_group_size)")
    return out


def check_analytic_sample_gx(sample: pl.DataFrame, manifest: WaveManifest, settings: QualitySettings) -> Outcome:
    """A great-expectations suite on the analysis sample: columns and types, ranges,
    non-null, unique child keys, the four migration groups and their sizes."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    from lbc_pipeline.lib.contracts import ANALYTIC_COLUMNS, value_domains

    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("lbc")
    # Value ranges and sets come from the table's contract, which takes them from the codebook.
    domains = value_domains("analysis.analytic_sample")
    sample_suite = gx.ExpectationSuite(name="analytic_sample")
    for column in ("child_key", "school_id", "migration_group", *ANALYTIC_COLUMNS, "teacher_attitude"):
        sample_suite.add_expectation(gxe.ExpectColumnToExist(column=column))
        sample_suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    for column in ANALYTIC_COLUMNS:
        sample_suite.add_expectation(gxe.ExpectColumnValuesToBeOfType(column=column, type_="int64"))
    sample_suite.add_expectation(gxe.ExpectColumnValuesToBeOfType(column="teacher_attitude", type_="float64"))
    for column, domain in domains.items():
        if "min_value" in domain:
            sample_suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=column, **domain))
        elif column == "migration_group":  # every group present, and nothing else
            sample_suite.add_expectation(gxe.ExpectColumnDistinctValuesToEqualSet(
                column=column, value_set=domain["allowed_values"]))
        else:
            sample_suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=column, value_set=domain["allowed_values"]))
    sample_suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="child_key"))
    if "analysed" in manifest.expected:
        sample_suite.add_expectation(gxe.ExpectTableRowCountToEqual(value=manifest.expected["analysed"]))

    groups = sample.group_by("migration_group").agg(pl.len().cast(pl.Int64).alias("n")).to_pandas()
    group_suite = gx.ExpectationSuite(name="migration_group_sizes")
    group_suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="n", min_value=settings.min_group_size))
    if manifest.expected_groups:
        groups["expected_n"] = groups["migration_group"].map(manifest.expected_groups).astype("Int64")
        group_suite.add_expectation(gxe.ExpectColumnPairValuesToBeEqual(column_A="n", column_B="expected_n"))

    results = {}
    for name, suite, frame in (("analytic_sample", sample_suite, sample.to_pandas()),
                               ("migration_group_sizes", group_suite, groups)):
        asset = source.add_dataframe_asset(name)
        batch = asset.add_batch_definition_whole_dataframe("whole")
        suite = context.suites.add(suite)
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=suite))
        results[name] = validation.run(batch_parameters={"dataframe": frame})
    failed = [
        f"{name}: {r.expectation_config.type}({r.expectation_config.kwargs.get('column', '')})"
        for name, result in results.items() for r in result.results if not r.success
    ]
    statistics = {name: dict(result.statistics) for name, result in results.items()}
    sizes = dict(zip(groups["migration_group"], groups["n"].astype(int)))
    words = small_groups(sizes, settings.min_group_size) if failed else []
    return Outcome(
        passed=not failed, severity=ERROR,
        description="great-expectations suite passed" if not failed else
        "; ".join(words + [("great-expectations: " if words else "failed: ") + "; ".join(failed)]),
        metadata={"statistics": statistics, "failed": failed,
                  "group_sizes": dict(zip(groups["migration_group"], groups["n"].astype(int)))},
    )


def outcomes_table(wave: str, outcomes: list[tuple[str, str, Outcome]]) -> pl.DataFrame:
    """The rows of `analysis.check_results`: (check name, guarded table, outcome) in order."""
    return pl.DataFrame(
        [{"wave": wave, "check_order": i, "check_name": name, "asset": asset, "severity": outcome.severity,
          "passed": outcome.passed, "description": outcome.description}
         for i, (name, asset, outcome) in enumerate(outcomes, start=1)],
        schema={"wave": pl.String, "check_order": pl.Int64, "check_name": pl.String, "asset": pl.String,
                "severity": pl.String, "passed": pl.Boolean, "description": pl.String},
    )
