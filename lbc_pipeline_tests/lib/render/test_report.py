"""The HTML report is what people open and forward. It must stand alone (no external
assets, no scripts), say loudly when its numbers come from the synthetic reference wave,
hold every section, and never let text from the data break the page.
"""

import dataclasses
import json
from html.parser import HTMLParser

import polars as pl
import pytest

from lbc_pipeline.config import REFERENCE_DIR
from lbc_pipeline_tests.helpers import random_analytic_sample

from lbc_pipeline.lib.marts import models, replication, tables
from lbc_pipeline.lib.render import report

PUBLISHED_PATH = REFERENCE_DIR / "published_tables.json"
def random_sample(n: int = 200, seed: int = 11) -> pl.DataFrame:
    """An analysis sample with the input contract's columns."""
    return random_analytic_sample(n, seed, wave="w1")


@pytest.fixture(scope="module")
def base_context() -> report.ReportContext:
    """A synthetic wave's report context; tests vary it with dataclasses.replace."""
    sample = random_sample()
    coefficients, fit = models.model_frames(models.fit_every_model(sample, "w1"), "w1")
    published = json.loads(PUBLISHED_PATH.read_text(encoding="utf-8"))
    return report.ReportContext(
        wave="w1",
        synthetic=True,
        sample_flow=pl.DataFrame(
            {
                "step_order": [1, 2],
                "step": ["distributed", "analysed"],
                "n_before": [None, 250],
                "n_excluded": [None, 50],
                "n_after": [250, 200],
                "reason": ["questionnaires handed out", "missing values on model variables"],
            }
        ),
        scale_reliability=pl.DataFrame(
            {"scale": ["depression"], "n": [200], "n_items": [6], "cronbach_alpha": [0.9131]}
        ),
        table1=tables.table1(sample, "w1"),
        coefficients=coefficients,
        fit=fit,
        replication=replication.replicate(coefficients, fit, published, "w1"),
        hypotheses=replication.hypotheses(coefficients, "w1"),
        package_version="0.1.0",
    )


class ReportParser(HTMLParser):
    """Collects tags, ids, captions, external references and the visible text."""

    def __init__(self):
        super().__init__()
        self.tags, self.ids, self.captions, self.external, self.text = [], [], [], [], []
        self._caption = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "caption":
            self._caption = True
            self.captions.append("")
        for name in ("src", "href"):
            if name in attrs and not attrs[name].startswith("#"):
                self.external.append(attrs[name])
        if tag == "link":
            self.external.append(attrs.get("href", "link"))

    def handle_endtag(self, tag):
        if tag == "caption":
            self._caption = False

    def handle_data(self, data):
        self.text.append(data)
        if self._caption:
            self.captions[-1] += data


@pytest.fixture(scope="module")
def synthetic_report(base_context) -> ReportParser:
    parser = ReportParser()
    parser.feed(report.render_html_report(base_context))
    return parser


def test_report_is_self_contained(synthetic_report):
    assert "script" not in synthetic_report.tags
    assert "style" in synthetic_report.tags
    assert synthetic_report.external == []


def test_report_holds_every_section_and_table(synthetic_report):
    for anchor in ("sample-flow", "reliability", "table-1", "tables-2-4", "robustness", "replication", "hypotheses"):
        assert anchor in synthetic_report.ids
    captions = synthetic_report.captions
    for title_start in ("Table 1.", "Table 2.", "Table 3.", "Table 4."):
        assert any(c.startswith(title_start) for c in captions), title_start
    assert "From questionnaires handed out to children in the models" in captions
    text = " ".join(synthetic_report.text)
    assert "Stars agree for" in text
    assert "How the moderators enter the models" in text
    assert "H2 (teacher-student relationships)" in text


def test_synthetic_wave_carries_the_banner(synthetic_report):
    assert "synthetic-banner" in synthetic_report.ids
    assert report.SYNTHETIC_BANNER in " ".join(synthetic_report.text)


def test_real_wave_has_no_banner(base_context):
    parser = ReportParser()
    parser.feed(report.render_html_report(dataclasses.replace(base_context, synthetic=False)))
    assert "synthetic-banner" not in parser.ids
    assert report.SYNTHETIC_BANNER not in " ".join(parser.text)


def test_text_from_the_data_is_escaped(base_context):
    # A reason typed by a person must show as text, never as markup.
    flow = base_context.sample_flow.with_columns(reason=pl.lit('<script>alert("x")</script> & co'))
    html_text = report.render_html_report(dataclasses.replace(base_context, sample_flow=flow))
    assert "<script>" not in html_text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in html_text


def test_specification_differences_lists_only_estimates_that_differ():
    rows = [
        # (specification, term, se_type, estimate)
        ("as_published", "mother_away", "nonrobust", 17.72),  # raw belonging: effect at belonging 0
        ("harmonised", "mother_away", "nonrobust", 3.0),  # centred: effect at mean belonging
        ("as_published", "mother_away:belong", "nonrobust", -3.2),  # interactions do not move
        ("harmonised", "mother_away:belong", "nonrobust", -3.2),
        ("as_published", "mother_away", "HC3", 17.72),  # other SE types are not compared
        ("harmonised", "mother_away", "HC3", 3.0),
    ]
    frame = pl.DataFrame(
        [{"specification": s, "table_no": 4, "model_no": 1, "term": t, "se_type": e, "estimate": b} for s, t, e, b in rows]
    )
    differences = report.specification_differences(frame)
    assert differences.select("term", "as_published", "harmonised").rows() == [("mother_away", 17.72, 3.0)]
    assert differences["difference"][0] == pytest.approx(-14.72)
