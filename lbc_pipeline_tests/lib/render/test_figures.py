"""Figures are read before any table: an interaction line drawn beyond the data, a blank
image, or a file that changes on every run (so that nobody can tell a real change from
noise) would each mislead. The report must show them inside its single file, and a
browser must be able to decode every one of them.
"""

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
from matplotlib.image import imread

from lbc_pipeline.lib.marts import missing_data, moderation, robustness, sensitivity
from lbc_pipeline.lib.render import figure_files, figures, report, sensitivity_sections
from lbc_pipeline_tests.lib.marts.test_sensitivity import clustered_sample
from lbc_pipeline_tests.lib.render.test_report import ReportParser, base_context  # noqa: F401 (fixture)

FLOW = pl.DataFrame({
    "wave": ["w1"] * 3, "step_order": [1, 2, 3], "step": ["distributed", "valid", "analysed"],
    "n_before": [300, 300, 260], "n_excluded": [0, 40, 60], "n_after": [300, 260, 200],
    "reason": ["questionnaires handed out", "invalid questionnaire", "missing value on a model variable"],
})
REASONS = pl.DataFrame({
    "wave": ["w1"] * 3, "step": ["valid", "analysed", "analysed"],
    "reason": ["largely_blank", "missing_mother_edu", "missing_belong"], "reason_order": [3, 14, 16],
    "n_primary": [40, 45, 15], "n_any": [40, 50, 20],
})


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    return clustered_sample(240, seed=31)


@pytest.fixture(scope="module")
def drawn(sample, base_context, tmp_path_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("figures")
    slopes, jn = moderation.explain_moderation(sample, "w1")
    files = figures.draw_wave_figures(sample, base_context.coefficients, FLOW, REASONS, jn, folder)
    return folder, files, jn


def test_every_figure_is_written_as_svg_and_png_and_listed(drawn):
    folder, files, _ = drawn
    stems = [f.stem for f in files]
    assert stems[:2] == ["sample_flow", "depression_by_group"]
    assert {f"interaction_model{k}" for k in range(1, 7)} <= set(stems)
    assert {f"jn_model{k}" for k in range(1, 7)} <= set(stems)
    assert {"coefficients_table2", "coefficients_table3", "coefficients_table4"} <= set(stems)
    assert [f.stem for f in figure_files.read_figures(folder)] == stems
    for f in files:
        assert f.svg.read_text(encoding="utf-8").lstrip().startswith("<?xml")


def test_every_png_decodes_and_is_not_blank(drawn):
    _, files, _ = drawn
    for f in files:
        pixels = imread(f.png)[..., :3]
        assert pixels.shape[0] > 200 and pixels.shape[1] > 300, f.stem
        inked = (pixels.min(axis=2) < 0.9).mean()  # share of pixels that are not (near) white
        assert 0.01 < inked < 0.9, (f.stem, inked)


def test_figures_are_byte_identical_on_rerun(sample, base_context, drawn, tmp_path):  # noqa: F811
    folder, files, jn = drawn
    again = figures.draw_wave_figures(sample, base_context.coefficients, FLOW, REASONS, jn, tmp_path / "again")
    for a, b in zip(files, again):
        assert a.png.read_bytes() == b.png.read_bytes(), a.stem
        assert a.svg.read_bytes() == b.svg.read_bytes(), a.stem
    assert "<dc:date>" not in files[0].svg.read_text(encoding="utf-8")  # no creation time in the file


def test_forked_writers_write_the_same_bytes_as_one_process(sample, base_context, drawn, tmp_path):  # noqa: F811
    _, files, jn = drawn
    built = figures.build_figures(sample, base_context.coefficients, FLOW, REASONS, jn)
    one = figures.write_figures(built, tmp_path / "one", workers=1)
    built = figures.build_figures(sample, base_context.coefficients, FLOW, REASONS, jn)
    three = figures.write_figures(built, tmp_path / "three", workers=3)
    assert [f.stem for f in one] == [f.stem for f in three] == [f.stem for f in files]
    for a, b in zip(one, three):
        assert a.png.read_bytes() == b.png.read_bytes(), a.stem
        assert a.svg.read_bytes() == b.svg.read_bytes(), a.stem
    assert (tmp_path / "one" / figure_files.INDEX_FILE).read_bytes() == (tmp_path / "three" / figure_files.INDEX_FILE).read_bytes()


def test_a_figure_that_cannot_be_written_fails_the_forked_write(sample, base_context, tmp_path):  # noqa: F811
    built = figures.build_figures(sample, base_context.coefficients, FLOW, REASONS)
    stem, title, caption, fig = built[3]
    fig.axes[0].text(0.5, 0.5, "$\\notacommand{$")  # mathtext that fails to parse when the figure is drawn
    with pytest.raises(ValueError):
        figures.write_figures(built, tmp_path / "broken", workers=2)
    assert not (tmp_path / "broken" / figure_files.INDEX_FILE).exists()


def test_interaction_lines_stay_within_each_groups_observed_range(sample):
    # the mother-away group holds no child with belonging 1: its line must start at 2
    sample = sample.filter(~((pl.col("migration_group") == "mother") & (pl.col("belong") == 1)))
    fit = moderation.fit_table4(sample)[0]
    ax = figures.interaction_figure(fit).axes[0]
    assert len(ax.lines) == 4  # one per migration group, in moderation.GROUPS order
    for line, group in zip(ax.lines, moderation.GROUPS):
        belong = sample.filter(pl.col("migration_group") == group)["belong"].to_numpy()
        x = line.get_xdata()
        assert (x.min(), x.max()) == (belong.min(), belong.max()), group
    mother = sample.filter(pl.col("migration_group") == "mother")["belong"]
    assert mother.min() == 2


def test_flow_diagram_shows_every_count(drawn):
    _, files, _ = drawn
    svg = next(f for f in files if f.stem == "sample_flow").svg.read_text(encoding="utf-8")
    for text in ("n = 300", "n = 260", "n = 200", "Excluded: 40", "largely blank: 40", "missing mother edu: 45"):
        assert text in svg, text  # svg.fonttype none keeps the text searchable


def full_context(base, sample, folder):
    """The report context with every sensitivity section (MI with 2 imputations)."""
    slopes, jn = moderation.explain_moderation(sample, "w1")
    cluster, icc = sensitivity.clustering_sensitivity(sample, "w1")
    frame = sample.with_columns(pl.col(c).cast(pl.Float64) for c in missing_data.NUMERIC_VARIABLES).with_columns(
        status=pl.lit("analysed"))
    mcar = missing_data.mcar_test(frame.with_columns(belong=pl.when(pl.col("girl") == 1).then(None).otherwise(pl.col("belong"))), "w1")
    mi = missing_data.multiple_imputation(frame, frame, "w1", m=2)
    coefficients = base.coefficients
    matrix = robustness.robustness_matrix(coefficients, cluster, mi, "w1")
    marts = {"marts.simple_slopes": slopes, "marts.johnson_neyman": jn, "marts.cluster_sensitivity": cluster,
             "marts.multilevel_icc": icc, "marts.mcar_test": mcar, "marts.mi_coefficients": mi,
             "marts.robustness": matrix}
    files = figure_files.read_figures(folder)
    return dataclasses.replace(base, extra_sections=sensitivity_sections.sensitivity_sections(marts, files))


@pytest.fixture(scope="module")
def full_report(base_context, sample, drawn) -> str:  # noqa: F811
    return report.render_html_report(full_context(base_context, sample, drawn[0]))


def test_report_embeds_the_figures_and_the_sensitivity_sections(full_report):
    parser = ReportParser()
    parser.feed(full_report)
    assert all(ref.startswith("data:image/png;base64,") for ref in parser.external)  # still one self-contained file
    assert "script" not in parser.tags
    for anchor in ("figures", "moderation", "clustering", "missing-data", "robustness-matrix"):
        assert anchor in parser.ids
    assert full_report.count('<img src="data:image/png;base64,') == 17
    assert {f"fig-interaction_model{k}" for k in range(1, 7)} <= set(parser.ids)


def test_sections_of_absent_marts_are_left_out():
    assert sensitivity_sections.sensitivity_sections({}, []) == ()


# A copy of the report with this script appended checks, in the browser, that every image
# decoded and that its pixels are not all one colour; the result lands in the DOM.
CHECK_SCRIPT = """<script>
window.addEventListener('load', () => {
  const out = [...document.images].map(img => {
    const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
    const d = c.width ? ctx.getImageData(0, 0, c.width, c.height).data : [];
    let inked = 0; for (let i = 0; i < d.length; i += 4) { if (Math.min(d[i], d[i+1], d[i+2]) < 230) inked++; }
    return {alt: img.alt, width: img.naturalWidth, complete: img.complete, inked: d.length ? inked / (d.length / 4) : 0};
  });
  const pre = document.createElement('pre'); pre.id = 'image-check'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def images_in_chromium(html_path: Path, tmp_path: Path) -> list[dict]:
    """Open a copy of the page with CHECK_SCRIPT in headless Chromium; return its findings."""
    probe = tmp_path / "probe.html"
    probe.write_text(html_path.read_text(encoding="utf-8").replace("</body>", CHECK_SCRIPT + "</body>"), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=10000"]
    dom = subprocess.run([chromium(), *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    start = dom.stdout.index('<pre id="image-check">') + len('<pre id="image-check">')
    return json.loads(dom.stdout[start:dom.stdout.index("</pre>", start)].replace("&quot;", '"').replace("&amp;", "&"))


def test_report_images_decode_and_are_not_blank_in_headless_chromium(full_report, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(full_report, encoding="utf-8")
    found = images_in_chromium(page, tmp_path)
    assert len(found) == 17
    for image in found:
        assert image["complete"] and image["width"] > 300, image
        assert 0.01 < image["inked"] < 0.9, image


def test_the_browser_check_sees_a_blank_and_a_broken_image(tmp_path):
    # negative case: the probe must report a white image as blank and a corrupt one as undecoded
    white = tmp_path / "white.png"
    from matplotlib.figure import Figure

    Figure(figsize=(4, 3)).savefig(white, format="png", dpi=100)
    page = tmp_path / "page.html"
    page.write_text(f'<html><body><img alt="white" src="{figure_files.png_data_uri(white)}">'
                    '<img alt="broken" src="data:image/png;base64,iVBORw0KGgo="></body></html>', encoding="utf-8")
    found = {image["alt"]: image for image in images_in_chromium(page, tmp_path)}
    assert found["white"]["width"] == 400 and found["white"]["inked"] == 0
    assert found["broken"]["width"] == 0
