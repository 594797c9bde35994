"""Tables are what readers compare with the paper. A percentage over the wrong
denominator, a dropped zero-percent level, a control printed where the paper hides it or
a renderer that mangles a cell would all mislead silently; these tests pin each on
hand-made inputs whose answers can be counted by hand.
"""

import csv
import io
from html.parser import HTMLParser

import polars as pl
import pytest

from lbc_pipeline.lib.marts import tables


def six_children() -> pl.DataFrame:
    """Three children with no parent away, one with the mother away, two with the father away."""
    return pl.DataFrame(
        {
            "wave": ["t"] * 6,
            "child_key": [f"c{i}" for i in range(6)],
            "migration_group": ["none", "none", "none", "mother", "father", "father"],
            "depression": [10, 12, 17, 20, 6, 8],
            "age": [12, 13, 14, 11, 12, 12],
            "teacher_attitude": [0.5, -0.5, 0.0, 1.0, -1.0, 0.25],
            "girl": [1, 1, 0, 1, 0, 0],
            "grade": [7, 7, 8, 5, 9, 9],
            "siblings": [0, 1, 2, 0, 0, 1],
            "korean": [0, 0, 1, 1, 1, 0],
            "mother_edu": [1, 2, 3, 1, 1, 2],
            "father_edu": [1, 1, 2, 3, 2, 2],
            "belong": [5, 5, 4, 1, 3, 5],
            "ht_satisfaction": [4, 5, 3, 2, 5, 5],
            "best_friends": [4, 3, 2, 1, 4, 4],
            "class_closeness": [5, 4, 3, 2, 5, 4],
            "peer_satisfaction": [5, 5, 4, 3, 2, 1],
        }
    )


def value(frame: pl.DataFrame, variable: str, level: str | None, group: str, statistic: str):
    level_filter = pl.col("level").is_null() if level is None else pl.col("level") == level
    row = frame.filter(
        (pl.col("variable") == variable)
        & level_filter
        & (pl.col("migration_group") == group)
        & (pl.col("statistic") == statistic)
    )
    assert row.height == 1, (variable, level, group, statistic)
    return row["value"].item()


@pytest.fixture(scope="module")
def t1() -> pl.DataFrame:
    return tables.table1(six_children(), "t")


@pytest.mark.parametrize(
    "variable, level, group, statistic, expected",
    [
        # 2 of the 3 children with no parent away are girls.
        ("girl", "1", "none", "percent", 100 * 2 / 3),
        ("girl", "1", "none", "n", 2),
        # Both father-away children are in grade 9.
        ("grade", "9", "father", "percent", 100.0),
        # A level nobody in the group chose is 0 percent, not missing (blank cells in the paper).
        ("grade", "8", "father", "percent", 0.0),
        # Grade 5 exists in the layout; nobody with no parent away is in it.
        ("grade", "5", "none", "n", 0),
        # The "all" column counts all six children: 3 of 6 have no siblings.
        ("siblings", "0", "all", "percent", 50.0),
        ("belong", "5", "all", "percent", 100 * 3 / 6),
        # The group sizes.
        ("observations", None, "none", "n", 3),
        ("observations", None, "mother", "n", 1),
        ("observations", None, "both", "n", 0),
        ("observations", None, "all", "n", 6),
        # Means and SDs (ddof=1): depression 10, 12, 17 has mean 13 and variance 13.
        ("depression", None, "none", "mean", 13.0),
        ("depression", None, "none", "sd", 13**0.5),
        # Father-away ages 12 and 12: SD 0.
        ("age", None, "father", "sd", 0.0),
        ("teacher_attitude", None, "all", "mean", 0.25 / 6),
    ],
)
def test_table1_matches_hand_counts(t1, variable, level, group, statistic, expected):
    assert value(t1, variable, level, group, statistic) == pytest.approx(expected)


def test_table1_shape_and_empty_group(t1):
    assert t1.columns == ["wave", "variable", "level", "migration_group", "statistic", "value"]
    assert set(t1["migration_group"]) == {"none", "mother", "father", "both", "all"}
    assert set(t1["statistic"]) == {"mean", "sd", "percent", "n"}
    # No child has both parents away: no percentages, no mean.
    assert value(t1, "girl", "1", "both", "percent") is None
    assert value(t1, "depression", None, "both", "mean") is None
    # Within each group and variable the percentages add up to 100.
    sums = (
        t1.filter((pl.col("statistic") == "percent") & (pl.col("migration_group") != "both"))
        .group_by("variable", "migration_group")
        .agg(pl.col("value").sum())
    )
    assert sums["value"].to_list() == pytest.approx([100.0] * sums.height)


def test_table1_keeps_a_code_outside_the_layout():
    # A grade the paper's layout does not list is shown, not dropped, so that percentages still add up.
    frame = six_children().with_columns(grade=pl.Series([6, 7, 8, 5, 9, 9]))
    t1 = tables.table1(frame, "t")
    assert value(t1, "grade", "6", "none", "percent") == pytest.approx(100 / 3)
    grid = tables.descriptive_table(t1)
    assert any(row.cells[0] == "6 (%)" for row in grid.rows)


def test_descriptive_table_is_laid_out_like_the_paper(t1):
    grid = tables.descriptive_table(t1)
    assert grid.header == ("", "No parents away", "Mother away", "Father away", "Both parents away")
    cells = {row.cells[0]: row.cells[1:] for row in grid.rows}
    assert cells["Depression, mean (SD)"][0] == "13.000 (3.606)"
    assert cells["Girl (%)"] == ("66.67", "100.00", "0.00", "")
    assert cells["Observations"] == ("3", "1", "2", "0")
    headings = [row.cells[0] for row in grid.rows if row.kind == "heading"]
    assert headings[:2] == ["Gender", "Grade"]


def coefficient_frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Hand-made Table 3 (two models) and Table 2 (one model) results."""
    rows = []

    def add(table_no, model_no, term, estimate, se, stars):
        rows.append(
            {
                "wave": "t",
                "specification": "as_published",
                "table_no": table_no,
                "model_no": model_no,
                "term": term,
                "estimate": estimate,
                "std_error": se,
                "stars": stars,
                "se_type": "nonrobust",
            }
        )

    for model_no, moderator in ((1, "belong"), (2, "teacher_attitude")):
        add(3, model_no, "mother_away", 2.5 * model_no, 0.8, "**")
        add(3, model_no, "girl", 0.4, 0.5, "")
        add(3, model_no, "age", 0.1, 0.2, "")
        add(3, model_no, moderator, -1.98, 0.322, "***")
        add(3, model_no, "const", 13.16, 3.21, "***")
    add(4, 1, "mother_away", 17.72, 6.439, "**")
    add(4, 1, "belong", -1.979, 0.322, "***")
    add(4, 1, "mother_away:belong", -3.244, 1.39, "*")
    add(4, 1, "const", 13.16, 3.21, "***")
    add(4, 2, "mother_away", 1.0, 0.5, "*")
    add(4, 2, "teacher_attitude", -1.0, 0.3, "**")
    add(4, 2, "mother_away:teacher_attitude", -1.4, 1.2, "")
    add(4, 2, "const", 11.0, 3.0, "**")
    add(2, 1, "mother_away", 2.082, 1.054, "*")
    add(2, 1, "const", 11.47, 0.29, "***")
    fit = pl.DataFrame(
        {
            "wave": ["t"] * 5,
            "specification": ["as_published"] * 5,
            "table_no": [3, 3, 4, 4, 2],
            "model_no": [1, 2, 1, 2, 1],
            "n_obs": [605] * 5,
            "r_squared": [0.152, 0.0904, 0.157, 0.093, 0.008],
            "moderator": ["belong", "teacher_attitude", "belong", "teacher_attitude", None],
            "centred": [True, True, False, True, None],
        }
    )
    return pl.DataFrame(rows), fit


def test_regression_table_cells_and_hidden_controls():
    coefficients, fit = coefficient_frames()
    table = tables.regression_table(coefficients, fit, 3)
    assert table.model_heads == ("Model 1", "Model 2")
    # Controls are not printed in Table 3, and the constant comes last.
    assert table.terms == ("mother_away", "belong", "teacher_attitude", "const")
    assert table.estimates[("mother_away", "Model 2")] == "5.000**"
    assert table.std_errors[("belong", "Model 1")] == "(0.322)"
    assert ("belong", "Model 2") not in table.estimates
    assert table.extra_rows == (("Controls", ("Yes", "Yes")),)
    assert any("not printed" in note for note in table.notes)
    grid = table.grid()
    labels = [row.cells[0] for row in grid.rows]
    assert labels[-2:] == ["N", "R-squared"]
    assert grid.rows[-1].cells == ("R-squared", "0.152", "0.090")


def test_regression_table_notes_the_raw_moderator_and_labels_interactions():
    coefficients, fit = coefficient_frames()
    table = tables.regression_table(coefficients, fit, 4)
    assert table.labels["mother_away:belong"] == "Mother away × School belonging"
    assert "The school-support measure is mean-centred on the analysis sample in Model 2; " in table.notes[-1]
    assert "entered raw (on its own scale) in Model 1." in table.notes[-1]
    assert table.terms[-1] == "const"


def test_regression_table_keep_and_table2_shows_everything():
    coefficients, fit = coefficient_frames()
    kept = tables.regression_table(coefficients, fit, 3, keep=["mother_away", "girl"])
    assert kept.terms == ("mother_away", "girl")
    # Age is a control left out by `keep`: the Controls row says so; dropped moderators are just dropped.
    assert kept.extra_rows == (("Controls", ("Yes", "Yes")),)
    assert any("Controls (age)" in note for note in kept.notes)
    table2 = tables.regression_table(coefficients, fit, 2)
    assert table2.extra_rows == ()


def test_regression_table_refuses_a_missing_table():
    coefficients, fit = coefficient_frames()
    with pytest.raises(ValueError, match="Table 4"):
        tables.regression_table(coefficients, fit, 4, se_type="HC3")


class CellCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self.tags, self._in_cell = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_cell = tag in ("td", "th", "caption")
        if self._in_cell:
            self.cells.append("")

    def handle_endtag(self, tag):
        self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self.cells[-1] += data


def test_renderers_share_one_grid(tmp_path):
    coefficients, fit = coefficient_frames()
    table = tables.regression_table(coefficients, fit, 4)
    grid = table.grid()

    markdown = tables.render_markdown(table)
    assert markdown.startswith(f"**{grid.title}**")
    assert "| Mother away × School belonging | -3.244* | " in markdown

    parser = CellCollector()
    parser.feed(tables.render_html(table))
    assert parser.tags.count("table") == 1
    assert "-3.244*" in parser.cells and "(1.390)" in parser.cells

    latex = tables.render_latex(table)
    assert r"\begin{tabular}{lcc}" in latex
    assert r"Mother away $\times$ School belonging & -3.244* &  \\" in latex

    rows = list(csv.reader(io.StringIO(tables.render_csv(table))))
    assert rows[0] == list(grid.header)
    assert rows[1:] == [list(r.cells) for r in grid.rows]

    table_1 = tables.descriptive_table(tables.table1(six_children(), "t"))
    written = tables.write_tables({"table_4": table, "table_1": table_1}, tmp_path)
    assert sorted(p.name for p in written) == sorted(
        f"{stem}.{ext}" for stem in ("table_1", "table_4") for ext in ("md", "html", "tex", "csv")
    )
    assert (tmp_path / "table_4.md").read_text(encoding="utf-8") == markdown


@pytest.mark.parametrize(
    "text, escaped",
    [
        ("50%", r"50\%"),  # a percent sign would start a LaTeX comment
        ("mother_edu", r"mother\_edu"),  # underscores are subscripts in LaTeX
        ("A & B", r"A \& B"),  # an ampersand would split a cell
    ],
)
def test_latex_escape(text, escaped):
    assert tables.latex_escape(text) == escaped


def test_html_escapes_cells():
    grid = tables.TableGrid("<b>t</b>", ("", "x"), (tables.GridRow(("a<b", "c&d")),))
    rendered = tables.render_html(grid)
    assert "<b>t</b>" not in rendered and "&lt;b&gt;t&lt;/b&gt;" in rendered
    assert "a&lt;b" in rendered and "c&amp;d" in rendered
