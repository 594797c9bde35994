"""Every path the project reads or writes, and a wave's manifest.

Paths are functions, not constants, so that environment variables set by a test or a
deployment (`LBC_DATA_DIR`, `LBC_DUCKDB_PATH`, ...) take effect without re-importing.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "sql"
PACKAGE_DIR = Path(__file__).resolve().parent
REFERENCE_DIR = PACKAGE_DIR / "reference"
REFERENCE_WAVE = "2019"

RAW_FILE_STEMS = ("questionnaires", "distribution")
SUPPORTED_EXTENSIONS = ("csv", "xlsx", "sav", "dta", "parquet")


def data_dir() -> Path:
    """Root of raw inputs and outputs (`LBC_DATA_DIR`, default `<repo>/data`)."""
    return Path(os.environ.get("LBC_DATA_DIR", PROJECT_ROOT / "data"))


def raw_dir() -> Path:
    """Waves as delivered, one folder per wave (immutable)."""
    return data_dir() / "raw"


def incoming_dir() -> Path:
    """Where new deliveries are dropped for the sensor (`LBC_INCOMING_DIR`)."""
    return Path(os.environ.get("LBC_INCOMING_DIR", data_dir() / "incoming"))


def duckdb_path() -> Path:
    """The warehouse (`LBC_DUCKDB_PATH`, default `data/warehouse/lbc.duckdb`)."""
    return Path(os.environ.get("LBC_DUCKDB_PATH", data_dir() / "warehouse" / "lbc.duckdb"))


def artifacts_dir(wave: str) -> Path:
    """Fitted-model files of one wave."""
    return data_dir() / "artifacts" / wave


def reports_dir(wave: str) -> Path:
    """Publication tables and the HTML report of one wave."""
    return data_dir() / "reports" / wave


def pseudonym_key_path() -> Path:
    """The secret behind `child_key`, kept outside the repository (`LBC_PSEUDONYM_KEY_FILE`)."""
    default = Path.home() / ".config" / "lbc_pipeline" / "pseudonym.key"
    return Path(os.environ.get("LBC_PSEUDONYM_KEY_FILE", default))


@dataclass(frozen=True)
class WaveManifest:
    """What `wave.yaml` says about a wave (or what is assumed without one)."""

    wave: str
    folder: Path
    fieldwork_start: dt.date | None = None
    fieldwork_end: dt.date | None = None
    expected: dict[str, int] = field(default_factory=dict)
    expected_groups: dict[str, int] = field(default_factory=dict)
    synthetic: bool = False
    description: str = ""
    has_manifest: bool = True

    @property
    def has_fieldwork(self) -> bool:
        return self.fieldwork_start is not None and self.fieldwork_end is not None


class ManifestError(ValueError):
    """A wave.yaml that cannot be read or contradicts itself."""


def _date(value: object, what: str, path: Path) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise ManifestError(f"{path}: {what} {value!r} is not a date YYYY-MM-DD") from exc


def read_manifest(folder: Path) -> WaveManifest:
    """The manifest of the wave in `folder`; without `wave.yaml` the wave id is the folder name."""
    path = folder / "wave.yaml"
    if not path.exists():
        return WaveManifest(wave=folder.name, folder=folder, has_manifest=False)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise ManifestError(f"{path}: expected a mapping with at least `wave`")
    fieldwork = doc.get("fieldwork") or {}
    start = _date(fieldwork["start"], "fieldwork.start", path) if "start" in fieldwork else None
    end = _date(fieldwork["end"], "fieldwork.end", path) if "end" in fieldwork else None
    if (start is None) != (end is None):
        raise ManifestError(f"{path}: fieldwork needs both start and end")
    if start and end and start > end:
        raise ManifestError(f"{path}: fieldwork starts {start} after it ends {end}")
    expected = {str(k): int(v) for k, v in (doc.get("expected") or {}).items()}
    unknown = set(expected) - {"distributed", "returned", "valid", "analysed"}
    if unknown:
        raise ManifestError(f"{path}: unknown expected counts {sorted(unknown)}")
    groups = {str(k): int(v) for k, v in (doc.get("expected_groups") or {}).items()}
    return WaveManifest(
        wave=str(doc.get("wave", folder.name)),
        folder=folder,
        fieldwork_start=start,
        fieldwork_end=end,
        expected=expected,
        expected_groups=groups,
        synthetic=bool(doc.get("synthetic", False)),
        description=str(doc.get("description", "")),
    )


def discover_waves(root: Path | None = None) -> list[WaveManifest]:
    """Every wave folder under `root` (default `data/raw`) that holds a questionnaires file."""
    root = root or raw_dir()
    if not root.exists():
        return []
    waves = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if any(folder.glob("questionnaires.*")):
            waves.append(read_manifest(folder))
    return waves


def wave_folder(wave: str) -> Path:
    """The folder that holds wave `wave`: under data/raw, else under data/incoming (where the
    sensor finds new deliveries; they are read in place, never moved or changed)."""
    found = [m.folder for root in (raw_dir(), incoming_dir()) for m in discover_waves(root) if m.wave == wave]
    if not found:
        raise FileNotFoundError(f"no folder under {raw_dir()} or {incoming_dir()} holds wave {wave!r}")
    if len(found) > 1:
        raise FileNotFoundError(f"wave {wave!r} is delivered twice: {', '.join(map(str, found))}; keep one")
    return found[0]
