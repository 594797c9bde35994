"""Publication tables: Table 1 (descriptives) and Tables 2-4 (regressions).

Each table is built once as data and rendered second, to Markdown, HTML, LaTeX and
CSV, from that one object (the pattern of statsmodels' `summary_col` and pyfixest's
`etable`):

- `table1` computes `marts.table1`, the long frame of descriptive statistics;
  `descriptive_table` lays it out like the paper (rows = variable / level, columns =
  the four migration groups).
- `regression_table` lays out one of Tables 2-4 from `marts.model_coefficients` and
  `marts.model_fit` as a `RegressionTable` (rows = terms, columns = models).
- Both become a `TableGrid`, which `render_markdown`, `render_html`, `render_latex`
  and `render_csv` turn into text; `write_tables` writes one file stem per table.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from lbc_pipeline.lib import contracts
from lbc_pipeline.study import load_study

_STUDY = load_study()
GROUPS = _STUDY.groups
ALL_GROUPS = _STUDY.all_groups
OBSERVATIONS = "observations"

FILE_FORMATS = ("md", "html", "tex", "csv")

def table1(sample: pl.DataFrame, wave: str) -> pl.DataFrame:
    """Compute `marts.table1`: descriptive statistics by migration group.

    One row per variable x level x migration_group x statistic. Groups are none,
    mother, father, both and `all`. Continuous variables (level null) get `mean`
    and `sd` (ddof=1); categorical ones get, per level (the code as text), `n` and
    `percent` of the group's children, zero for a level nobody chose; variable
    `observations` (level null) holds each group's `n`.
    """
    rows = []
    parts = [(g, sample.filter(pl.col("migration_group") == g)) for g in GROUPS]
    parts.append((ALL_GROUPS, sample))
    for group, part in parts:
        rows.append((wave, OBSERVATIONS, None, group, "n", float(part.height)))
        for variable, levels in ((r.variable, r.levels) for r in load_study().table1):
            values = part[variable].cast(pl.Float64)
            if not levels:
                rows.append((wave, variable, None, group, "mean", values.mean()))
                rows.append((wave, variable, None, group, "sd", values.std(ddof=1)))
                continue
            counts = dict(part[variable].value_counts().iter_rows())
            for code in table1_levels(sample, variable):
                count = counts.get(code, 0)
                percent = 100.0 * count / part.height if part.height else None
                rows.append((wave, variable, str(code), group, "n", float(count)))
                rows.append((wave, variable, str(code), group, "percent", percent))
    return contracts.frame("marts.table1", rows, orient="row")


def table1_levels(sample: pl.DataFrame, variable: str) -> list[int]:
    """List a categorical variable's levels: the layout's codes plus any other code seen."""
    layout = next(r.levels for r in load_study().table1 if r.variable == variable)
    seen = sample[variable].unique().to_list()
    return sorted({code for code, _ in layout} | set(seen))


@dataclass(frozen=True)
class GridRow:
    """One row of a laid-out table; `kind` is heading, body, se or stat."""

    cells: tuple[str, ...]
    kind: str = "body"


@dataclass(frozen=True)
class TableGrid:
    """A table laid out as text cells, ready for any renderer."""

    title: str
    header: tuple[str, ...]
    rows: tuple[GridRow, ...]
    notes: tuple[str, ...] = ()


def descriptive_table(table1_frame: pl.DataFrame) -> TableGrid:
    """Lay out `marts.table1` like the paper's Table 1.

    Rows: a heading per categorical variable, then one row per level (percent);
    one row per continuous variable ("mean (sd)"); Observations last. Columns: the
    four migration groups.
    """
    lookup = {
        (r["variable"], r["level"], r["migration_group"], r["statistic"]): r["value"]
        for r in table1_frame.iter_rows(named=True)
    }
    rows = []
    for variable, title, layout in ((r.variable, r.title, r.levels) for r in load_study().table1):
        if not layout:
            cells = [
                format_mean_sd(lookup.get((variable, None, g, "mean")), lookup.get((variable, None, g, "sd")))
                for g in GROUPS
            ]
            rows.append(GridRow((title, *cells)))
            continue
        rows.append(GridRow((title, *[""] * len(GROUPS)), "heading"))
        labels = dict(layout)
        levels = sorted(
            {int(level) for (v, level, _, _) in lookup if v == variable and level is not None}
        )
        for code in levels:
            cells = [format_number(lookup.get((variable, str(code), g, "percent")), 2) for g in GROUPS]
            rows.append(GridRow((labels.get(code, f"{code} (%)"), *cells)))
    counts = [format_count(lookup.get((OBSERVATIONS, None, g, "n"))) for g in GROUPS]
    rows.append(GridRow(("Observations", *counts), "stat"))
    return TableGrid(
        title=load_study().table_titles[1],
        header=("", *[load_study().group_labels[g] for g in GROUPS]),
        rows=tuple(rows),
        notes=(
            "Percentages of the group's children; mean (standard deviation) for continuous "
            "variables; a level nobody chose shows 0.00.",
        ),
    )


@dataclass(frozen=True)
class RegressionTable:
    """One of Tables 2-4 as data: rows are terms, columns are models.

    `estimates[(term, model_head)]` is "coef + stars" and `std_errors[...]` is
    "(se)"; a term absent from a model has no cell. `extra_rows` are rows such as
    "Controls: Yes" (label, one cell per model); `n_obs` and `r_squared` give the
    N and R-squared rows.
    """

    title: str
    model_heads: tuple[str, ...]
    terms: tuple[str, ...]
    labels: Mapping[str, str]
    estimates: Mapping[tuple[str, str], str]
    std_errors: Mapping[tuple[str, str], str]
    extra_rows: tuple[tuple[str, tuple[str, ...]], ...]
    n_obs: tuple[int, ...]
    r_squared: tuple[float, ...]
    notes: tuple[str, ...]

    def grid(self) -> TableGrid:
        """Lay the table out: a coefficient row and an (se) row per term, then the statistics."""
        rows = []
        for term in self.terms:
            rows.append(
                GridRow(
                    (self.labels.get(term, term), *[self.estimates.get((term, m), "") for m in self.model_heads])
                )
            )
            rows.append(GridRow(("", *[self.std_errors.get((term, m), "") for m in self.model_heads]), "se"))
        for label, cells in self.extra_rows:
            rows.append(GridRow((label, *cells), "stat"))
        rows.append(GridRow(("N", *[str(n) for n in self.n_obs]), "stat"))
        rows.append(GridRow(("R-squared", *[format_number(r, 3) for r in self.r_squared]), "stat"))
        return TableGrid(self.title, ("", *self.model_heads), tuple(rows), self.notes)


def term_label(term: str, labels: Mapping[str, str] | None = None) -> str:
    """Label a term (study.yaml's labels unless `labels` overrides); an interaction is
    'Mother away × School belonging'."""
    if labels and ":" in term:
        return " × ".join(term_label(part, labels) for part in term.split(":"))
    if labels and term in labels:
        return labels[term]
    return load_study().term_label(term)


def regression_table(
    coefficients: pl.DataFrame,
    fit: pl.DataFrame,
    table_no: int,
    *,
    specification: str | None = None,
    se_type: str | None = None,
    keep: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    title: str | None = None,
) -> RegressionTable:
    """Lay out Table `table_no` from one wave's model coefficients and fit statistics.

    `keep` lists the terms to print; by default every term in Table 2, and in
    Tables 3 and 4 everything but the controls (as in the paper), with a
    "Controls: Yes" row and a note. `const` is always printed last. The reference
    specification and SE type of study.yaml by default.
    """
    study = load_study()
    specification = specification or study.reference_specification
    se_type = se_type or study.reference_se_type
    coefs = coefficients.filter(
        (pl.col("table_no") == table_no)
        & (pl.col("specification") == specification)
        & (pl.col("se_type") == se_type)
    )
    fits = fit.filter((pl.col("table_no") == table_no) & (pl.col("specification") == specification)).sort(
        "model_no"
    )
    if coefs.height == 0 or fits.height == 0:
        raise ValueError(f"no {specification} {se_type} results for Table {table_no}")
    model_nos = fits["model_no"].to_list()
    heads = tuple(f"Model {m}" for m in model_nos)
    all_terms = list(dict.fromkeys(coefs.sort("model_no", maintain_order=True)["term"].to_list()))
    hidden = set(study.controls) if table_no not in study.controls_shown_in_tables else set()
    shown = [t for t in all_terms if (t in keep if keep is not None else t not in hidden)]
    const = study.constant
    shown = [t for t in shown if t != const] + ([const] if const in shown else [])
    estimates, std_errors = {}, {}
    for r in coefs.iter_rows(named=True):
        head = f"Model {r['model_no']}"
        estimates[(r["term"], head)] = f"{r['estimate']:.3f}{r['stars']}"
        std_errors[(r["term"], head)] = f"({r['std_error']:.3f})"
    extra_rows = []
    hidden_controls = [t for t in all_terms if t not in shown and t in study.controls]
    if hidden_controls:
        terms_by_model = {m: set(coefs.filter(pl.col("model_no") == m)["term"]) for m in model_nos}
        extra_rows.append(
            ("Controls", tuple("Yes" if terms_by_model[m] & set(hidden_controls) else "No" for m in model_nos))
        )
    notes = [
        f"Standard errors in parentheses ({study.se_table_notes.get(se_type, se_type)}). "
        + study.star_legend()
        + "."
    ]
    if hidden_controls:
        hidden_labels = ", ".join(term_label(t, labels).lower() for t in hidden_controls)
        notes.append(f"Controls ({hidden_labels}) are included but not printed.")
    notes += centring_notes(fits)
    return RegressionTable(
        title=title or study.table_titles.get(table_no, f"Table {table_no}"),
        model_heads=heads,
        terms=tuple(shown),
        labels={t: term_label(t, labels) for t in shown},
        estimates=estimates,
        std_errors=std_errors,
        extra_rows=tuple(extra_rows),
        n_obs=tuple(int(n) for n in fits["n_obs"]),
        r_squared=tuple(float(r) for r in fits["r_squared"]),
        notes=tuple(notes),
    )


def centring_notes(fits: pl.DataFrame) -> list[str]:
    """Say, from the fit rows, in which models the moderator is mean-centred and where raw."""
    with_moderator = fits.filter(pl.col("moderator").is_not_null())
    if with_moderator.height == 0:
        return []
    centred = with_moderator.filter(pl.col("centred"))["model_no"].to_list()
    raw = with_moderator.filter(~pl.col("centred"))["model_no"].to_list()
    parts = []
    if centred:
        parts.append(f"mean-centred on the analysis sample in {model_list(centred)}")
    if raw:
        parts.append(f"entered raw (on its own scale) in {model_list(raw)}")
    return ["The school-support measure is " + "; ".join(parts) + "."]


def model_list(model_nos: Sequence[int]) -> str:
    """Write model numbers as 'Model 1', 'Models 2-6' or 'Models 1, 3 and 5'."""
    numbers = sorted(model_nos)
    if len(numbers) == 1:
        return f"Model {numbers[0]}"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"Models {numbers[0]}-{numbers[-1]}"
    return f"Models {', '.join(str(m) for m in numbers[:-1])} and {numbers[-1]}"


def publication_tables(
    table1_frame: pl.DataFrame,
    coefficients: pl.DataFrame,
    fit: pl.DataFrame,
    *,
    specification: str | None = None,
    se_type: str | None = None,
) -> dict[str, TableGrid | RegressionTable]:
    """Build Table 1 and every regression table of study.yaml, keyed by file stem
    (`table_1` ... `table_4`); the reference specification and SE type by default."""
    study = load_study()
    specification = specification or study.reference_specification
    se_type = se_type or study.reference_se_type
    tables: dict[str, TableGrid | RegressionTable] = {"table_1": descriptive_table(table1_frame)}
    for table_no in load_study().regression_tables:
        tables[f"table_{table_no}"] = regression_table(
            coefficients, fit, table_no, specification=specification, se_type=se_type
        )
    return tables


def format_number(value: float | None, digits: int) -> str:
    """Format a number with fixed decimals; a missing value is an empty cell."""
    return "" if value is None else f"{value:.{digits}f}"


def format_mean_sd(mean: float | None, sd: float | None) -> str:
    """Format 'mean (sd)' with three decimals."""
    if mean is None:
        return ""
    return f"{mean:.3f} ({format_number(sd, 3) or 'n/a'})"


def format_count(value: float | None) -> str:
    """Format a count as an integer."""
    return "" if value is None else str(int(value))


def as_grid(table: TableGrid | RegressionTable) -> TableGrid:
    """Return the laid-out grid of a table."""
    return table if isinstance(table, TableGrid) else table.grid()


def render_markdown(table: TableGrid | RegressionTable) -> str:
    """Render a table as a GitHub-flavoured Markdown pipe table with its title and notes."""
    grid = as_grid(table)

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = "|" + "|".join(["---"] + [":---:"] * (len(grid.header) - 1)) + "|"
    lines = [f"**{grid.title}**", "", line(grid.header), rule]
    for row in grid.rows:
        cells = row.cells
        if row.kind == "heading":
            cells = (f"*{cells[0]}*", *cells[1:])
        lines.append(line(cells))
    lines.append("")
    lines += [f"{note}  " for note in grid.notes]
    return "\n".join(lines).rstrip() + "\n"


def render_html(table: TableGrid | RegressionTable) -> str:
    """Render a table as an HTML <table> fragment (caption, thead, tbody, notes in tfoot)."""
    grid = as_grid(table)
    esc = html.escape
    out = ['<table class="regtable">', f"<caption>{esc(grid.title)}</caption>", "<thead><tr>"]
    out += [f'<th scope="col">{esc(h)}</th>' for h in grid.header]
    out.append("</tr></thead>")
    out.append("<tbody>")
    for row in grid.rows:
        first, rest = row.cells[0], row.cells[1:]
        cells = [f'<th scope="row">{esc(first)}</th>'] + [f"<td>{esc(c)}</td>" for c in rest]
        out.append(f'<tr class="{esc(row.kind)}">' + "".join(cells) + "</tr>")
    out.append("</tbody>")
    if grid.notes:
        out.append(f'<tfoot><tr><td colspan="{len(grid.header)}">')
        out.append("<br>".join(esc(n) for n in grid.notes))
        out.append("</td></tr></tfoot>")
    out.append("</table>")
    return "\n".join(out) + "\n"


TABLE_CSS = (
    "table.regtable{border-collapse:collapse;margin:1em 0}"
    "table.regtable th,table.regtable td{padding:2px 10px;text-align:center}"
    "table.regtable thead th{border-top:2px solid #000;border-bottom:1px solid #000}"
    "table.regtable tbody th{text-align:left;font-weight:normal}"
    "table.regtable tr.heading th{font-style:italic}"
    "table.regtable tr.se td{color:#444}"
    "table.regtable tr.stat{background:#f6f6f6}"
    "table.regtable tfoot td{border-top:2px solid #000;text-align:left;font-size:90%}"
    "table.regtable caption{font-weight:bold;text-align:left;padding-bottom:4px}"
)


def render_html_document(table: TableGrid | RegressionTable) -> str:
    """Render a table as a standalone HTML page."""
    grid = as_grid(table)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(grid.title)}</title>"
        f"<style>{TABLE_CSS}</style>"
        "</head><body>\n" + render_html(grid) + "</body></html>\n"
    )


LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "×": r"$\times$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in a cell."""
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in text)


def render_latex(table: TableGrid | RegressionTable) -> str:
    """Render a table as a LaTeX table (booktabs rules, notes below the tabular)."""
    grid = as_grid(table)
    columns = "l" + "c" * (len(grid.header) - 1)
    out = [
        r"\begin{table}[htbp]",
        r"\centering",
        rf"\caption{{{latex_escape(grid.title)}}}",
        rf"\begin{{tabular}}{{{columns}}}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in grid.header) + r" \\",
        r"\midrule",
    ]
    previous = "body"
    for row in grid.rows:
        if row.kind == "stat" and previous != "stat":
            out.append(r"\midrule")
        cells = [latex_escape(c) for c in row.cells]
        if row.kind == "heading":
            cells[0] = rf"\textit{{{cells[0]}}}"
        out.append(" & ".join(cells) + r" \\")
        previous = row.kind
    out += [r"\bottomrule", r"\end{tabular}"]
    if grid.notes:
        out.append(r"\par\smallskip\footnotesize " + r" \\ ".join(latex_escape(n) for n in grid.notes))
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def render_csv(table: TableGrid | RegressionTable) -> str:
    """Render a table's grid as CSV: the header, then one line per row."""
    grid = as_grid(table)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(grid.header)
    for row in grid.rows:
        writer.writerow(row.cells)
    return buffer.getvalue()


RENDERERS = {
    "md": render_markdown,
    "html": render_html_document,
    "tex": render_latex,
    "csv": render_csv,
}


def write_tables(tables: Mapping[str, TableGrid | RegressionTable], out_dir: Path | str) -> list[Path]:
    """Write every table as `<stem>.md`, `.html`, `.tex` and `.csv` in out_dir; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, table in tables.items():
        grid = as_grid(table)
        for extension in FILE_FORMATS:
            path = out / f"{stem}.{extension}"
            path.write_text(RENDERERS[extension](grid), encoding="utf-8")
            written.append(path)
    return written
