"""The wave's figures, drawn with matplotlib and written as SVG and PNG.

Figures (file stems):
- `interaction_model<k>`: predicted depression against the Table 4 Model k moderator for
  each migration group (controls at their means), 95% CI bands, observed range only.
- `jn_model<k>`: each group's effect on depression (against no parent away) along the
  moderator with its 95% CI; shaded where it is significant at 0.05 (Johnson-Neyman).
- `coefficients_table<n>`: every coefficient of Table n (as published) with its 95% CI
  under the three SE types.
- `sample_flow`: the CONSORT-style flow from questionnaires handed out to children analysed,
  with the reasons for leaving.
- `depression_by_group`: the distribution of the depression score by migration group.

Files are byte-identical on rerun: the object-oriented API (no pyplot state), the Agg
backend, a fixed SVG hash salt, no creation date or software tag in the files, and fonts
shipped with matplotlib (DejaVu Sans).

Writing (laying out, rasterising, encoding) costs far more than drawing the figures. Where
the platform forks (Linux), the drawn figures are written by a pool of forked processes, one
per available core: the children inherit the figures and matplotlib already imported, write
the same bytes, and the parent waits for them (a failure in a child fails the write).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from matplotlib import rc_context  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

from lbc_pipeline.lib.marts import moderation  # noqa: E402
from lbc_pipeline.lib.parallel import fork_map  # noqa: E402
from lbc_pipeline.lib.marts.models import SE_TYPES  # noqa: E402
from lbc_pipeline.lib.marts.tables import term_label  # noqa: E402
from lbc_pipeline.lib.render.figure_files import INDEX_FILE, FigureFile  # noqa: E402

RC = {
    "svg.hashsalt": "lbc_pipeline",
    "svg.fonttype": "none",  # text stays text: smaller files, faster to write (the PNG is what the report embeds)
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "path.simplify": False,
}
PNG_DPI = 110
SVG_METADATA = {"Date": None, "Creator": None}
PNG_METADATA = {"Software": None}

GROUP_COLOURS = {"none": "#4d4d4d", "mother": "#c0392b", "father": "#2471a3", "both": "#7d3c98"}
GROUP_LABELS = {"none": "No parent away", "mother": "Mother away", "father": "Father away", "both": "Both away"}
SE_COLOURS = {"nonrobust": "#1b1b1b", "HC3": "#d35400", "cluster_school": "#16a085"}


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def interaction_figure(fit: moderation.ModerationFit) -> Figure:
    """Predicted depression by group along the moderator (each group's observed range), 95% CI bands."""
    lines = moderation.prediction_lines(fit)
    fig = new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    for group in moderation.GROUPS:
        part = lines.filter(pl.col("migration_group") == group)
        x = part["moderator_value"].to_numpy()
        colour = GROUP_COLOURS[group]
        ax.fill_between(x, part["ci_low"].to_numpy(), part["ci_high"].to_numpy(), color=colour, alpha=0.15, linewidth=0)
        ax.plot(x, part["predicted"].to_numpy(), color=colour, label=GROUP_LABELS[group], linewidth=1.8)
    label = term_label(fit.spec.moderator)
    ax.set_xlabel(f"{label} (raw scale; each line over its group's observed range)")
    ax.set_ylabel("Predicted depression (controls at means)")
    ax.set_title(f"Table 4 Model {fit.spec.model_no}: depression by {label.lower()} and group")
    ax.legend(frameon=False, fontsize=8)
    return fig


def jn_figure(fit: moderation.ModerationFit, jn: pl.DataFrame) -> Figure:
    """Each group's effect along the moderator with its 95% CI; significant stretches shaded."""
    fig = new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    grid = np.linspace(fit.moderator_raw.min(), fit.moderator_raw.max(), 81)
    for i, group in enumerate(moderation.GROUP_TERMS):
        colour = GROUP_COLOURS[group]
        rows = [moderation.linear_inference(fit, moderation.group_effect_gradient(fit, group, v), "nonrobust") for v in grid]
        est = np.array([r["estimate"] for r in rows])
        ax.fill_between(grid, [r["ci_low"] for r in rows], [r["ci_high"] for r in rows], color=colour, alpha=0.12, linewidth=0)
        ax.plot(grid, est, color=colour, linewidth=1.8, label=GROUP_LABELS[group])
        regions = jn.filter((pl.col("migration_group") == group) & (pl.col("se_type") == "nonrobust") & pl.col("significant"))
        for r in regions.iter_rows(named=True):
            ax.axvspan(r["low"], r["high"], ymin=0.035 * i, ymax=0.035 * i + 0.03, color=colour, alpha=0.8, linewidth=0)
        for b in [float(x) for x in regions["bounds"].head(1).str.split(", ").explode().to_list() if x not in ("none", None)]:
            if grid[0] < b < grid[-1]:
                ax.axvline(b, color=colour, linestyle="--", linewidth=0.8)
    ax.axhline(0, color="#888888", linewidth=0.8)
    label = term_label(fit.spec.moderator)
    ax.set_xlabel(f"{label} (raw scale, observed range)")
    ax.set_ylabel("Effect on depression vs no parent away")
    ax.set_title(f"Table 4 Model {fit.spec.model_no}: Johnson-Neyman (bars: significant at 0.05)")
    ax.legend(frameon=False, fontsize=8)
    return fig


def coefficient_figure(coefficients: pl.DataFrame, table_no: int) -> Figure:
    """Every coefficient of one table (as published; constant left out) with 95% CIs per SE type."""
    coefs = coefficients.filter((pl.col("specification") == "as_published") & (pl.col("table_no") == table_no)
                                & (pl.col("term") != "const"))
    model_nos = sorted(coefs["model_no"].unique().to_list())
    cols = min(3, len(model_nos))
    rows = int(np.ceil(len(model_nos) / cols))
    fig = new_figure(4.0 * cols, 4.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    offsets = {se: (i - 1) * 0.22 for i, se in enumerate(SE_TYPES)}
    for ax, model_no in zip(axes.ravel(), model_nos):
        model = coefs.filter(pl.col("model_no") == model_no)
        terms = model.filter(pl.col("se_type") == "nonrobust")["term"].to_list()
        y = np.arange(len(terms))[::-1]
        for se in SE_TYPES:
            part = {r["term"]: r for r in model.filter(pl.col("se_type") == se).iter_rows(named=True)}
            est = np.array([part[t]["estimate"] for t in terms])
            lo = np.array([part[t]["ci_low"] for t in terms])
            hi = np.array([part[t]["ci_high"] for t in terms])
            ax.errorbar(est, y + offsets[se], xerr=[est - lo, hi - est], fmt="o", markersize=2.5,
                        color=SE_COLOURS[se], linewidth=0.9, label=se)
        ax.axvline(0, color="#888888", linewidth=0.8)
        ax.set_yticks(y, [term_label(t) for t in terms], fontsize=7)
        ax.set_title(f"Model {model_no}", fontsize=9)
        ax.set_xlabel("Estimate (95% CI)", fontsize=8)
    for ax in axes.ravel()[len(model_nos):]:
        ax.set_visible(False)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(SE_TYPES), frameon=False, fontsize=8)
    fig.suptitle(f"Table {table_no}: coefficients with 95% CIs under three standard-error types")
    return fig


def flow_figure(flow: pl.DataFrame, reasons: pl.DataFrame) -> Figure:
    """CONSORT-style: a box per step (n after it), a side box per exclusion with its reasons."""
    flow = flow.sort("step_order")
    n = flow.height
    fig = new_figure(8.5, 1.45 * n + 0.6)
    ax = fig.add_subplot()
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.2, 1.45 * n)
    ax.axis("off")

    def box(x: float, y: float, w: float, h: float, text: str, size: float = 8.5) -> None:
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.03",
                                    facecolor="#f4f6f7", edgecolor="#34495e", linewidth=1))
        ax.text(x, y, text, ha="center", va="center", fontsize=size)

    step_labels = {"distributed": "Questionnaires handed out", "returned": "Returned", "valid": "Valid",
                   "parents_alive": "Both parents alive", "analysed": "Analysed (in the models)"}
    for i, r in enumerate(flow.iter_rows(named=True)):
        y = 1.45 * (n - i) - 0.8
        box(3.0, y, 3.6, 0.55, f"{step_labels.get(r['step'], r['step'])}\nn = {r['n_after']}", 9)
        if i > 0:
            ax.annotate("", xy=(3.0, y + 0.3), xytext=(3.0, y + 1.15),
                        arrowprops={"arrowstyle": "->", "color": "#34495e"})
        if r["n_excluded"] and r["step"] != "distributed":
            why = reasons.filter((pl.col("step") == r["step"]) & (pl.col("n_primary") > 0)).sort("reason_order")
            lines = [f"{x['reason'].replace('_', ' ')}: {x['n_primary']}" for x in why.iter_rows(named=True)]
            if len(lines) > 6:  # keep the box legible: the largest reasons, the rest summed
                top = why.sort(["n_primary", "reason_order"], descending=[True, False]).head(5)
                rest = why.height - 5
                lines = [f"{x['reason'].replace('_', ' ')}: {x['n_primary']}" for x in top.iter_rows(named=True)]
                lines.append(f"{rest} other reasons: {int(why['n_primary'].sum() - top['n_primary'].sum())}")
            ym = y + 0.72
            ax.annotate("", xy=(5.6, ym), xytext=(3.0, ym), arrowprops={"arrowstyle": "->", "color": "#7f8c8d"})
            box(7.7, ym, 4.2, 0.18 + 0.145 * (len(lines) + 1),
                f"Excluded: {r['n_excluded']}\n" + "\n".join(lines), 7)
    ax.set_title("Sample flow (primary reason of each questionnaire that left)")
    return fig


def depression_figure(sample: pl.DataFrame) -> Figure:
    """Box plots of the depression score by migration group, with each group's n and mean."""
    fig = new_figure(6.0, 3.8)
    ax = fig.add_subplot()
    data, labels = [], []
    for group in moderation.GROUPS:
        values = sample.filter(pl.col("migration_group") == group)["depression"].cast(pl.Float64).to_numpy()
        data.append(values)
        labels.append(f"{GROUP_LABELS[group]}\nn = {values.size}")
    parts = ax.boxplot(data, tick_labels=labels, patch_artist=True, showmeans=True,
                       meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black", "markersize": 4})
    for patch, group in zip(parts["boxes"], moderation.GROUPS):
        patch.set_facecolor(GROUP_COLOURS[group])
        patch.set_alpha(0.35)
    ax.set_ylabel("Depression score (6-30)")
    ax.set_title("Depression by migration group (diamond: mean)")
    return fig


def write_figure(fig: Figure, folder: Path, stem: str) -> tuple[Path, Path]:
    """Write one figure as SVG and PNG, without dates or version tags."""
    folder.mkdir(parents=True, exist_ok=True)
    svg, png = folder / f"{stem}.svg", folder / f"{stem}.png"
    with rc_context(RC):
        fig.savefig(png, format="png", dpi=PNG_DPI, metadata=PNG_METADATA)
        fig.set_layout_engine(None)  # keep the constrained layout of the first save: lay out once (None, not
        # "none": "none" leaves a placeholder engine, and savefig then draws the whole figure twice)
        fig.savefig(svg, format="svg", metadata=SVG_METADATA)
    return svg, png


def build_figures(sample: pl.DataFrame, coefficients: pl.DataFrame, flow: pl.DataFrame,
                  flow_reasons: pl.DataFrame, jn: pl.DataFrame | None = None) -> list[tuple[str, str, str, Figure]]:
    """Draw every figure of a wave: (stem, title, caption, figure), in report order."""
    with rc_context(RC):
        fits = moderation.fit_table4(sample)
        jn = jn if jn is not None else moderation.johnson_neyman(sample, "")
        out = [("sample_flow", "Sample flow", "From questionnaires handed out to children in the models; "
                "side boxes give the primary reason of each questionnaire that left.", flow_figure(flow, flow_reasons)),
               ("depression_by_group", "Depression by migration group",
                "Box plots of the depression score (sum of six items, 6-30) in the analysis sample.", depression_figure(sample))]
        for fit in fits:
            k, label = fit.spec.model_no, term_label(fit.spec.moderator)
            out.append((f"interaction_model{k}", f"Interaction plot, Table 4 Model {k} ({label})",
                        "Predicted depression by group along the moderator (controls at their means), 95% CI "
                        "bands (conventional SEs), each line over the values observed in its group.", interaction_figure(fit)))
            out.append((f"jn_model{k}", f"Johnson-Neyman plot, Table 4 Model {k} ({label})",
                        "Each group's effect on depression against no parent away, 95% CI; bars at the bottom "
                        "and dashed lines mark where it is significant at 0.05 (conventional SEs).",
                        jn_figure(fit, jn.filter(pl.col("model_no") == k))))
        for table_no in (2, 3, 4):
            out.append((f"coefficients_table{table_no}", f"Coefficients of Table {table_no}",
                        "Estimates (as published coding) with 95% CIs under conventional, HC3 and "
                        "school-clustered standard errors (four clusters: the clustered CIs are unreliable).",
                        coefficient_figure(coefficients, table_no)))
    return out


def write_figures(figures: list[tuple[str, str, str, Figure]], folder: Path,
                  workers: int | None = None) -> list[FigureFile]:
    """Write each figure as SVG and PNG under `folder`, and an index (stem, title, caption) in order.

    `workers` > 1 writes them in that many forked processes (default: one per core, see
    `lib/parallel.fork_map`); 1 writes them here. The files are the same either way.
    """
    folder.mkdir(parents=True, exist_ok=True)
    # largest first (the coefficient panels), so that no worker is left with a big one at the end
    order = sorted(range(len(figures)), key=lambda i: -figures[i][3].get_size_inches().prod())
    fork_map(lambda f: write_figure(f[3], folder, f[0]), figures, workers, order)
    written = [FigureFile(stem, title, caption, folder / f"{stem}.svg", folder / f"{stem}.png")
               for stem, title, caption, _ in figures]
    index = [{"stem": f.stem, "title": f.title, "caption": f.caption} for f in written]
    (folder / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    return written


def draw_wave_figures(sample: pl.DataFrame, coefficients: pl.DataFrame, flow: pl.DataFrame,
                      flow_reasons: pl.DataFrame, jn: pl.DataFrame, folder: Path) -> list[FigureFile]:
    """Draw and write every figure of a wave under `folder` (old figure files removed first)."""
    if folder.exists():
        for old in [*folder.glob("*.svg"), *folder.glob("*.png"), folder / INDEX_FILE]:
            old.unlink(missing_ok=True)
    return write_figures(build_figures(sample, coefficients, flow, flow_reasons, jn), folder)
