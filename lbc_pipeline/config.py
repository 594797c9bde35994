"""Every path the project reads or writes, and a wave's manifest.

Paths are functions, not constants, so that environment variables set by a test or a
deployment (`LBC_DATA_DIR`, `LBC_DUCKDB_PATH`, ...) take effect without re-importing.
"""

from __future__ import annotations

import datetime as dt
import os
import re
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
    """The serving warehouse (`LBC_DUCKDB_PATH`, default `data/warehouse/lbc.duckdb`): the
    published waves only, without the raw layer or any personal value. The pipeline never
    opens it for writing; each publication builds a new file and renames it over this one
    (lib/io/publish.py), so readers in any tool never block a run."""
    return Path(os.environ.get("LBC_DUCKDB_PATH", data_dir() / "warehouse" / "lbc.duckdb"))


def releases_dir() -> Path:
    """The published part of each wave, one DuckDB file per wave (`waves/<wave>.duckdb`, and
    the cross-wave marts' `cross_wave.duckdb`), from which every serving file is built; beside
    the serving file (public tier: no raw layer, no personal value)."""
    return duckdb_path().parent / ".releases"


def restricted_dir() -> Path:
    """The restricted tier (`LBC_RESTRICTED_DIR`, default `data/restricted`, mode 0700): each
    wave's working database with its raw layer and personal data, its working files, and the
    personal values the privacy check searches the serving file for."""
    return Path(os.environ.get("LBC_RESTRICTED_DIR", data_dir() / "restricted"))


def working_dir(wave: str) -> Path:
    """The wave's working folder in the restricted tier: `work.duckdb` (every layer of the
    wave, raw included), `artifacts/` and `reports/` (the files its runs write before
    publication) and `personal_values.parquet`."""
    return restricted_dir() / "waves" / wave


def working_path(wave: str) -> Path:
    """The working database of one wave."""
    return working_dir(wave) / "work.duckdb"


def cross_wave_working_path() -> Path:
    """The working database of the cross-wave marts (outside `waves/`: any name is a wave id)."""
    return restricted_dir() / "cross_wave" / "work.duckdb"


VERSIONS_DIR = ".versions"  # data/<kind>/.versions/<wave>/<run>: one publication's files (lib/io/publish.py)


def artifacts_dir(wave: str, working: bool = False) -> Path:
    """Fitted-model files of one wave: the published version (a link to the live version
    folder), or, with `working`, the wave's working folder that runs write into."""
    return _files_dir("artifacts", wave, working)


def reports_dir(wave: str, working: bool = False) -> Path:
    """Publication tables and the HTML report of one wave (published, or the working copy)."""
    return _files_dir("reports", wave, working)


def _files_dir(kind: str, wave: str, working: bool) -> Path:
    return working_dir(wave) / kind if working else data_dir() / kind / wave


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
    """A wave.yaml (or a wave folder's name) that cannot be read or contradicts itself.

    The message is one line: the file, the key at fault and what to do."""


# A wave id names folders (artifacts, reports) and partitions: letters, digits, '-', '_'
# and '.', not starting with a dot (no '..', no '/', no absolute path), at most 64 characters.
WAVE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
WAVE_ID_MAX_LENGTH = 64
EXPECTED_COUNTS = ("distributed", "returned", "valid", "analysed")


def check_wave_id(wave: object, where: str) -> str:
    """`wave` as a safe wave id, or `ManifestError` saying why not (`where`: the file and key)."""
    if isinstance(wave, bool) or not isinstance(wave, (str, int)):
        raise ManifestError(f"{where}: the wave id must be text, got {type(wave).__name__}")
    text = str(wave)
    if not text:
        raise ManifestError(f"{where}: the wave id is empty; write an id such as '2021'")
    if len(text) > WAVE_ID_MAX_LENGTH:
        raise ManifestError(f"{where}: the wave id is {len(text)} characters long (at most {WAVE_ID_MAX_LENGTH})")
    if not WAVE_ID_PATTERN.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise ManifestError(
            f"{where}: wave id {shown!r} may hold only letters, digits, '-', '_' and '.', "
            "and may not start with a dot")
    return text


def _date(value: object, key: str, path: Path) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ManifestError(f"{path}: key {key}: {_short(value)} is not a date YYYY-MM-DD") from None


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _counts(doc: dict, key: str, path: Path, allowed: tuple[str, ...] | None) -> dict[str, int]:
    block = doc.get(key) or {}
    if not isinstance(block, dict):
        raise ManifestError(f"{path}: key {key}: expected a mapping of name: count, got {type(block).__name__}")
    out = {}
    for name, value in block.items():
        if allowed is not None and str(name) not in allowed:
            raise ManifestError(f"{path}: key {key}.{name}: unknown count (known: {', '.join(allowed)})")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ManifestError(f"{path}: key {key}.{name}: {_short(value)} is not a whole number")
        if value < 0:
            raise ManifestError(f"{path}: key {key}.{name}: {value} is negative")
        out[str(name)] = value
    return out


def read_manifest(folder: Path) -> WaveManifest:
    """The manifest of the wave in `folder`; without `wave.yaml` the wave id is the folder name.

    Raises `ManifestError` (one line naming wave.yaml and the key) for YAML that does not parse,
    a document that is not a mapping, an unsafe wave id, a key of the wrong type, a count that
    is not a non-negative whole number, or a fieldwork window that ends before it starts."""
    path = folder / "wave.yaml"
    if not path.exists():
        wave = check_wave_id(folder.name, f"{folder} (no wave.yaml: the folder name is the wave id)")
        return WaveManifest(wave=wave, folder=folder, has_manifest=False)
    if path.is_symlink() and not path.resolve().is_relative_to(folder.resolve()):
        raise ManifestError(f"{path}: is a symbolic link to a file outside the wave folder; deliver the file itself")
    if not path.is_file():
        raise ManifestError(f"{path}: not a regular file; deliver wave.yaml as a file")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ManifestError(f"{path}: not valid YAML{where} ({problem}); fix the file") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    doc = {} if doc is None else doc
    if not isinstance(doc, dict):
        raise ManifestError(f"{path}: expected a mapping with at least the key wave, got a {type(doc).__name__}")
    wave = check_wave_id(doc.get("wave", folder.name), f"{path}: key wave")
    fieldwork = doc.get("fieldwork") or {}
    if not isinstance(fieldwork, dict):
        raise ManifestError(f"{path}: key fieldwork: expected start: and end: dates, got {type(fieldwork).__name__}")
    start = _date(fieldwork["start"], "fieldwork.start", path) if "start" in fieldwork else None
    end = _date(fieldwork["end"], "fieldwork.end", path) if "end" in fieldwork else None
    if (start is None) != (end is None):
        raise ManifestError(f"{path}: key fieldwork: needs both start and end")
    if start and end and start > end:
        raise ManifestError(f"{path}: key fieldwork.end: {end} is before fieldwork.start {start}")
    expected = _counts(doc, "expected", path, EXPECTED_COUNTS)
    groups = _counts(doc, "expected_groups", path, None)
    synthetic = doc.get("synthetic", False)
    if not isinstance(synthetic, bool):
        raise ManifestError(f"{path}: key synthetic: {_short(synthetic)} is not true or false")
    return WaveManifest(
        wave=wave,
        folder=folder,
        fieldwork_start=start,
        fieldwork_end=end,
        expected=expected,
        expected_groups=groups,
        synthetic=synthetic,
        description=str(doc.get("description", "")),
    )


@dataclass(frozen=True)
class WaveScan:
    """The wave folders under one root: the readable manifests, and the folders whose
    manifest could not be read (folder -> one-line reason). One bad folder never hides
    the others."""

    manifests: list[WaveManifest]
    problems: dict[Path, str]


def scan_waves(root: Path | None = None) -> WaveScan:
    """Every wave folder under `root` (default `data/raw`) that holds a questionnaires file."""
    root = root or raw_dir()
    waves, problems = [], {}
    try:
        folders = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    except FileNotFoundError:
        return WaveScan([], {})
    except OSError as exc:
        return WaveScan([], {root: f"{root}: cannot list the folder ({exc.strerror})"})
    for folder in folders:
        try:
            if not folder.is_dir() or not any(folder.glob("questionnaires.*")):
                continue
            waves.append(read_manifest(folder))
        except ManifestError as exc:
            problems[folder] = str(exc)
        except OSError as exc:
            problems[folder] = f"{folder}: cannot read the folder ({exc.strerror})"
    return WaveScan(waves, problems)


def discover_waves(root: Path | None = None) -> list[WaveManifest]:
    """The readable waves under `root` (default `data/raw`); see `scan_waves` for the others."""
    return scan_waves(root).manifests


def every_wave() -> list[WaveManifest]:
    """The readable waves under data/raw and data/incoming (the sensor's deliveries)."""
    return discover_waves(raw_dir()) + discover_waves(incoming_dir())


def wave_order(manifests: list[WaveManifest]) -> list[str]:
    """Wave ids in survey order: by fieldwork start, ties (and waves without a fieldwork
    window, which come last) by id. "Previous wave" in the comparison means previous here."""
    return [m.wave for m in sorted(
        manifests, key=lambda m: (m.fieldwork_start is None, m.fieldwork_start or dt.date.min, m.wave))]


def wave_folder(wave: str) -> Path:
    """The folder that holds wave `wave`: under data/raw, else under data/incoming (where the
    sensor finds new deliveries; they are read in place, never moved or changed)."""
    scans = [scan_waves(root) for root in (raw_dir(), incoming_dir())]
    found = [m.folder for scan in scans for m in scan.manifests if m.wave == wave]
    if not found:
        unreadable = [reason for scan in scans for reason in scan.problems.values()]
        hint = f" ({len(unreadable)} folder(s) with an unreadable manifest: {unreadable[0]})" if unreadable else ""
        raise FileNotFoundError(f"no folder under {raw_dir()} or {incoming_dir()} holds wave {wave!r}{hint}")
    if len(found) > 1:
        raise FileNotFoundError(f"wave {wave!r} is delivered twice: {', '.join(map(str, found))}; keep one")
    return found[0]
