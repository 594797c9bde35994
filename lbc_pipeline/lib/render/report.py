"""The run report: one self-contained HTML page per wave.

`render_html_report` turns a `ReportContext` (the wave's result frames) into a
single HTML file with inline CSS, no external assets and no JavaScript: sample flow,
scale reliability, Table 1, Tables 2-4, robustness of the Table 4 interactions to the
standard-error type, the replication against the published numbers (summary and the
paper's inconsistencies with their handling) and the hypotheses. A synthetic wave
carries a banner at the top. Every piece of text is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl

from lbc_pipeline.lib.marts.models import SE_TYPES
from lbc_pipeline.study import load_study
from lbc_pipeline.lib.marts.replication import (
    HYPOTHESIS_MIGRATION_TERM,
    INTERACTION_TABLE,
    HYPOTHESIS_ALPHA,
    inconsistencies,
    summarise_replication,
)
from lbc_pipeline.lib.marts.tables import (
    TABLE_CSS,
    descriptive_table,
    regression_table,
    render_html,
    term_label,
)

SYNTHETIC_BANNER = "SYNTHETIC data; not the study's data"


def synthetic_banner(description: str) -> str:
    """The banner of a synthetic wave: its manifest's own description (the generator writes
    what the wave is, calibrated or not), else the generic `SYNTHETIC_BANNER`."""
    return description.strip() or SYNTHETIC_BANNER
REPORT_TITLE = "Children left behind by migrating parents: replication of Wang (2023)"

REPORT_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:72rem;"
    "margin:0 auto;padding:1rem 2rem;color:#1b1b1b;line-height:1.4}"
    "h1{font-size:1.6rem}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}"
    ".banner{background:#b00020;color:#fff;font-weight:bold;font-size:1.2rem;padding:.8rem 1rem;"
    "border-radius:4px;margin:1rem 0;text-align:center}"
    "table.frame{border-collapse:collapse;margin:1em 0}"
    "table.frame th,table.frame td{border:1px solid #ccc;padding:2px 8px;text-align:right}"
    "table.frame th{background:#f0f0f0}table.frame td.text{text-align:left}"
    "table.frame caption{font-weight:bold;text-align:left;padding-bottom:4px}"
    "pre{background:#f6f6f6;padding:.6rem;white-space:pre-wrap}"
    ".bad{color:#b00020;font-weight:bold}"
    "nav ol{columns:2}"
) + TABLE_CSS


@dataclass(frozen=True)
class ReportContext:
    """Everything the report shows for one wave.

    Frames: sample_flow (step_order, step, n_before, n_excluded, n_after, reason),
    scale_reliability (scale, n, n_items, cronbach_alpha; `sample` shown if present), table1
    (`marts.table1`), coefficients (`marts.model_coefficients`), fit
    (`marts.model_fit`), replication (`marts.replication`), hypotheses
    (`marts.hypotheses`).
    """

    wave: str
    synthetic: bool
    sample_flow: pl.DataFrame
    scale_reliability: pl.DataFrame
    table1: pl.DataFrame
    coefficients: pl.DataFrame
    fit: pl.DataFrame
    replication: pl.DataFrame
    hypotheses: pl.DataFrame
    package_version: str | None = None
    # (anchor, title, html) sections appended after the hypotheses, e.g. the figures and
    # sensitivity analyses built by lib/render/sensitivity_sections.py; html is trusted.
    extra_sections: tuple[tuple[str, str, str], ...] = ()
    description: str = ""  # the manifest's description: the synthetic banner's text
    # `analysis.check_results`: the outcome of each data-quality check of the run
    checks: pl.DataFrame | None = None


def esc(value: object) -> str:
    """Escape any value for HTML text."""
    return html.escape("" if value is None else str(value))


def fmt(digits: int) -> Callable[[object], str]:
    """Return a formatter with fixed decimals; missing values print empty."""

    def format_value(value: object) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    return format_value


def frame_table(
    frame: pl.DataFrame,
    columns: Sequence[str],
    caption: str,
    formats: dict[str, Callable[[object], str]] | None = None,
    flag: Callable[[dict], bool] | None = None,
) -> str:
    """Render selected columns of a frame as an HTML table; flagged rows are marked."""
    formats = formats or {}
    head = "".join(f'<th scope="col">{esc(c)}</th>' for c in columns)
    body = []
    for row in frame.iter_rows(named=True):
        cells = []
        for c in columns:
            value = row[c]
            text = formats[c](value) if c in formats else ("" if value is None else str(value))
            css = "" if isinstance(value, (int, float)) and not isinstance(value, bool) else ' class="text"'
            cells.append(f"<td{css}>{esc(text)}</td>")
        marker = ' class="bad"' if flag is not None and flag(row) else ""
        body.append(f"<tr{marker}>{''.join(cells)}</tr>")
    return (
        f'<table class="frame"><caption>{esc(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def section(anchor: str, title: str, *parts: str) -> str:
    """Wrap parts in a titled section."""
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>' + "".join(parts) + "</section>"


def paragraph(text: str) -> str:
    """Render an escaped paragraph."""
    return f"<p>{esc(text)}</p>"


def robustness_frame(coefficients: pl.DataFrame) -> pl.DataFrame:
    """One row per Table 4 mother-away interaction (as published) x SE type, with both p-values."""
    return (
        coefficients.filter(
            (pl.col("specification") == load_study().reference_specification)
            & (pl.col("table_no") == INTERACTION_TABLE)
            & pl.col("term").str.starts_with(f"{HYPOTHESIS_MIGRATION_TERM}:")
        )
        .with_columns(
            pl.col("term").map_elements(term_label, return_dtype=pl.String).alias("label"),
            pl.col("se_type").replace_strict({s: i for i, s in enumerate(SE_TYPES)}).alias("se_order"),
        )
        .sort("model_no", "se_order")
    )


def specification_differences(coefficients: pl.DataFrame, tolerance: float = 1e-9) -> pl.DataFrame:
    """One row per model term whose conventional estimate differs between the reference
    specification (as_published) and the other one (harmonised), with both estimates and
    the difference; the columns are named after the specifications."""
    study = load_study()
    reference = study.reference_specification
    other = next(s for s in study.specifications if s != reference)
    keys = ["table_no", "model_no", "term"]
    conventional = coefficients.filter(pl.col("se_type") == study.reference_se_type)
    published = conventional.filter(pl.col("specification") == reference).select(
        *keys, pl.col("estimate").alias(reference))
    harmonised = conventional.filter(pl.col("specification") == other).select(
        *keys, pl.col("estimate").alias(other))
    return (
        published.join(harmonised, on=keys, how="inner")
        .with_columns((pl.col(other) - pl.col(reference)).alias("difference"))
        .filter(pl.col("difference").abs() > tolerance)
        .sort(keys)
    )


def render_html_report(context: ReportContext) -> str:
    """Render the wave's report as one self-contained HTML page."""
    wave = context.wave
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(REPORT_TITLE)}: wave {esc(wave)}</title>",
        f"<style>{REPORT_CSS}</style></head><body>",
        f"<h1>{esc(REPORT_TITLE)}</h1>",
    ]
    if context.synthetic:
        parts.append(f'<div class="banner" role="alert" id="synthetic-banner">{esc(synthetic_banner(context.description))}</div>')
    provenance = f"Wave {wave}"
    if context.package_version:
        provenance += f"; lbc_pipeline {context.package_version}"
    parts.append(paragraph(provenance + "."))
    parts.append(
        "<nav><ol>"
        + "".join(
            f'<li><a href="#{a}">{esc(t)}</a></li>'
            for a, t in (
                ("sample-flow", "Sample flow"),
                *((("checks", "Data-quality checks"),) if context.checks is not None else ()),
                ("reliability", "Scale reliability"),
                ("table-1", "Table 1"),
                ("tables-2-4", "Tables 2-4"),
                ("robustness", "Standard errors compared"),
                ("specifications", "As published vs harmonised"),
                ("replication", "Replication"),
                ("hypotheses", "Hypotheses"),
                *((anchor, title) for anchor, title, _ in context.extra_sections),
            )
        )
        + "</ol></nav>"
    )

    flow = context.sample_flow.sort("step_order")
    parts.append(
        section(
            "sample-flow",
            "Sample flow",
            frame_table(
                flow,
                ("step_order", "step", "n_before", "n_excluded", "n_after", "reason"),
                "From questionnaires handed out to children in the models",
            ),
        )
    )
    if context.checks is not None:
        parts.append(checks_section(context.checks))
    parts.append(
        section(
            "reliability",
            "Scale reliability",
            frame_table(
                context.scale_reliability,
                # A `sample` column (which questionnaires alpha was computed on) is shown when present.
                tuple(
                    c
                    for c in ("scale", "sample", "n", "n_items", "cronbach_alpha")
                    if c in context.scale_reliability.columns
                ),
                "Internal consistency of the scales (Cronbach's alpha)",
                {"cronbach_alpha": fmt(4)},
            ),
        )
    )
    parts.append(section("table-1", "Table 1", render_html(descriptive_table(context.table1))))
    numbers = load_study().regression_tables
    parts.append(
        section(
            "tables-2-4",
            f"Tables {numbers[0]}-{numbers[-1]} (as published: conventional standard errors)",
            *[
                render_html(regression_table(context.coefficients, context.fit, table_no))
                for table_no in numbers
            ],
        )
    )
    parts.append(
        section(
            "robustness",
            "Standard errors compared",
            paragraph(
                "The Table 4 interactions of mother away with each support measure under "
                "conventional, HC3 and school-clustered standard errors. With four schools the "
                "clustered standard errors are unreliable; the wild cluster bootstrap p-value "
                "is the better guide, and the note says how it was computed."
            ),
            frame_table(
                robustness_frame(context.coefficients),
                ("model_no", "label", "se_type", "estimate", "std_error", "p_value", "stars", "wild_bootstrap_p"),
                "Table 4, mother away x support measure",
                {
                    "estimate": fmt(3),
                    "std_error": fmt(3),
                    "p_value": fmt(4),
                    "wild_bootstrap_p": fmt(4),
                },
            ),
            paragraph(
                "; ".join(
                    sorted(
                        set(
                            context.coefficients.filter(pl.col("se_type") == "cluster_school")["note"]
                            .drop_nulls()
                            .to_list()
                        )
                    )
                )
            ),
        )
    )
    parts.append(
        section(
            "specifications",
            "As published vs harmonised",
            paragraph(
                "The paper centres each support measure on the analysis sample except school "
                "belonging in Table 4 Model 1, which enters raw (1-5); the harmonised "
                "specification centres every measure. Centring shifts the main effects at "
                "measure = 0 and the constant; slopes, interactions, standard errors of the "
                "interactions and R-squared do not change. These are the estimates that differ:"
            ),
            frame_table(
                specification_differences(context.coefficients),
                ("table_no", "model_no", "term", "as_published", "harmonised", "difference"),
                "Conventional estimates that differ between the two specifications",
                {"as_published": fmt(3), "harmonised": fmt(3), "difference": fmt(3)},
            ),
        )
    )
    parts.append(replication_section(context))
    parts.append(hypotheses_section(context.hypotheses))
    parts.extend(section(anchor, title, body) for anchor, title, body in context.extra_sections)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def checks_summary(checks: pl.DataFrame) -> str:
    """One sentence: how many checks ran and passed, by severity, and which failed."""
    rows = checks.sort("check_order").to_dicts()
    failed = [f"{r['check_name']} ({r['severity']})" for r in rows if not r["passed"]]
    by_severity = ", ".join(f"{sum(r['severity'] == s for r in rows)} {s}" for s in ("ERROR", "WARN"))
    text = f"{len(rows)} data-quality checks ({by_severity}): {len(rows) - len(failed)} passed"
    return text + (f"; failed: {', '.join(failed)}." if failed else ".")


def checks_section(checks: pl.DataFrame) -> str:
    """The outcome of each data-quality check on the sample flow and the analysis sample."""
    frame = checks.sort("check_order").with_columns(
        pl.when(pl.col("passed")).then(pl.lit("passed")).otherwise(pl.lit("FAILED")).alias("result"))
    return section(
        "checks",
        "Data-quality checks",
        paragraph(checks_summary(checks)),
        paragraph("An ERROR check that fails stops everything downstream of the table it guards, this report and "
                  "the wave's publication included; WARN checks report. Two more checks run after this report is "
                  "written and gate the wave's publication: the interview registry matches the design, and no raw "
                  "name (child, interviewee, school) appears outside the raw layer or in this report. A report "
                  "under data/reports/<wave> has passed them."),
        frame_table(frame, ("check_name", "asset", "severity", "result", "description"),
                    "Checks run on this wave (analysis.check_results)", flag=lambda row: not row["passed"]),
    )


def replication_section(context: ReportContext) -> str:
    """Summary of the replication, every compared number, and the paper's inconsistencies."""
    summary = summarise_replication(context.replication)

    def flagged(row: dict) -> bool:
        return not row["within_tolerance"] or row["stars_match"] is False

    n_flagged = sum(flagged(row) for row in context.replication.iter_rows(named=True))

    details = frame_table(
        context.replication,
        (
            "table_no",
            "model_no",
            "term",
            "published_estimate",
            "estimate",
            "delta_in_se",
            "published_se",
            "std_error",
            "se_ratio",
            "published_stars",
            "stars",
            "within_tolerance",
        ),
        "Every published number beside the product's",
        {
            "published_estimate": fmt(4),
            "estimate": fmt(4),
            "delta_in_se": fmt(3),
            "published_se": fmt(3),
            "std_error": fmt(3),
            "se_ratio": fmt(3),
        },
        flagged,
    )
    items = "".join(
        f"<li><strong>{esc(item.title)}</strong><br>{esc(item.finding)}"
        f"<br><em>Handling:</em> {esc(item.handling)}</li>"
        for item in inconsistencies()
    )
    return section(
        "replication",
        "Replication against the published tables",
        f"<pre>{esc(summary.text)}</pre>",
        frame_table(
            summary.by_table,
            tuple(summary.by_table.columns),
            "By table",
            {
                "max_abs_delta_in_se": fmt(3),
                "se_ratio_min": fmt(3),
                "se_ratio_max": fmt(3),
                "max_abs_r2_delta": fmt(4),
            },
        ),
        paragraph(f"{n_flagged} compared numbers are outside tolerance or differ in stars (marked)."),
        f"<details><summary>All {context.replication.height} compared numbers</summary>{details}</details>",
        "<h3>Inconsistencies in the paper and how the product handles them</h3>",
        f'<ol class="inconsistencies">{items}</ol>',
    )


def hypotheses_section(hypotheses: pl.DataFrame) -> str:
    """The verdict on each hypothesis, as a table and as sentences."""
    verdicts = hypotheses.group_by("hypothesis", maintain_order=True).agg(pl.col("supported").first())
    lines = "".join(
        f"<li><strong>{esc(r['hypothesis'])}</strong>: {'supported' if r['supported'] else 'not supported'}</li>"
        for r in verdicts.iter_rows(named=True)
    )
    sentences = "".join(f"<li>{esc(s)}</li>" for s in hypotheses["sentence"].to_list())
    return section(
        "hypotheses",
        "Hypotheses",
        f"<ul>{lines}</ul>",
        frame_table(
            hypotheses,
            ("hypothesis", "measure", "term", "model_no", "estimate", "std_error", "p_value", "buffering", "supported"),
            f"Buffering: a negative mother away x measure interaction with p < {HYPOTHESIS_ALPHA:g} "
            "(Table 4, as published)",
            {"estimate": fmt(3), "std_error": fmt(3), "p_value": fmt(4)},
        ),
        f"<ol>{sentences}</ol>",
    )


def with_section(page: str, key: str, body: str) -> str:
    """The report page with `body` as the marked section `key` just before `</body>`, replacing
    an earlier copy: the hook for strands built after the report (the interviews)."""
    begin, end = f"<!-- section:{key} -->", f"<!-- /section:{key} -->"
    if begin in page and end in page:
        page = page[:page.index(begin)] + page[page.index(end) + len(end):]
    return page.replace("</body>", f"{begin}{body}{end}</body>", 1)
