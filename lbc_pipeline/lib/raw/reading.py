"""Reading a wave's raw files, whatever format data entry delivered them in.

Every file comes back as a polars frame of text columns, values as delivered (numbers that a
binary format stores as floats are written back as the integers they are), with column
names matched to the codebook, the extra columns kept, and a `_row` column giving the
row's number in the file (1 = first data row). Anything that stops a file from being read
raises `RawFileError`, which names the file, the row and the column.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from lbc_pipeline.codebook import load_codebook
from lbc_pipeline.config import SUPPORTED_EXTENSIONS

ROW_COLUMN = "_row"
# Names the raw layer adds to every row; a delivered column may not take them.
RESERVED_COLUMNS = ("wave", "source_row", ROW_COLUMN)
UTF8_BOM = b"\xef\xbb\xbf"


class RawFileError(ValueError):
    """A raw file that cannot be loaded; the message names file, row and column."""

    def __init__(self, path: Path | str, message: str, row: int | None = None,
                 column: str | None = None):
        self.path = Path(path)
        self.row = row
        self.column = column
        self.reason = message
        where = [self.path.name]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}")


@dataclass(frozen=True)
class LoadedFile:
    """One raw file, read: text values as delivered plus what the load log records."""

    name: str
    path: Path
    frame: pl.DataFrame
    format: str
    encoding: str | None
    sha256: str
    size_bytes: int
    extra_columns: tuple[str, ...] = ()
    value_labels: dict = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.frame.height

    def log_row(self, wave: str, loaded_at: dt.datetime) -> dict:
        """The file's row of `raw.load_log`."""
        return {
            "wave": wave,
            "file": self.path.name,
            "role": self.name,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "rows": self.rows,
            "format": self.format,
            "encoding": self.encoding,
            "extra_columns": list(self.extra_columns),
            "value_labels": json.dumps(self.value_labels, ensure_ascii=False, sort_keys=True)
            if self.value_labels else None,
            "loaded_at": loaded_at,
        }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_raw_file(folder: Path, stem: str) -> Path:
    """The one `<stem>.<ext>` file of a wave folder, in a supported format."""
    candidates = sorted(
        p for p in folder.glob(f"{stem}.*") if p.suffix.lower().lstrip(".") in SUPPORTED_EXTENSIONS
    )
    if not candidates:
        raise RawFileError(
            folder / f"{stem}.*",
            f"no {stem} file in {folder} (expected one of "
            f"{', '.join(stem + '.' + e for e in SUPPORTED_EXTENSIONS)})",
        )
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise RawFileError(candidates[0], f"more than one {stem} file ({names}): keep one")
    return candidates[0]


# --------------------------------------------------------------------------- decoding
def decode_csv_bytes(path: Path, data: bytes) -> tuple[str, str]:
    """Decode a csv: UTF-8 with BOM, UTF-8, or GB18030 (a superset of GBK), in that order.

    The order is safe: GB18030 text with Chinese characters is practically never valid
    UTF-8. Bytes that are neither raise an error naming the row and the column.
    """
    if data.startswith(UTF8_BOM):
        return _strict_decode(path, data[len(UTF8_BOM):], "utf-8", offset=len(UTF8_BOM)), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        row, column = _locate_byte(data, exc.start)
        raise RawFileError(
            path,
            f"bytes {data[exc.start:exc.start + 4]!r} are neither UTF-8 nor GB18030/GBK; "
            "re-export the file as UTF-8",
            row=row,
            column=column,
        ) from None


def _strict_decode(path: Path, data: bytes, encoding: str, offset: int) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        row, column = _locate_byte(data, exc.start)
        raise RawFileError(
            path, f"the file starts with a UTF-8 mark but byte {exc.start + offset} is not "
            "UTF-8", row=row, column=column,
        ) from None


def _locate_byte(data: bytes, position: int) -> tuple[int | None, str | None]:
    """Data row number and column name of a byte offset in a csv (row 1 = first data row)."""
    line_number = data.count(b"\n", 0, position)  # 0 = header line
    header = data.split(b"\n", 1)[0].decode("latin-1").lstrip("\ufeff\xef\xbb\xbf")
    names = next(csv.reader([header]))
    line_start = data.rfind(b"\n", 0, position) + 1
    field_index = data.count(b",", line_start, position)
    column = names[field_index].strip() if field_index < len(names) else None
    return (line_number if line_number > 0 else None), column


# --------------------------------------------------------------------------- readers
def _read_csv(path: Path) -> tuple[pl.DataFrame, str, dict]:
    text, encoding = decode_csv_bytes(path, path.read_bytes())
    _check_csv_shape(path, text)
    frame = pl.read_csv(text.encode("utf-8"), infer_schema=False)
    return frame, encoding, {}


def _check_csv_shape(path: Path, text: str) -> None:
    """Every data row has as many fields as the header; else name the first ragged row."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise RawFileError(path, "the file is empty (no header row)") from None
    width = len(header)
    seen: dict[str, str] = {}
    for name in header:
        key = name.strip().lower().lstrip("\ufeff")
        if key in seen:
            raise RawFileError(path, f"the header names {key!r} twice ({seen[key]!r} and {name!r})", column=name)
        seen[key] = name
    for row_number, record in enumerate(reader, start=1):
        if len(record) != width and any(cell.strip() for cell in record):
            if len(record) > width:
                message = f"{len(record)} fields where the header has {width} (extra field after the last column)"
                column = header[-1]
            else:
                message = f"{len(record)} fields where the header has {width} (nothing from this column on)"
                column = header[len(record)]
            raise RawFileError(path, message, row=row_number, column=column)


def _read_excel(path: Path) -> tuple[pl.DataFrame, None, dict]:
    try:
        frame = pl.read_excel(path, infer_schema_length=0)
    except Exception as exc:  # fastexcel raises its own types
        raise RawFileError(path, f"not a readable xlsx workbook ({exc})") from None
    # Date cells come back as "YYYY-MM-DD 00:00:00": keep the date as data entry typed it.
    frame = frame.with_columns(pl.all().str.replace(r"^(\d{4}-\d{2}-\d{2})[ T]00:00:00(\.0+)?$", "${1}"))
    return frame, None, {}


def _read_stat(path: Path, kind: str) -> tuple[pl.DataFrame, str | None, dict]:
    import pyreadstat

    reader = pyreadstat.read_sav if kind == "sav" else pyreadstat.read_dta
    try:
        # user_missing: SPSS files often declare -9/-8/-7 as user-missing values; read them as
        # the codes they are, so their reasons (refused, don't know, not applicable) survive.
        pdf, meta = reader(str(path), apply_value_formats=False, user_missing=kind == "sav")
    except Exception as exc:  # pyreadstat.ReadstatError and friends
        raise RawFileError(path, f"not a readable {kind} file ({exc})") from None
    columns = {}
    for name in pdf.columns:
        columns[name] = [_cell_text(v) for v in pdf[name].tolist()]
    labels = {
        var: {str(_cell_text(code)): label for code, label in mapping.items()}
        for var, mapping in (meta.variable_value_labels or {}).items()
    }
    encoding = getattr(meta, "file_encoding", None)
    return pl.DataFrame(columns, schema={c: pl.String for c in columns}), encoding, labels


def _read_parquet(path: Path) -> tuple[pl.DataFrame, None, dict]:
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:
        raise RawFileError(path, f"not a readable parquet file ({exc})") from None
    return _frame_as_text(frame), None, {}


def _frame_as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as text; floats that hold integers are written as integers."""
    out = {}
    for name, dtype in frame.schema.items():
        if dtype.is_float():
            out[name] = [_cell_text(v) for v in frame[name].to_list()]
        elif dtype in (pl.Date, pl.Datetime):
            out[name] = [_cell_text(v) for v in frame[name].to_list()]
        else:
            out[name] = frame[name].cast(pl.String).to_list()
    return pl.DataFrame(out, schema={c: pl.String for c in out})


def _cell_text(value: object) -> str | None:
    """A binary format's cell as the text data entry would have typed."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    return text if text != "" else None


READERS = {
    "csv": _read_csv,
    "xlsx": _read_excel,
    "sav": lambda p: _read_stat(p, "sav"),
    "dta": lambda p: _read_stat(p, "dta"),
    "parquet": _read_parquet,
}


# --------------------------------------------------------------------------- headers
def match_columns(path: Path, frame: pl.DataFrame, role: str) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Rename columns to codebook names (case and surrounding white space ignored).

    Returns the renamed frame and the extra columns (kept, under their normalised names).
    A required column that is absent, or two columns that normalise to one name, is an error.
    """
    expected = [v.name for v in load_codebook().file_variables(role)]
    normalised = {}
    for name in frame.columns:
        key = name.strip().lower().lstrip("\ufeff")
        if key in normalised.values():
            raise RawFileError(path, f"two columns are both {key!r} once case and spaces are ignored",
                               column=name)
        normalised[name] = key
    reserved = [key for key in normalised.values() if key in RESERVED_COLUMNS]
    if reserved:
        raise RawFileError(path, f"column name {reserved[0]!r} is reserved by the pipeline: rename it",
                           column=reserved[0])
    missing = [name for name in expected if name not in normalised.values()]
    if missing:
        raise RawFileError(path, f"required column(s) missing: {', '.join(missing)}",
                           column=missing[0])
    renamed = frame.rename(normalised)
    extras = tuple(c for c in renamed.columns if c not in expected)
    return renamed.select([*expected, *extras]), extras


def read_raw_file(path: Path, role: str) -> LoadedFile:
    """Read one raw file of a wave (`role` = questionnaires or distribution)."""
    ext = path.suffix.lower().lstrip(".")
    if ext not in READERS:
        raise RawFileError(path, f"unsupported format .{ext}")
    frame, encoding, labels = READERS[ext](path)
    if frame.width == 0:
        raise RawFileError(path, "the file has no columns")
    frame = frame.with_columns(pl.all().cast(pl.String).str.strip_chars())
    frame = frame.with_columns(
        [pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in frame.columns]
    )
    frame, extras = match_columns(path, frame, role)
    # Row numbers count every data row of the file; rows with no value at all (blank lines,
    # an Excel export's trailing commas) carry nothing and are not keyed questionnaires.
    frame = (
        frame.with_row_index(ROW_COLUMN, offset=1).with_columns(pl.col(ROW_COLUMN).cast(pl.Int64))
        .filter(~pl.all_horizontal(pl.exclude(ROW_COLUMN).is_null()))
    )
    return LoadedFile(
        name=role,
        path=path,
        frame=frame,
        format=ext,
        encoding=encoding,
        sha256=file_sha256(path),
        size_bytes=path.stat().st_size,
        extra_columns=extras,
        value_labels=labels,
    )
