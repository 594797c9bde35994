"""A wave's delivery as a whole: manifest, questionnaires and distribution, read together.

`raw_tables` lays them out as the raw layer stores them (text as delivered, a `source_row`
per keyed row, the wave on every row); `record_rejection` keeps the reason a delivery could
not be loaded, queryable in `raw.rejected_files`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from lbc_pipeline.config import ManifestError, WaveManifest, read_manifest, wave_folder
from lbc_pipeline.lib.raw.reading import (
    ROW_COLUMN,
    LoadedFile,
    RawFileError,
    file_sha256,
    find_raw_file,
    read_raw_file,
)
from lbc_pipeline.lib.io.warehouse import append_rows
from lbc_pipeline.lib import contracts

# The contract of raw.read_notes (READ_NOTE_KINDS, READ_NOTES_SCHEMA) is in lib/contracts/raw.py.
READ_NOTES_COLUMNS = {"wave": pl.String, "file": pl.String, "source_row": pl.Int64, "column_name": pl.String,
                      "kind": pl.String, "delivered": pl.String, "read_as": pl.String, "note": pl.String}


@dataclass(frozen=True)
class WaveFiles:
    manifest: WaveManifest
    questionnaires: LoadedFile
    distribution: LoadedFile

    @property
    def delivery(self) -> "Delivery":
        """The files as delivered: the wave id and each file's sha256 (wave.yaml and the
        interviews/ folder's files included)."""
        folder = self.questionnaires.path.parent
        digests = {f.path.name: f.sha256 for f in (self.questionnaires, self.distribution)}
        manifest = folder / "wave.yaml"
        if manifest.exists():
            digests[manifest.name] = file_sha256(manifest)
        # the optional interviews/ folder (lib/qualitative): a changed interview file is a new delivery
        for path in sorted((folder / "interviews").glob("*")):
            if path.is_file():
                digests[f"interviews/{path.name}"] = file_sha256(path)
        return Delivery(wave=self.manifest.wave, folder=folder, files=digests)

    def raw_tables(self, loaded_at: dt.datetime) -> dict[str, pl.DataFrame]:
        """`raw.questionnaires`, `raw.distribution` and `raw.load_log` rows of this wave."""
        wave = self.manifest.wave
        def as_raw(loaded: LoadedFile) -> pl.DataFrame:
            return loaded.frame.rename({ROW_COLUMN: "source_row"}).select(
                pl.lit(wave).alias("wave"), pl.all()
            )
        log = pl.DataFrame(
            [f.log_row(wave, loaded_at) for f in (self.questionnaires, self.distribution)],
            schema={"wave": pl.String, "file": pl.String, "role": pl.String, "sha256": pl.String,
                    "size_bytes": pl.Int64, "rows": pl.Int64, "format": pl.String, "encoding": pl.String,
                    "extra_columns": pl.List(pl.String), "value_labels": pl.String,
                    "loaded_at": pl.Datetime("us")},
        )
        notes = pl.DataFrame(
            [n.as_row(wave) for f in (self.questionnaires, self.distribution) for n in f.notes],
            schema=READ_NOTES_COLUMNS,
        )
        return {
            "raw.questionnaires": as_raw(self.questionnaires),
            "raw.distribution": as_raw(self.distribution),
            "raw.load_log": log,
            "raw.read_notes": contracts.schema_for("raw.read_notes").validate(notes),
        }


def load_folder(folder: Path, wave: str | None = None) -> WaveFiles:
    """Read a wave folder; a manifest problem is reported like a file problem."""
    try:
        manifest = read_manifest(folder)
    except ManifestError as exc:
        raise RawFileError(folder / "wave.yaml", str(exc).split(": ", 1)[-1]) from None
    if wave is not None and manifest.wave != wave:
        raise RawFileError(folder / "wave.yaml", f"names wave {manifest.wave!r}, expected {wave!r}")
    return WaveFiles(
        manifest=manifest,
        questionnaires=read_raw_file(find_raw_file(folder, "questionnaires"), "questionnaires"),
        distribution=read_raw_file(find_raw_file(folder, "distribution"), "distribution"),
    )


def load_wave_files(wave: str) -> WaveFiles:
    """Read the registered wave `wave` from its folder, validated completely
    (`validation.validate_delivery`) before the caller writes anything."""
    from lbc_pipeline.lib.raw.validation import validate_delivery

    try:
        folder = wave_folder(wave)
    except FileNotFoundError as exc:
        raise RawFileError(Path(str(wave)), str(exc)) from None
    return validate_delivery(folder, wave).files


def record_rejection(con: duckdb.DuckDBPyConnection, wave: str, error: RawFileError,
                     at: dt.datetime) -> None:
    """Append the reason a delivery was rejected to `raw.rejected_files` (history is kept)."""
    row = pl.DataFrame([{
        "wave": wave, "file": str(error.path), "source_row": error.row, "column_name": error.column,
        "reason": error.reason, "message": str(error), "rejected_at": at,
    }], schema={"wave": pl.String, "file": pl.String, "source_row": pl.Int64, "column_name": pl.String,
                "reason": pl.String, "message": pl.String, "rejected_at": pl.Datetime("us")})
    append_rows(con, {"raw.rejected_files": row})


@dataclass(frozen=True)
class Delivery:
    """A wave folder as the sensor sees it: its wave id and the sha256 of each file."""

    wave: str
    folder: Path
    files: dict[str, str]

    @property
    def fingerprint(self) -> str:
        """One digest of every file's name and sha256 (changes when any file changes)."""
        text = "\n".join(f"{name} {digest}" for name, digest in sorted(self.files.items()))
        return hashlib.sha256(text.encode()).hexdigest()

    def changes_since(self, previous: dict[str, str] | None) -> str:
        """What changed since the files last seen (`previous`: name -> sha256)."""
        if not previous:
            return "new delivery"
        changed = [n for n in sorted(self.files) if previous.get(n) != self.files[n]]
        removed = [n for n in sorted(previous) if n not in self.files]
        parts = [f"{n} {previous.get(n, 'absent')[:12]} -> {self.files[n][:12]}" for n in changed]
        parts += [f"{n} removed" for n in removed]
        return "; ".join(parts) or "unchanged"


def inspect_delivery(folder: Path) -> Delivery:
    """A delivered wave folder validated as the job will validate it (`validate_delivery`:
    manifest, files, every value rule), and each file's sha256. Raises `RawFileError`."""
    from lbc_pipeline.lib.raw.validation import validate_delivery

    return validate_delivery(folder).files.delivery


def folder_digests(folder: Path) -> dict[str, str]:
    """A cheap look at a delivery folder, without validating it: the sha256 of each regular
    data file and wave.yaml, and the kind of anything else named like one (never opened).
    Changes whenever validation's verdict could change."""
    import stat as stat_module

    out = {}
    for path in sorted(folder.iterdir()):
        if not (path.name == "wave.yaml" or path.stem in ("questionnaires", "distribution")):
            continue
        mode = path.lstat().st_mode
        if stat_module.S_ISLNK(mode):
            out[path.name] = f"symlink:{path.readlink()}"
        elif stat_module.S_ISREG(mode):
            out[path.name] = file_sha256(path)
        else:
            out[path.name] = f"not-a-file:{stat_module.S_IFMT(mode)}"
    return out
