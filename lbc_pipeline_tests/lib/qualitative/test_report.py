"""The report's interview section: a heat map that shows the code matrix's numbers, a hook
that replaces its section instead of piling copies up, and no raw name in the HTML."""

from __future__ import annotations

import re

import polars as pl

from lbc_pipeline.lib.qualitative import marts as qm
from lbc_pipeline.lib.qualitative.privacy import find_leaks
from lbc_pipeline.lib.qualitative.report import SECTION_KEY, heat_colour, heat_map_svg, interviews_section
from lbc_pipeline.lib.render.report import with_section
from lbc_pipeline.synthetic.interviews import generate_demo_set
from lbc_pipeline_tests.lib.qualitative.test_marts import EXPECTED, VERDICTS


def test_heat_colour_runs_from_white_to_dark_blue() -> None:
    assert (heat_colour(0.0), heat_colour(1.0), heat_colour(2.0)) == ("#ffffff", "#08306b", "#08306b")
    assert heat_colour(0.5) == "#8498b5"  # halfway in each channel: (255+8)/2, (255+48)/2, (255+107)/2 rounded


def test_heat_map_draws_one_cell_per_code_and_group(demo_staged) -> None:
    frequencies = qm.code_frequencies(demo_staged.interviews, demo_staged.segments, demo_staged.codes, "2019")
    svg = heat_map_svg(frequencies, demo_staged.codes)
    assert svg.count("<rect") == demo_staged.codes.height * 8  # 4 role groups + 4 migration groups
    row = frequencies.filter((pl.col("code") == "peers.no_disclosure") & (pl.col("grp") == "child")).row(0, named=True)
    assert f"peers.no_disclosure / child: {row['n_informants']} informants" in svg


def _section(demo_staged, survey_raw) -> str:
    registry = qm.registry_summary(demo_staged.interviews, EXPECTED, "2019")
    frequencies = qm.code_frequencies(demo_staged.interviews, demo_staged.segments, demo_staged.codes, "2019")
    triangulation = qm.triangulate(VERDICTS, demo_staged.segments, demo_staged.codes, "2019")
    examples = qm.triangulation_examples(triangulation, demo_staged.segments, demo_staged.codes,
                                         demo_staged.interviews, survey_raw[1], "2019")
    return interviews_section("2019", True, registry, demo_staged.quarantine, frequencies, demo_staged.codes,
                              triangulation, examples)


def test_section_shows_registry_matrix_joint_display_and_no_name(demo_staged, survey_raw, demo_raw) -> None:
    html = _section(demo_staged, survey_raw)
    assert "SYNTHETIC" in html and "<svg" in html and html.count("<table") == 2
    assert all(f"{h} (" in html for h in ("H1", "H2", "H3")) and "complementary" in html
    names = generate_demo_set().planted["value"].to_list() + demo_raw["raw.interviews"]["informant_name"].to_list()
    names += [n for n in survey_raw[0] if n] + survey_raw[1]["school_name"].to_list()
    assert find_leaks({"section": [html]}, names) == []


def test_with_section_replaces_an_earlier_copy() -> None:
    page = "<html><body><p>survey</p></body></html>"
    once = with_section(page, SECTION_KEY, "<section>A</section>")
    twice = with_section(once, SECTION_KEY, "<section>B</section>")
    assert twice == "<html><body><p>survey</p><!-- section:interviews --><section>B</section><!-- /section:interviews --></body></html>"
    assert len(re.findall("<!-- section:interviews -->", twice)) == 1


def test_a_wave_without_interviews_says_so() -> None:
    empty = pl.DataFrame()
    assert "delivered no interviews" in interviews_section("w", False, empty, empty, empty, empty, empty, empty)
