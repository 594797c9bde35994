"""The interviews' section of the HTML report: the registry, the code matrix as a heat map
(an inline SVG drawn here, no plotting library), and the joint display with its examples.

Everything shown comes from staging and marts tables, whose texts are redacted; every piece
of text is escaped.
"""

from __future__ import annotations

import polars as pl

from lbc_pipeline.lib.render.report import esc, fmt, frame_table, paragraph, section

SECTION_KEY = "interviews"
ANCHOR = "interviews"
SYNTHETIC_NOTE = ("SYNTHETIC interview demo set: written for this product from templates, not the study's "
                  "interviews and not the paper's excerpts")
CELL_W, CELL_H, LABEL_W, HEAD_H = 84, 22, 430, 60
COLUMNS = (("role_group", "child"), ("role_group", "teacher"), ("role_group", "parent"), ("role_group", "grandparent"),
           ("migration_group", "none"), ("migration_group", "mother"), ("migration_group", "father"),
           ("migration_group", "both"))


def heat_colour(share: float) -> str:
    """White (0) to dark blue (1), linear in each RGB channel."""
    share = min(max(share, 0.0), 1.0)
    low, high = (255, 255, 255), (8, 48, 107)
    r, g, b = (round(lo + (hi - lo) * share) for lo, hi in zip(low, high))
    return f"#{r:02x}{g:02x}{b:02x}"


def heat_map_svg(frequencies: pl.DataFrame, codes: pl.DataFrame) -> str:
    """Codes (rows, in code-book order, indented by level) x role groups and the child's
    migration groups (columns): informants coded / interviews in the group, as colour and count."""
    cells = {(r["code"], r["dimension"], r["grp"]): r for r in frequencies.iter_rows(named=True)}
    columns = [c for c in COLUMNS if any(k[1:] == c for k in cells)]
    rows = codes.sort("source_row").iter_rows(named=True)
    width = LABEL_W + CELL_W * len(columns) + 10
    parts, y = [], HEAD_H
    for x, (dimension, grp) in enumerate(columns):
        cx = LABEL_W + CELL_W * x + CELL_W / 2
        size = next((r["n_interviews_in_group"] for k, r in cells.items() if k[1:] == (dimension, grp)), 0)
        label = f"{grp} ({size})" if dimension == "role_group" else f"{grp} ({size})"
        parts.append(f'<text x="{cx:.0f}" y="{HEAD_H - 8}" text-anchor="middle" font-size="11">{esc(label)}</text>')
    parts.append(f'<text x="{LABEL_W + CELL_W * 2:.0f}" y="16" text-anchor="middle" font-size="12" font-weight="bold">informant\'s role group</text>')
    parts.append(f'<text x="{LABEL_W + CELL_W * 6:.0f}" y="16" text-anchor="middle" font-size="12" font-weight="bold">child\'s parents away</text>')
    for code in rows:
        indent = 12 * (code["level"] - 1)
        tag = f"[{code['hypothesis']}, {code['stance']}] " if code["hypothesis"] else f"[{code['stance']}] "
        parts.append(f'<text x="{4 + indent}" y="{y + 15}" font-size="11">{esc(tag + (code["label"] or code["code"]))}</text>')
        for x, (dimension, grp) in enumerate(columns):
            cell = cells.get((code["code"], dimension, grp))
            share = (cell["share_informants"] or 0.0) if cell else 0.0
            count = cell["n_informants"] if cell else 0
            fill = heat_colour(share)
            ink = "#ffffff" if share > 0.5 else "#1b1b1b"
            cx = LABEL_W + CELL_W * x
            parts.append(f'<rect x="{cx}" y="{y}" width="{CELL_W - 2}" height="{CELL_H - 2}" fill="{fill}" stroke="#ccc">'
                         f'<title>{esc(code["code"])} / {esc(grp)}: {count} informants, {share:.0%}</title></rect>')
            parts.append(f'<text x="{cx + CELL_W / 2 - 1:.0f}" y="{y + 15}" text-anchor="middle" font-size="11" fill="{ink}">{count}</text>')
        y += CELL_H
    height = y + 10
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Code matrix heat map" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif">'
            + "".join(parts) + "</svg>")


def interviews_section(wave: str, synthetic: bool, registry: pl.DataFrame, quarantine: pl.DataFrame,
                       frequencies: pl.DataFrame, codes: pl.DataFrame, triangulation: pl.DataFrame,
                       examples: pl.DataFrame) -> str:
    """The report section (HTML), or a short note when the wave delivered no interviews."""
    if registry.is_empty():
        return section(ANCHOR, "Interviews", paragraph(f"Wave {wave} delivered no interviews."))
    parts = []
    if synthetic:
        parts.append(f'<div class="banner" role="note">{esc(SYNTHETIC_NOTE)}</div>')
    total = registry.filter(pl.col("dimension") == "total")
    n = int(total["n_interviews"][0]) if total.height else 0
    parts.append(paragraph(
        f"{n} interviews passed every rule; {quarantine.height} delivered row(s) broke a rule and are quarantined "
        "(staging.interview_quarantine). Names of people and schools in excerpts are replaced by role placeholders; "
        "informants are cited by their pseudonymous code."))
    shown = registry.rename({"grp": "group", "n_interviews": "interviews", "duration_min_min": "shortest",
                             "duration_min_median": "median", "duration_min_max": "longest", "first_date": "first",
                             "last_date": "last"})
    parts.append(frame_table(
        shown, ["dimension", "group", "interviews", "expected", "shortest", "median", "longest", "first", "last"],
        "Interview registry (marts.interview_registry): interviews that passed the rules, expected by wave.yaml, "
        "length in minutes, first and last date",
        formats={"median": fmt(1)},
        flag=lambda r: r["matches_expected"] is False))
    parts.append("<h3>Code matrix</h3>")
    parts.append(paragraph("Informants coded with each code, by the informant's role group and by the child's "
                           "parents' migration (teachers not in the second block); colour: share of the group's "
                           "interviews (marts.interview_code_frequencies)."))
    parts.append(f'<figure id="code-matrix">{heat_map_svg(frequencies, codes)}</figure>')
    parts.append("<h3>Joint display: survey and interviews</h3>")
    shown = triangulation.select(
        pl.format("{} ({})", "hypothesis", "topic").alias("hypothesis"),
        pl.format("{}: {}", "survey_finding", "survey_evidence").alias("survey (Table 4)"),
        pl.format("{} / {} / {}", "n_informants_supports", "n_informants_qualifies", "n_informants_contradicts")
        .alias("interviews: support / qualify / contradict"),
        pl.col("informants_by_role").alias("informants by role"),
        "agreement", pl.col("agreement_note").alias("why"))
    parts.append(frame_table(shown, shown.columns,
                             "Triangulation (marts.triangulation): informants per stance and the agreement label"))
    for t in triangulation.iter_rows(named=True):
        items = examples.filter(pl.col("hypothesis") == t["hypothesis"]).sort("rank")
        if items.is_empty():
            continue
        quotes = "".join(
            f"<li><q>{esc(r['excerpt'])}</q> ({esc(r['informant_code'])}, {esc(r['citation'])}; {esc(r['stance'])})</li>"
            for r in items.iter_rows(named=True))
        parts.append(f"<h4>{esc(t['hypothesis'])} ({esc(t['topic'])}): {esc(t['agreement'])}</h4><ul>{quotes}</ul>")
    return section(ANCHOR, "Interviews", *parts)
