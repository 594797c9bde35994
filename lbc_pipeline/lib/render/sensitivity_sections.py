"""The report's sections on what the buffering means and how robust it is.

`sensitivity_sections` turns the sensitivity marts and the figure files of a wave into
(anchor, title, html) sections that `report.render_html_report` appends: the figures
(PNG data URIs, so the page stays one file), simple slopes and Johnson-Neyman regions,
clustering, missing data and the robustness matrix. A mart that is absent (an older
warehouse) leaves its section out.
"""

from __future__ import annotations

import polars as pl

from lbc_pipeline.lib.io.warehouse import has_table, read_wave
from lbc_pipeline.lib.render.figure_files import FigureFile, png_data_uri
from lbc_pipeline.lib.render.report import esc, fmt, frame_table, paragraph

TABLES = ("marts.simple_slopes", "marts.johnson_neyman", "marts.cluster_sensitivity", "marts.multilevel_icc",
          "marts.mcar_test", "marts.mi_coefficients", "marts.robustness")
Section = tuple[str, str, str]


def figure_html(f: FigureFile) -> str:
    """One figure: the PNG inline, its title and caption."""
    return (f'<figure id="fig-{esc(f.stem)}"><img src="{png_data_uri(f.png)}" alt="{esc(f.title)}" '
            f'style="max-width:100%"><figcaption><strong>{esc(f.title)}.</strong> {esc(f.caption)}</figcaption></figure>')


def figures_section(files: list[FigureFile]) -> Section:
    return ("figures", "Figures", "".join(figure_html(f) for f in files))


def moderation_section(slopes: pl.DataFrame, jn: pl.DataFrame) -> Section:
    """Mother-away effect at low, mean and high support; where it is significant."""
    points = {"mean_minus_1sd": "mean - 1 SD", "mean": "mean", "mean_plus_1sd": "mean + 1 SD"}
    mother = (slopes.filter((pl.col("migration_group") == "mother") & (pl.col("quantity") == "group_effect")
                            & pl.col("point").is_in(list(points)) & (pl.col("se_type") == "nonrobust"))
              .with_columns(pl.col("point").replace_strict(points).alias("at"))
              .sort("model_no", "moderator_value"))
    regions = (jn.filter(pl.col("migration_group") == "mother")
               .group_by("model_no", "moderator", "se_type", maintain_order=True)
               .agg(pl.col("verdict").first(), pl.col("bounds").first(),
                    pl.col("share_children").filter(pl.col("significant")).sum().alias("share_significant"))
               .sort("model_no", "se_type"))
    return (
        "moderation", "What the buffering means: simple slopes and Johnson-Neyman regions",
        paragraph("The extra depression of children whose mother is away (against no parent away) at low, average "
                  "and high levels of each support measure (Table 4, conventional SEs; every group, HC3 and each "
                  "observed value are in marts.simple_slopes). The Johnson-Neyman regions say for which values "
                  "of the measure that effect is significant at 0.05, and for what share of the children.")
        + frame_table(mother, ("model_no", "moderator", "at", "moderator_value", "estimate", "std_error", "p_value",
                               "ci_low", "ci_high"), "Mother-away effect at the measure's mean and +- 1 SD",
                      {"moderator_value": fmt(2), "estimate": fmt(3), "std_error": fmt(3), "p_value": fmt(4),
                       "ci_low": fmt(3), "ci_high": fmt(3)})
        + frame_table(regions, ("model_no", "moderator", "se_type", "verdict", "bounds", "share_significant"),
                      "Johnson-Neyman: where the mother-away effect is significant (observed range)",
                      {"share_significant": fmt(3)}))


def clustering_section(cluster: pl.DataFrame, icc: pl.DataFrame) -> Section:
    focal = cluster.filter(pl.col("term").str.starts_with("mother_away"))
    g = int(cluster.filter(pl.col("analysis") == "wild_rademacher")["n_groups"][0])
    notes = "; ".join(sorted(set(cluster.filter(pl.col("analysis").str.starts_with("wild"))["note"].to_list())))
    intro = paragraph(
        f"Children are nested in classes in {g} schools. With {g} schools the Rademacher wild bootstrap has "
        f"2^{g} = {2**g} sign patterns, of which 2 always reproduce the observed |t|, so it can never give "
        f"p < {2 / 2**g:.4g}; Webb's six-point weights have 6^{g} = {6**g} patterns (p >= {6 / 6**g:.2g}), "
        "but with so few schools any school-clustered inference stays fragile: read these p-values as a "
        "check. The random intercept for class gives the intra-class correlation (ICC).") + paragraph(notes)
    return ("clustering", "Clustering: schools and classes",
            intro
            + frame_table(icc, ("model", "n_obs", "n_classes", "class_variance", "residual_variance", "icc", "converged"),
                          "Class random intercept and ICC", {"class_variance": fmt(4), "residual_variance": fmt(3),
                                                             "icc": fmt(4)})
            + frame_table(focal, ("table_no", "model_no", "term", "analysis", "estimate", "std_error", "p_value", "stars"),
                          "Mother-away terms under each clustering analysis",
                          {"estimate": fmt(3), "std_error": fmt(3), "p_value": fmt(4)}))


def missing_section(mcar: pl.DataFrame, mi: pl.DataFrame) -> Section:
    changed = mi.filter(pl.col("stars_changed") | pl.col("term").str.starts_with("mother_away"))
    return ("missing-data", "Missing data: Little's test and multiple imputation",
            frame_table(mcar, ("n_rows", "n_incomplete", "n_patterns", "statistic", "df", "p_value", "conclusion"),
                        "Little's MCAR test (valid questionnaires, both parents alive)",
                        {"statistic": fmt(2), "p_value": fmt(4)})
            + paragraph(f"{int(mi['stars_changed'].sum())} of {mi.height} coefficients change stars and "
                        f"{int(mi['significance_changed'].sum())} change significance at 0.05 after multiple "
                        f"imputation ({int(mi['n_imputations'][0]) if mi.height else 0} imputations, "
                        f"{int(mi['n_obs'][0]) if mi.height else 0} children). Mother-away terms and every change:")
            + frame_table(changed, ("table_no", "model_no", "term", "cc_estimate", "cc_stars", "estimate", "stars",
                                    "std_error", "p_value", "fmi", "df"),
                          "Complete cases against multiple imputation (Rubin's rules)",
                          {"cc_estimate": fmt(3), "estimate": fmt(3), "std_error": fmt(3), "p_value": fmt(4),
                           "fmi": fmt(3), "df": fmt(1)},
                          flag=lambda r: r["stars_changed"]))


def robustness_section(matrix: pl.DataFrame) -> Section:
    """The matrix: one row per claim, one column per analysis, 'yes'/'no' with the p-value."""
    from lbc_pipeline.lib.marts.robustness import ANALYSES, SHORT  # pandera, scipy: when rendering, not when loading definitions

    head = "".join(f'<th scope="col" title="{esc(ANALYSES[a])}">{esc(SHORT[a])}</th>' for a in ANALYSES)
    body = []
    for (hypothesis,), part in matrix.group_by("hypothesis", maintain_order=True):
        cells = {r["analysis"]: r for r in part.iter_rows(named=True)}
        tds = "".join(
            f'<td class="{"" if cells[a]["agrees_with_published"] else "bad"}">'
            f'{"yes" if cells[a]["supported"] else "no"} (p {cells[a]["p_value"]:.3f})</td>' for a in ANALYSES)
        body.append(f'<tr><td class="text">{esc(hypothesis)}: {esc(part["claim"][0])}</td>{tds}</tr>')
    table = (f'<table class="frame" id="robustness-matrix"><caption>Is the claim supported? (marked: differs from '
             f'the published analysis)</caption><thead><tr><th scope="col">claim</th>{head}</tr></thead>'
             f'<tbody>{"".join(body)}</tbody></table>')
    return ("robustness-matrix", "Robustness matrix",
            paragraph("The main mother-away effect (Table 2 Model 2) and H1-H3 (buffering in Table 4) under every "
                      "analysis; for a hypothesis with several measures the p-value is its decisive measure's.")
            + table)


def read_sensitivity_marts(con, wave: str) -> dict[str, pl.DataFrame]:
    """The wave's rows of each sensitivity mart present in the warehouse (`con`: DuckDB), as
    the connection's run sees them (its pending rows, in a run that publishes the wave)."""
    return {t: read_wave(con, t, wave) for t in TABLES if has_table(con, t)}


def sensitivity_sections(frames: dict[str, pl.DataFrame], files: list[FigureFile]) -> tuple[Section, ...]:
    """Every section whose marts are present (non-empty) in `frames`, figures first."""
    def have(*tables: str) -> bool:
        return all(t in frames and frames[t].height > 0 for t in tables)

    sections = []
    if files:
        sections.append(figures_section(files))
    if have("marts.simple_slopes", "marts.johnson_neyman"):
        sections.append(moderation_section(frames["marts.simple_slopes"], frames["marts.johnson_neyman"]))
    if have("marts.cluster_sensitivity", "marts.multilevel_icc"):
        sections.append(clustering_section(frames["marts.cluster_sensitivity"], frames["marts.multilevel_icc"]))
    if have("marts.mcar_test", "marts.mi_coefficients"):
        sections.append(missing_section(frames["marts.mcar_test"], frames["marts.mi_coefficients"]))
    if have("marts.robustness"):
        sections.append(robustness_section(frames["marts.robustness"]))
    return tuple(sections)
