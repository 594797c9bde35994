"""The figure files of a wave, read without importing matplotlib (the report and the
Dagster definitions only need the files, not the plotting library)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

INDEX_FILE = "index.json"


@dataclass(frozen=True)
class FigureFile:
    """One written figure: its stem, title, caption and the two files."""

    stem: str
    title: str
    caption: str
    svg: Path
    png: Path


def read_figures(folder: Path) -> list[FigureFile]:
    """The figures a previous `write_figures` left in `folder`, in its order (none if no index)."""
    path = folder / INDEX_FILE
    if not path.exists():
        return []
    return [FigureFile(e["stem"], e["title"], e["caption"], folder / f"{e['stem']}.svg", folder / f"{e['stem']}.png")
            for e in json.loads(path.read_text(encoding="utf-8"))]


def png_data_uri(path: Path) -> str:
    """A PNG file as a data URI, for the single-file report and the Dagster UI."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
