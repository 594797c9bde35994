"""Reading a wave's raw files, whatever format data entry delivered them in.

Every file comes back as a polars frame of text columns, values as delivered (numbers that a
binary format stores as floats are written back as the integers they are), with column
names matched to the codebook, the extra columns kept, and a `_row` column giving the
row's number in the file (1 = first data row). Anything that stops a file from being read
raises `RawFileError`, which names the file, the row and the column; a message never quotes
a file's content beyond the offending cell, shortened to `CELL_SHOWN` characters.

What the reader refuses, and what it changes (each change is a `ReadNote`, kept in
`raw.read_notes`):
- only regular files inside the wave folder are read: a symlink is resolved and refused if its
  target leaves the folder (recorded when it stays inside); a directory, FIFO, socket or device
  named like a data file is refused without being opened;
- csv: UTF-8 (with or without BOM), GB18030/GBK, or UTF-16 with a byte-order mark; UTF-16
  without a mark and NUL bytes are refused with their position; \r\n, \n and \r-only line
  endings are read; a cell may hold up to `MAX_CELL_CHARS` characters (1 MiB), a longer one
  is refused by row and column; an empty header name and a trailing comma on every line are
  refused (the latter with what to do);
- full-width digits, signs, letters and spaces typed by Chinese input methods (`３`, `－9`,
  ideographic space) are normalised (NFKC) in every non-personal codebook column;
- Stata extended missing values (.a-.z) and SPSS user-missing values that are not the
  instrument's special codes are mapped to them by their value label (refused / don't know /
  not applicable), or, without a label, Stata's .a/.b/.c to -9/-8/-7;
- qids that differ only in case are one questionnaire: variants are rewritten to the first
  spelling in the file (so that staging sees them as duplicates) and reported;
- xlsx: every sheet is looked at (`read_workbook`); the rows of every sheet whose first row
  is the role's header are read, a cover or notes sheet is skipped (noted), and a workbook of
  several sheets gives each row its sheet and row there (`source_sheet`, `sheet_row`);
  sheets whose headers disagree, or no sheet with the header, are refused naming the sheets;
- survey dates delivered as Excel serial numbers or in the Chinese forms (2021年4月4日,
  2021.4.4, 2021/4/4, 20210404, ...) are read as YYYY-MM-DD, one note per form
  (`normalise_dates`; the rules are in `lib/staging/dates.py`).

A file's bytes are read once: the bytes parsed are the bytes whose sha256 and size the load
log records (`read_file_bytes`).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import math
import os
import re
import stat
import unicodedata
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from lbc_pipeline.codebook import load_codebook
from lbc_pipeline.config import SUPPORTED_EXTENSIONS
from lbc_pipeline.lib.staging.dates import read_date

ROW_COLUMN = "_row"
# A workbook of more than one sheet: the sheet each row comes from, and its data row there
# (1 = the first row under the sheet's header); `_row` then counts the rows of every sheet
# read, in sheet order, so that it stays one number per row of the file.
SHEET_COLUMN = "source_sheet"
SHEET_ROW_COLUMN = "sheet_row"
LOCATION_COLUMNS = (SHEET_COLUMN, SHEET_ROW_COLUMN)
# Names the raw layer adds to every row; a delivered column may not take them.
RESERVED_COLUMNS = ("wave", "source_row", ROW_COLUMN, *LOCATION_COLUMNS)
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# The longest cell the reader accepts (characters): far above any answer, qid or name, low
# enough that a runaway quote or a binary file is reported instead of read into memory.
MAX_CELL_CHARS = 1 << 20
# How much of an offending cell a message may show.
CELL_SHOWN = 40
# Stata extended missing values without a value label: the instrument's special code each
# stands for (.a refused, .b don't know, .c not applicable); other letters need a label.
STATA_DEFAULT_MISSING = {"a": -9, "b": -8, "c": -7}


def shown(value: object, limit: int = CELL_SHOWN) -> str:
    """A cell as a message may quote it: repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(str(value))} characters)"


@dataclass(frozen=True)
class ReadNote:
    """One thing the reader did to a delivered file or value (a row of `raw.read_notes`)."""

    file: str
    source_row: int | None
    column_name: str | None
    kind: str
    delivered: str | None
    read_as: str | None
    note: str

    def as_row(self, wave: str) -> dict:
        return {"wave": wave, **self.__dict__}


class RawFileError(ValueError):
    """A raw file that cannot be loaded; the message names file, row and column."""

    def __init__(self, path: Path | str, message: str, row: int | None = None,
                 column: str | None = None, sheet: str | None = None):
        self.path = Path(path)
        self.row = row
        self.column = column
        self.sheet = sheet
        self.reason = message
        where = [self.path.name]
        if sheet is not None:
            where.append(f"sheet {sheet!r}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}".replace("\n", " "))


def row_location(row: Mapping) -> dict:
    """`RawFileError` keywords that place a row of a read frame (a mapping with `_row`, and
    `source_sheet` / `sheet_row` when it comes from a workbook of several sheets): the sheet
    and the row there, else the row of the file."""
    sheet = row.get(SHEET_COLUMN)
    if sheet is not None and row.get(SHEET_ROW_COLUMN) is not None:
        return {"sheet": sheet, "row": int(row[SHEET_ROW_COLUMN])}
    return {"row": int(row[ROW_COLUMN])}


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
    notes: tuple[ReadNote, ...] = ()

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
    """The one `<stem>.<ext>` file of a wave folder, in a supported format, checked to be a
    regular file inside the folder (`check_regular_file`)."""
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
    check_regular_file(candidates[0], folder)
    return candidates[0]


def check_regular_file(path: Path, folder: Path) -> Path | None:
    """Refuse anything but a regular file inside `folder`, without opening it (a FIFO would
    block the reader). Returns the target of a symlink that stays inside, else None."""
    try:
        link = path.lstat()
    except OSError as exc:
        raise RawFileError(path, f"cannot be examined ({exc.strerror})") from None
    target = None
    if stat.S_ISLNK(link.st_mode):
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise RawFileError(path, "is a symbolic link whose target does not exist; deliver the file itself") from None
        if not resolved.is_relative_to(folder.resolve()):
            raise RawFileError(path, "is a symbolic link to a file outside the wave folder; deliver the file itself "
                               "(copy it into the folder)")
        target = resolved
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise RawFileError(path, f"cannot be examined ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise RawFileError(path, "is a folder, not a file; deliver the data file under this name")
    if not stat.S_ISREG(mode):
        kind = "named pipe (FIFO)" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
        raise RawFileError(path, f"is a {kind}, not a regular file; deliver the data file itself")
    if not os.access(path, os.R_OK):
        raise RawFileError(path, "cannot be read (permission denied); make the file readable")
    return target


# --------------------------------------------------------------------------- decoding
def decode_csv_bytes(path: Path, data: bytes) -> tuple[str, str]:
    """Decode a csv: UTF-16 with a byte-order mark, UTF-8 with BOM, UTF-8, or GB18030 (a
    superset of GBK), in that order.

    The order is safe: GB18030 text with Chinese characters is practically never valid
    UTF-8. Bytes that are neither raise an error naming the row and the column of the first
    bad byte for UTF-8 (where a UTF-8 file with one bad byte has it). NUL bytes and UTF-16
    without a mark are refused with their position.
    """
    for bom in UTF16_BOMS:
        if data.startswith(bom):
            encoding = "utf-16-le" if bom == b"\xff\xfe" else "utf-16-be"
            try:
                return data[2:].decode(encoding), "utf-16"
            except UnicodeDecodeError as exc:
                raise RawFileError(path, f"starts with a UTF-16 mark but byte {exc.start + 2} is not UTF-16; "
                                   "re-export the file as UTF-8") from None
    nul = data.find(b"\x00")
    if nul >= 0:
        sample = data[:200]
        if sample.count(b"\x00") * 3 >= len(sample):
            raise RawFileError(path, "looks like UTF-16 without a byte-order mark (every other byte is NUL); "
                               "re-export the file as UTF-8")
    if data.startswith(UTF8_BOM):
        body = data[len(UTF8_BOM):]
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            row, column = locate_byte(body, exc.start, "utf-8")
            raise RawFileError(
                path, f"the file starts with a UTF-8 mark but byte {exc.start + len(UTF8_BOM)} "
                f"({body[exc.start:exc.start + 4]!r}) is not UTF-8; re-export the file as UTF-8",
                row=row, column=column) from None
        return _refuse_nul(path, text), "utf-8-sig"
    try:
        return _refuse_nul(path, data.decode("utf-8")), "utf-8"
    except UnicodeDecodeError as utf8_error:
        first_bad = utf8_error.start
    try:
        return _refuse_nul(path, data.decode("gb18030")), "gb18030"
    except UnicodeDecodeError:
        pass
    row, column = locate_byte(data, first_bad, "utf-8")
    raise RawFileError(
        path,
        f"bytes {data[first_bad:first_bad + 4]!r} (byte {first_bad}) are neither UTF-8 nor GB18030/GBK; "
        "re-export the file as UTF-8",
        row=row,
        column=column,
    )


def _refuse_nul(path: Path, text: str) -> str:
    position = text.find("\x00")
    if position >= 0:
        row, column = locate_char(text, position)
        raise RawFileError(path, f"a NUL byte (character {position} of the file) is inside a cell; "
                           "remove it and re-export", row=row, column=column)
    return text


def locate_char(text: str, position: int) -> tuple[int | None, str | None]:
    """Data row number (1 = first data row) and column name of a character offset in csv text."""
    records = list(csv.reader(io.StringIO(text[:position + 1], newline=""), strict=False))
    header = list(csv.reader(io.StringIO(text, newline="")))[:1] or [[]]
    names = [n.strip().lstrip("\ufeff") for n in header[0]]
    if not records:
        return None, None
    row = len(records) - 1
    field_index = len(records[-1]) - 1
    column = names[field_index] if 0 <= field_index < len(names) else None
    return (row if row > 0 else None), column


def locate_byte(data: bytes, position: int, encoding: str) -> tuple[int | None, str | None]:
    """Data row number and column name of a byte offset in a csv (row 1 = first data row)."""
    prefix = data[:position].decode(encoding, errors="replace")
    whole = data.decode(encoding, errors="replace")
    return locate_char(whole, len(prefix))


# --------------------------------------------------------------------------- readers
def read_file_bytes(path: Path) -> bytes:
    """The file's bytes, read once: the reader parses these bytes and hashes these bytes, so the
    digest recorded is the digest of what was read even when the file is replaced meanwhile."""
    try:
        with path.open("rb") as handle:
            return handle.read()
    except OSError as exc:
        raise RawFileError(path, f"cannot be read ({exc.strerror})") from None


def _read_csv(path: Path, data: bytes | None = None) -> tuple[pl.DataFrame, str, dict, list[ReadNote]]:
    text, encoding = decode_csv_bytes(path, path.read_bytes() if data is None else data)
    frame = parse_csv(path, text)
    notes = []
    if "\r" in text and "\n" not in text:
        notes.append(ReadNote(path.name, None, None, "line_endings", "CR", "LF",
                              "lines end in a carriage return only (old Mac export); read as lines"))
    return frame, encoding, {}, notes


def parse_csv(path: Path, text: str) -> pl.DataFrame:
    """A csv's data records as a frame of text columns, every record padded to the header's
    width (one record per row: a blank line is a row of nulls, so row numbers count records).

    Any line ending is read (`newline=""`). Refused, naming the row and column: an empty
    file, an empty or repeated header name, a trailing comma on every line, a row with more
    or fewer fields than the header (a row of empty fields may be short), a cell longer than
    `MAX_CELL_CHARS`. The check streams the records (nothing is kept); polars then reads the
    values.
    """
    previous_limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # each cell is measured against MAX_CELL_CHARS below
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = [name.lstrip("\ufeff") for name in next(reader)]
        except StopIteration:
            raise RawFileError(path, "the file is empty (no header row)") from None
        width = len(header)
        _check_header_names(path, header)
        last_empty = not header[-1].strip()
        every_row_ends_empty = True
        rows = 0
        for row_number, record in enumerate(reader, start=1):
            if record and max(map(len, record)) > MAX_CELL_CHARS:
                index = next(i for i, cell in enumerate(record) if len(cell) > MAX_CELL_CHARS)
                column = header[index] if index < width else None
                raise RawFileError(path, f"a cell of {len(record[index]):,} characters is longer than the "
                                   f"{MAX_CELL_CHARS:,} the reader accepts (an unclosed quote?)",
                                   row=row_number, column=column)
            filled = any(record) and any(cell.strip() for cell in record)
            if len(record) != width and filled:
                if len(record) > width:
                    empty_extra = not any(cell.strip() for cell in record[width:])
                    message = (f"{len(record)} fields where the header has {width} (extra field after the last "
                               "column" + ("; an empty one: remove the trailing comma" if empty_extra else "") + ")")
                    column = header[-1] or None
                else:
                    message = f"{len(record)} fields where the header has {width} (nothing from this column on)"
                    column = header[len(record)] or None
                raise RawFileError(path, message, row=row_number, column=column)
            if filled and record[-1].strip():
                every_row_ends_empty = False
            rows = row_number
    finally:
        csv.field_size_limit(previous_limit)
    if last_empty:
        if every_row_ends_empty and rows:
            raise RawFileError(path, "every line ends with a comma (an empty last column); remove the trailing "
                               "commas or re-export the file")
        raise _empty_name(path, header, width - 1)
    # The shape is sound: polars reads the values (fast, columnar). It keeps blank lines as
    # rows of nulls, so its rows are the records counted above; it needs \n line ends.
    if "\n" not in text:
        text = text.replace("\r", "\n")
    frame = pl.read_csv(text.encode("utf-8"), infer_schema=False, has_header=True)
    if frame.height != rows:
        raise RawFileError(path, f"read {frame.height} rows where the csv has {rows} records: "
                           "re-export the file with standard quoting")
    return frame


def _empty_name(path: Path, header: list[str], index: int) -> RawFileError:
    after = header[index - 1] if index else None
    where = f"after column {after!r}" if after else "first column"
    return RawFileError(path, f"the header has an empty column name ({where}, position {index + 1}); "
                        "name the column or delete it")


def _check_header_names(path: Path, header: list[str]) -> None:
    """An empty header name (but the last: see `parse_csv`) or a repeated name is refused."""
    seen: dict[str, str] = {}
    for index, name in enumerate(header):
        key = name.strip().lower()
        if not key:
            if index == len(header) - 1:
                continue
            raise _empty_name(path, header, index)
        if key in seen:
            raise RawFileError(path, f"the header names {key!r} twice ({seen[key]!r} and {name!r})", column=name)
        seen[key] = name


def _read_excel(path: Path) -> tuple[pl.DataFrame, None, dict, list[ReadNote]]:
    try:
        frame = pl.read_excel(path, infer_schema_length=0)
    except Exception as exc:  # fastexcel raises its own types
        raise RawFileError(path, f"not a readable xlsx workbook ({_first_line(exc)})") from None
    # Date cells come back as "YYYY-MM-DD 00:00:00": keep the date as data entry typed it.
    frame = frame.with_columns(pl.all().str.replace(r"^(\d{4}-\d{2}-\d{2})[ T]00:00:00(\.0+)?$", "${1}"))
    return frame, None, {}, []


# --------------------------------------------------------------------------- workbooks
# A date cell comes back as "YYYY-MM-DD 00:00:00": the date as data entry typed it.
_MIDNIGHT = r"^(\d{4}-\d{2}-\d{2})[ T]00:00:00(\.0+)?$"
_UNNAMED = "__UNNAMED__{}"  # an unnamed column with values (polars' name for it); empty ones are dropped


@dataclass(frozen=True)
class Workbook:
    """A workbook's questionnaire (or distribution) sheets, read: the rows of every sheet that
    has the header, one frame; `_row`, `source_sheet`, `sheet_row` when it has several sheets."""

    frame: pl.DataFrame
    notes: tuple[ReadNote, ...]
    date1904: bool


@dataclass(frozen=True)
class _SheetLook:
    name: str
    hidden: bool
    empty: bool
    names: tuple[str, ...]  # the first row's names, normalised (case, spaces); unnamed ones left out
    missing: tuple[str, ...]  # codebook columns of the role the first row lacks
    known: tuple[str, ...]  # codebook columns of the role it names

    @property
    def kind(self) -> str:
        """data (the whole header), partial (some codebook columns: a data-like header that
        lacks others), empty (no cell) or other (none: a cover or notes sheet)."""
        if self.empty:
            return "empty"
        if not self.missing:
            return "data"
        return "partial" if self.known else "other"


def workbook_date1904(data: bytes) -> bool:
    """Whether an xlsx workbook counts dates in the 1904 system (`<workbookPr date1904="1"/>`
    in xl/workbook.xml); False when it does not say (the 1900 system, Excel's default)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            text = archive.read("xl/workbook.xml")[:1 << 16].decode("utf-8", errors="replace")
    except (zipfile.BadZipFile, KeyError, OSError):
        return False
    match = re.search(r"<(?:\w+:)?workbookPr\b[^>]*\bdate1904\s*=\s*[\"'](1|true)[\"']", text)
    return match is not None


def _cell_names(row: tuple) -> list[str | None]:
    return [None if v is None or not str(v).strip() else str(v) for v in row]


def _names(items, limit: int | None = None) -> str:
    items = list(items)
    if limit is not None and len(items) > limit:
        return ", ".join(items[:limit]) + f" and {len(items) - limit} more"
    return ", ".join(items)


def _quoted(names) -> str:
    names = [repr(n) for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def read_workbook(path: Path, data: bytes, role: str) -> Workbook:
    """Every sheet of an xlsx workbook looked at; the `role`'s rows read from the sheets whose
    first row is its header (every codebook column of the role, matched as `match_columns`
    does). Values are text as calamine reads them (a date cell at midnight as YYYY-MM-DD).

    - One such sheet: its rows. Several: all their rows, in sheet order, when their headers
      name the same columns (case, spaces and order aside); each row keeps its sheet
      (`source_sheet`) and its row there (`sheet_row`), and a read note per sheet says which
      rows of the file it gave. Hidden sheets are sheets like the others.
    - A sheet whose first row names none of the codebook's columns (a cover or notes sheet)
      or that is empty is skipped, with a read note.
    - Refused, naming the sheets: a sheet whose first row names some of the codebook's
      columns but lacks others while another sheet has the whole header, and sheets with the
      whole header but different further columns (rows would be lost or misplaced); no sheet
      with the header (each sheet named with what it lacked).
    """
    import fastexcel

    try:
        reader = fastexcel.read_excel(data)
        sheet_names = list(reader.sheet_names)
    except Exception as exc:  # fastexcel raises its own types
        raise RawFileError(path, f"not a readable xlsx workbook ({_first_line(exc)})") from None
    if not sheet_names:
        raise RawFileError(path, "the workbook has no sheet")
    expected = [v.name for v in load_codebook().file_variables(role)]

    def load(name: str, n_rows: int | None = None) -> tuple[pl.DataFrame, bool]:
        """The sheet's cells as text (no header row), and whether it is hidden."""
        try:
            sheet = reader.load_sheet(name, header_row=None, n_rows=n_rows, dtypes="string")
            return pl.DataFrame(sheet.to_arrow()), sheet.visible != "visible"
        except Exception as exc:
            raise RawFileError(path, f"the sheet cannot be read ({_first_line(exc)})", sheet=name) from None

    looks = []
    for name in sheet_names:
        top, hidden = load(name, n_rows=1)
        header = _cell_names(top.row(0)) if top.height else []
        names = tuple(h.strip().lower().lstrip("\ufeff") for h in header if h is not None)
        looks.append(_SheetLook(name, hidden, top.height == 0, names, tuple(c for c in expected if c not in names),
                                tuple(c for c in expected if c in names)))
    data_sheets = [look for look in looks if look.kind == "data"]
    partial = [look for look in looks if look.kind == "partial"]
    if not data_sheets:
        if len(looks) == 1 and partial:
            missing = partial[0].missing
            raise RawFileError(path, f"required column(s) missing: {_names(missing)}", column=missing[0],
                               sheet=partial[0].name)
        said = []
        for look in looks:
            if look.kind == "partial":
                said.append(f"sheet {look.name!r} lacks {_names(look.missing)}")
            elif look.kind == "empty":
                said.append(f"sheet {look.name!r} is empty")
            else:
                said.append(f"sheet {look.name!r} names none of them in its first row")
        raise RawFileError(path, f"no sheet has the {role} header (its first row naming every codebook column: "
                           f"{_names(expected, 6)}): {'; '.join(said)}; the header must be the sheet's first row")
    if partial:
        look = partial[0]
        raise RawFileError(
            path, f"the {role} header is on {_sheets(data_sheets)}, but sheet {look.name!r} has a header that "
            f"disagrees (it names {_names(look.known, 6)} but lacks {_names(look.missing)}): its rows would "
            f"not be read; give every sheet of {role} rows the whole header, or remove the sheet",
            sheet=look.name, column=look.missing[0])
    notes: list[ReadNote] = []
    frames: list[pl.DataFrame] = []
    several = len(looks) > 1
    start = 1
    first_columns: list[str] = []
    for look in looks:
        hidden = " (a hidden sheet)" if look.hidden else ""
        if look.kind != "data":
            if look.kind == "empty":
                why = "it is empty"
            else:
                rows, _ = load(look.name)
                filled = rows.filter(~pl.all_horizontal(pl.all().is_null())).height if rows.width else 0
                why = (f"its first row names none of the {role} columns (a cover or notes sheet); its "
                       f"{filled} non-empty row(s) are not read")
            notes.append(ReadNote(path.name, None, None, "sheet_skipped", look.name[:CELL_SHOWN], None,
                                  f"sheet {look.name!r}{hidden} skipped: {why}"))
            continue
        frame = _sheet_frame(path, look.name, load(look.name)[0])
        if frames:
            frame = _like_first(path, role, data_sheets[0].name, first_columns, look.name, frame)
        else:
            first_columns = frame.columns
        if several:
            end = start + frame.height - 1
            frame = frame.with_columns(
                pl.int_range(start, start + frame.height, dtype=pl.Int64).alias(ROW_COLUMN),
                pl.lit(look.name, dtype=pl.String).alias(SHEET_COLUMN),
                pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(SHEET_ROW_COLUMN),
            )
            got = (f"its data rows 1-{frame.height} read as rows {start}-{end} of the file" if frame.height
                   else "its header only, no rows")
            notes.append(ReadNote(path.name, None, None, "sheet_read", look.name[:CELL_SHOWN],
                                  f"rows {start}-{end}" if frame.height else None,
                                  f"sheet {look.name!r}{hidden}: {got}"))
            start = end + 1
        frames.append(frame)
    frame = pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]
    return Workbook(frame, tuple(notes), workbook_date1904(data))


def _sheets(looks) -> str:
    return ("sheet " if len(looks) == 1 else "sheets ") + _quoted([look.name for look in looks])


def _key(name: str) -> str:
    return name.strip().lower().lstrip("\ufeff")


def _like_first(path: Path, role: str, first_name: str, first: list[str], name: str,
                frame: pl.DataFrame) -> pl.DataFrame:
    """A further sheet's frame with the first sheet's column names and order (matched by
    normalised name); refused, naming both sheets, when the two do not have the same columns."""
    ours = {_key(c): c for c in frame.columns}
    theirs = [_key(c) for c in first]
    lacks = [c for c in first if _key(c) not in ours]
    adds = [c for c in frame.columns if _key(c) not in theirs]
    if lacks or adds:
        what = "; ".join(part for part in (
            f"it lacks {_names(lacks)}" if lacks else "",
            f"it has {_names(adds)} that sheet {first_name!r} has not" if adds else "") if part)
        raise RawFileError(
            path, f"sheets {first_name!r} and {name!r} both hold {role} rows but their headers disagree "
            f"(sheet {name!r}: {what}); give them the same columns, or deliver one sheet",
            sheet=name, column=(lacks or adds)[0])
    return frame.select([pl.col(ours[_key(c)]).alias(c) for c in first])


def _sheet_frame(path: Path, sheet: str, rows: pl.DataFrame) -> pl.DataFrame:
    """A sheet read without header (every cell text) as a frame under its first row's names:
    unnamed columns without a value dropped, with values named `__UNNAMED__<i>`; a name given
    twice refused."""
    header = _cell_names(rows.row(0))
    body = rows.slice(1)
    names, keep, seen = [], [], {}
    for index, (column, name) in enumerate(zip(body.columns, header)):
        if name is None:
            if body[column].null_count() == body.height:
                continue
            name = _UNNAMED.format(index)
        key = name.strip().lower().lstrip("\ufeff")
        if key in seen:
            raise RawFileError(path, f"the header names {key!r} twice ({seen[key]!r} and {name!r})",
                               column=name, sheet=sheet)
        seen[key] = name
        names.append(name)
        keep.append(column)
    frame = body.select(keep).rename(dict(zip(keep, names)))
    return frame.with_columns(pl.all().cast(pl.String).str.replace(_MIDNIGHT, "${1}"))


def _read_stat(path: Path, kind: str, data: bytes | None = None) -> tuple[pl.DataFrame, str | None, dict, list[ReadNote]]:
    import pyreadstat

    reader = pyreadstat.read_sav if kind == "sav" else pyreadstat.read_dta
    try:
        # user_missing: SPSS files often declare -9/-8/-7 as user-missing values, Stata files
        # use extended missing values .a-.z: read them as what they are, so their reasons
        # (refused, don't know, not applicable) survive (see `map_declared_missing`).
        source = str(path) if data is None else io.BytesIO(data)
        pdf, meta = reader(source, apply_value_formats=False, user_missing=True)
    except Exception as exc:  # pyreadstat.ReadstatError and friends
        raise RawFileError(path, f"not a readable {kind} file ({_first_line(exc)})") from None
    columns = {}
    for name in pdf.columns:
        columns[name] = [_cell_text(v) for v in pdf[name].tolist()]
    labels = {
        var: {str(_cell_text(code)): label for code, label in mapping.items()}
        for var, mapping in (meta.variable_value_labels or {}).items()
    }
    declared = _declared_missing(meta, kind)
    columns, notes = map_declared_missing(path.name, columns, declared, labels, kind)
    encoding = getattr(meta, "file_encoding", None)
    return pl.DataFrame(columns, schema={c: pl.String for c in columns}), encoding, labels, notes


def _declared_missing(meta, kind: str) -> dict[str, set[str]]:
    """Per variable, the cell texts the file declares missing (SPSS user-missing values and
    ranges' end points; every Stata extended missing letter)."""
    out: dict[str, set[str]] = {}
    if kind == "dta":
        return out  # every one-letter cell of a numeric Stata column is an extended missing value
    for var, values in (getattr(meta, "missing_user_values", None) or {}).items():
        out.setdefault(var, set()).update(str(_cell_text(v)) for v in values)
    for var, ranges in (getattr(meta, "missing_ranges", None) or {}).items():
        for r in ranges:
            low, high = r.get("lo"), r.get("hi")
            if low == high:
                out.setdefault(var, set()).add(str(_cell_text(low)))
            elif isinstance(low, (int, float)) and isinstance(high, (int, float)) and high - low <= 100:
                out.setdefault(var, set()).update(str(v) for v in range(math.ceil(low), math.floor(high) + 1))
    return out


def special_code_for_label(label: str | None) -> int | None:
    """The instrument's special code a value label names (refused / don't know / not applicable,
    in English or Chinese as the codebook writes them), else None."""
    if not label:
        return None
    text = label.strip().lower()
    for special in load_codebook().special_codes:
        name = special.reason.replace("_", " ")
        if text in {special.reason, name, special.en.lower(), special.zh} or special.zh in label:
            return special.code
    if "refus" in text or "no answer" in text:
        return -9
    if "know" in text:
        return -8
    if "applicable" in text or text in {"n/a", "na", "skip", "skipped"}:
        return -7
    return None


def map_declared_missing(file: str, columns: dict[str, list], declared: dict[str, set[str]],
                         labels: dict[str, dict[str, str]], kind: str) -> tuple[dict[str, list], list[ReadNote]]:
    """Stata extended missing values and SPSS user-missing values that are not the
    instrument's special codes, mapped to them by their value label (Stata's unlabelled
    .a/.b/.c by `STATA_DEFAULT_MISSING`); each mapping is a note. Unmapped ones are kept
    as `.x` (Stata) or the code (SPSS), and staging reports them as unreadable or out of range."""
    book = load_codebook()
    special = {str(c.code) for c in book.special_codes}
    numeric = {v.name for v in book.file_variables("questionnaires") if v.is_numeric} | {
        v.name for v in book.file_variables("distribution") if v.is_numeric}
    notes = []
    out = {}
    for name, values in columns.items():
        var_labels = labels.get(name, {})
        is_numeric = name.strip().lower() in numeric
        new = []
        for row, value in enumerate(values, start=1):
            if value is None:
                new.append(value)
                continue
            if kind == "dta" and is_numeric and len(value) == 1 and value.isalpha() and value.islower():
                code = special_code_for_label(var_labels.get(value))
                how = f"labelled {var_labels[value]!r}" if code is not None else ""
                if code is None and value in STATA_DEFAULT_MISSING:
                    code, how = STATA_DEFAULT_MISSING[value], "unlabelled, by the .a/.b/.c convention"
                read_as = str(code) if code is not None else f".{value}"
                notes.append(ReadNote(file, row, name, "stata_extended_missing", f".{value}", read_as,
                                      f"Stata extended missing .{value} {how}".strip()
                                      if code is not None else f"Stata extended missing .{value} has no label "
                                      "naming a special code: left unreadable"))
                new.append(read_as)
            elif kind == "sav" and value in declared.get(name, ()) and value not in special:
                code = special_code_for_label(var_labels.get(value))
                if code is not None:
                    notes.append(ReadNote(file, row, name, "spss_user_missing", value, str(code),
                                          f"SPSS user-missing {value} labelled {var_labels[value]!r}"))
                    new.append(str(code))
                else:
                    new.append(value)
            else:
                new.append(value)
        out[name] = new
    return out, notes


def _read_parquet(path: Path, data: bytes | None = None) -> tuple[pl.DataFrame, None, dict, list[ReadNote]]:
    try:
        frame = pl.read_parquet(path if data is None else io.BytesIO(data))
    except Exception as exc:
        raise RawFileError(path, f"not a readable parquet file ({_first_line(exc)})") from None
    return _frame_as_text(frame), None, {}, []


def _first_line(exc: Exception) -> str:
    """A library's error as one short line (no file content beyond `CELL_SHOWN`*2 characters)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 2 * CELL_SHOWN else text[:2 * CELL_SHOWN] + "..."


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
# The survey files' readers of the bytes already read (`read_raw_file`; a workbook: `read_workbook`).
PARSERS = {
    "csv": _read_csv,
    "sav": lambda p, data: _read_stat(p, "sav", data),
    "dta": lambda p, data: _read_stat(p, "dta", data),
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


def read_raw_file(path: Path, role: str, folder: Path | None = None) -> LoadedFile:
    """Read one raw file of a wave (`role` = questionnaires or distribution); `folder` (default:
    the file's own folder) is where the file must live (`check_regular_file`).

    The file's bytes are read once (`read_file_bytes`): those bytes are parsed, and their
    sha256 and size are what the load log records."""
    ext = path.suffix.lower().lstrip(".")
    if ext not in READERS:
        raise RawFileError(path, f"unsupported format .{ext}")
    target = check_regular_file(path, folder or path.parent)
    data = read_file_bytes(path)
    date1904 = False
    if ext == "xlsx":
        workbook = read_workbook(path, data, role)
        frame, encoding, labels, notes, date1904 = workbook.frame, None, {}, workbook.notes, workbook.date1904
    else:
        frame, encoding, labels, notes = PARSERS[ext](path, data)
    notes = list(notes)
    if target is not None:
        notes.append(ReadNote(path.name, None, None, "symlink", path.name, str(target.relative_to(
            (folder or path.parent).resolve())), "a symbolic link to a file inside the wave folder: read its target"))
    # A workbook of several sheets numbers its rows itself (`_row` over the sheets, and each
    # row's sheet and row there); set aside while the values are read, put back after.
    location = None
    if ROW_COLUMN in frame.columns and all(c in frame.columns for c in LOCATION_COLUMNS):
        location = frame.select(ROW_COLUMN, *LOCATION_COLUMNS)
        frame = frame.drop(ROW_COLUMN, *LOCATION_COLUMNS)
    if frame.width == 0:
        raise RawFileError(path, "the file has no columns")
    frame = frame.with_columns(pl.all().cast(pl.String))
    _refuse_nul_cells(path, frame, location)
    frame, extras = match_columns(path, frame, role)
    frame, nfkc_notes = normalise_width(path.name, frame, role)
    notes += nfkc_notes
    frame = frame.with_columns(pl.all().str.strip_chars())
    frame = frame.with_columns(
        [pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in frame.columns]
    )
    frame, date_notes = normalise_dates(path.name, frame, role, date1904)
    notes += date_notes
    if "qid" in frame.columns:
        frame, qid_notes = unify_qid_variants(path.name, frame)
        notes += qid_notes
    # Row numbers count every data row of the file; rows with no value at all (blank lines,
    # an Excel export's trailing commas) carry nothing and are not keyed questionnaires.
    if location is None:
        frame = frame.with_row_index(ROW_COLUMN, offset=1).with_columns(pl.col(ROW_COLUMN).cast(pl.Int64))
    else:
        frame = pl.concat([location.select(ROW_COLUMN), frame, location.select(LOCATION_COLUMNS)], how="horizontal")
    frame = frame.filter(~pl.all_horizontal(pl.exclude(ROW_COLUMN, *LOCATION_COLUMNS).is_null()))
    if frame.height == 0:
        raise RawFileError(path, f"the file has a header but no {role} rows; deliver the data")
    return LoadedFile(
        name=role,
        path=path,
        frame=frame,
        format=ext,
        encoding=encoding,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        extra_columns=extras,
        value_labels=labels,
        notes=tuple(notes),
    )


def _refuse_nul_cells(path: Path, frame: pl.DataFrame, location: pl.DataFrame | None = None) -> None:
    """A NUL character in any cell (binary formats can store one) is refused by row and column
    (and sheet, for a workbook of several sheets: `location`)."""
    for name in frame.columns:
        hits = frame.select(pl.col(name).str.contains("\x00", literal=True).arg_true()).to_series()
        if hits.len():
            index = int(hits[0])
            where = row_location(location.row(index, named=True)) if location is not None else {"row": index + 1}
            raise RawFileError(path, "a NUL byte is inside the cell; remove it and re-export", column=name, **where)


def date_columns(role: str) -> list[str]:
    """The codebook's date columns of a role (survey_date for the questionnaires)."""
    return [v.name for v in load_codebook().file_variables(role) if v.kind == "date"]


def normalise_dates(file: str, frame: pl.DataFrame, role: str, date1904: bool = False
                    ) -> tuple[pl.DataFrame, list[ReadNote]]:
    """Dates delivered in another form than YYYY-MM-DD (Excel serial numbers, 2021年4月4日,
    2021.4.4, 2021/4/4, 20210404, ...: the forms and rules of `lib/staging/dates.py`) read
    as YYYY-MM-DD, in every date column of the role; `date1904`: the workbook counts serial
    numbers in the 1904 system. One note per column and form found, with how many values;
    a value in no form read is left as delivered (staging quarantines it, column named).
    Only the distinct values not already YYYY-MM-DD are looked at."""
    notes, updates = [], []
    for name in date_columns(role):
        if name not in frame.columns:
            continue
        others = (frame.select(pl.col(name).filter(~pl.col(name).str.contains(r"^\d{4}-\d{2}-\d{2}$")))
                  .to_series())
        if not others.len():
            continue
        counts = dict(others.value_counts().iter_rows())
        read: dict[str, str] = {}
        forms: dict[str, list] = {}  # form -> [values, the first delivered, its reading]
        for value in others.unique(maintain_order=True).to_list():
            found = read_date(value, date1904)
            if found is None:
                continue
            read[value] = found.iso
            entry = forms.setdefault(found.form, [0, value, found.iso])
            entry[0] += counts[value]
        if not read:
            continue
        updates.append(pl.col(name).replace(read).alias(name))
        for form, (count, example, iso) in forms.items():
            notes.append(ReadNote(file, None, name, "date_form", example[:CELL_SHOWN], iso,
                                  f"{count} value(s) of {name} delivered as {form} (e.g. {shown(example)}) "
                                  "read as YYYY-MM-DD dates"))
    return (frame.with_columns(updates) if updates else frame), notes


def width_normalised_columns(role: str) -> list[str]:
    """The columns whose values are NFKC-normalised: every non-personal codebook column of the
    role but free-text names (personal data and school names stay exactly as delivered)."""
    return [v.name for v in load_codebook().file_variables(role)
            if not v.personal and (v.kind != "text" or v.name.endswith("id"))]


def normalise_width(file: str, frame: pl.DataFrame, role: str) -> tuple[pl.DataFrame, list[ReadNote]]:
    """NFKC-normalise the cells of `width_normalised_columns`: full-width digits, signs and
    letters and the ideographic space become their ASCII forms (`３` -> `3`, `－9` -> `-9`).
    Only cells with a non-ASCII character are looked at; each changed cell is a note."""
    notes, updates = [], []
    for name in width_normalised_columns(role):
        rows = frame.select(pl.col(name).str.contains(r"[^\x00-\x7F]").fill_null(False).arg_true()).to_series()
        if not rows.len():
            continue
        values = frame[name].to_list()
        for index in rows.to_list():
            before = values[index]
            after = unicodedata.normalize("NFKC", before)
            if after != before:
                values[index] = after
                notes.append(ReadNote(file, index + 1, name, "nfkc", before[:CELL_SHOWN], after[:CELL_SHOWN],
                                      "full-width or compatibility characters normalised (NFKC)"))
        updates.append(pl.Series(name, values, dtype=pl.String))
    return (frame.with_columns(updates) if updates else frame), notes


def unify_qid_variants(file: str, frame: pl.DataFrame) -> tuple[pl.DataFrame, list[ReadNote]]:
    """qids that differ only in case (surrounding spaces are already gone) are one
    questionnaire: each variant is rewritten to the first spelling in the file, and noted."""
    qids = frame["qid"].to_list()
    first: dict[str, str] = {}
    notes = []
    changed = False
    for index, qid in enumerate(qids):
        if qid is None:
            continue
        key = qid.casefold()
        kept = first.setdefault(key, qid)
        if kept != qid:
            notes.append(ReadNote(file, index + 1, "qid", "qid_variant", qid[:CELL_SHOWN], kept[:CELL_SHOWN],
                                  f"qid {shown(qid)} differs from {shown(kept)} only in case: the same questionnaire"))
            qids[index] = kept
            changed = True
    return (frame.with_columns(pl.Series("qid", qids, dtype=pl.String)) if changed else frame), notes
