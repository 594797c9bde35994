"""Reading a wave's `interviews/` folder: three tables (csv or xlsx) or one REFI-QDA `.qdpx`.

Either way the result is the same three frames of text values as delivered, with column
names matched to the contract (shared/spec/qualitative.md; case and surrounding spaces
ignored), the extra columns kept, and a `_row` column: the row's number in its file (1 =
first data row) or, in a `.qdpx`, the element's position in `project.qde` (the nth source,
the nth code in document order, the nth coding). A project exported as tables and as a
`.qdpx` therefore reads into identical frames. Anything that stops a file from being read
raises the survey strand's `RawFileError`, which names the file, the row and the column.

`.qdpx` files are zip archives: `project.qde` (XML, namespace urn:QDA-XML:project:1.0) and
the transcripts under `sources/`. The XML is parsed with defusedxml and every DTD, entity
declaration and external reference is refused (a REFI-QDA project needs none), so a project
cannot make the parser read local files, reach the network or expand without bound. The
project is then validated against the REFI-QDA 1.5 schema (`reference/Project-mrt2019.xsd`,
MIT, with lxml), and the reader checks what the schema cannot: selections inside their
transcript, references to declared variables, transcripts present in the archive.
REFI codes carry only a name: the code book's label, hypothesis, stance and definition are
read from `key: value` lines of the code's Description (the convention of the demo export).
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
import polars as pl
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from lxml import etree

from lbc_pipeline.config import REFERENCE_DIR

from lbc_pipeline.lib.raw.reading import READERS, RESERVED_COLUMNS, ROW_COLUMN, RawFileError, file_sha256

FOLDER = "interviews"
TABLE_EXTENSIONS = ("csv", "xlsx")
QDA_NAMESPACE = "urn:QDA-XML:project:1.0"
PROJECT_XSD = REFERENCE_DIR / "Project-mrt2019.xsd"
PROJECT_ENTRY = "project.qde"
MAX_PROJECT_BYTES = 256 * 1024 * 1024  # a larger project.qde is refused (zip bomb guard)
MAX_SOURCE_BYTES = 64 * 1024 * 1024

# table -> (required columns, optional columns), in the contract's order.
COLUMNS = {
    "interviews": (
        ("interview_id", "informant_code", "role", "school_id", "child_migration_group", "interview_date",
         "duration_min", "consent"),
        ("destination", "language", "interviewer"),
    ),
    "segments": (("interview_id", "segment_id", "code", "text"), ("position",)),
    "codebook": (("code", "hypothesis", "stance"), ("label", "parent_code", "definition")),
}
CONTRACT_ORDER = {
    "interviews": ("interview_id", "informant_code", "role", "school_id", "child_migration_group", "destination",
                   "interview_date", "duration_min", "language", "consent", "interviewer"),
    "segments": ("interview_id", "segment_id", "code", "text", "position"),
    "codebook": ("code", "label", "parent_code", "hypothesis", "stance", "definition"),
}
TABLES = tuple(COLUMNS)
CODE_DESCRIPTION_KEYS = ("label", "hypothesis", "stance", "definition")


@dataclass(frozen=True)
class InterviewFile:
    """One file of the folder as the load log records it."""

    path: Path
    role: str  # interviews, segments, codebook, or qdpx
    format: str
    rows: int | None
    status: str  # read, or why it was not

    def log_row(self, wave: str, loaded_at: dt.datetime) -> dict:
        return {"wave": wave, "file": self.path.name, "role": self.role, "sha256": file_sha256(self.path),
                "size_bytes": self.path.stat().st_size, "rows": self.rows, "format": self.format,
                "status": self.status, "loaded_at": loaded_at}


@dataclass(frozen=True)
class InterviewDelivery:
    """The three frames of a wave's interviews (text as delivered, `_row`) and its files."""

    tables: dict[str, pl.DataFrame]
    files: list[InterviewFile] = field(default_factory=list)
    extra_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)


def interview_folder(wave_folder: Path) -> Path | None:
    """The wave's `interviews/` folder, or None when the wave delivered no interviews."""
    folder = Path(wave_folder) / FOLDER
    return folder if folder.is_dir() else None


# --------------------------------------------------------------------------- tables
def conform(path: Path, frame: pl.DataFrame, table: str) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Text values stripped (empty = null), names matched to the contract, optional columns
    added as null, contract columns first then the extras; blank rows dropped; `_row` kept."""
    required, optional = COLUMNS[table]
    rows = frame[ROW_COLUMN] if ROW_COLUMN in frame.columns else None
    frame = frame.drop(ROW_COLUMN) if rows is not None else frame
    normalised: dict[str, str] = {}
    for name in frame.columns:
        key = name.strip().lower().lstrip("\ufeff")
        if key in normalised.values():
            raise RawFileError(path, f"two columns are both {key!r} once case and spaces are ignored", column=name)
        if key in RESERVED_COLUMNS:
            raise RawFileError(path, f"column name {key!r} is reserved by the pipeline: rename it", column=name)
        normalised[name] = key
    missing = [c for c in required if c not in normalised.values()]
    if missing:
        raise RawFileError(path, f"required column(s) of the {table} table missing: {', '.join(missing)}",
                           column=missing[0])
    frame = frame.rename(normalised).with_columns(pl.all().cast(pl.String).str.strip_chars())
    frame = frame.with_columns([pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in frame.columns])
    for name in optional:
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(name))
    extras = tuple(c for c in frame.columns if c not in CONTRACT_ORDER[table])
    frame = frame.select([*CONTRACT_ORDER[table], *extras])
    if rows is None:
        frame = frame.with_row_index(ROW_COLUMN, offset=1)
    else:
        frame = frame.with_columns(rows.alias(ROW_COLUMN))
    frame = frame.with_columns(pl.col(ROW_COLUMN).cast(pl.Int64)).select(ROW_COLUMN, pl.exclude(ROW_COLUMN))
    return frame.filter(~pl.all_horizontal(pl.exclude(ROW_COLUMN).is_null())), extras


def read_table(path: Path, table: str) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """One of the three tables, from csv (UTF-8 or GB18030) or xlsx."""
    ext = path.suffix.lower().lstrip(".")
    if ext not in TABLE_EXTENSIONS:
        raise RawFileError(path, f"unsupported format .{ext} for an interview table (csv or xlsx)")
    frame = READERS[ext](path)[0]
    if frame.width == 0:
        raise RawFileError(path, "the file has no columns")
    return conform(path, frame, table)


# --------------------------------------------------------------------------- REFI-QDA
def _q(tag: str) -> str:
    return f"{{{QDA_NAMESPACE}}}{tag}"


def parse_project(path: Path, data: bytes) -> Element:
    """`project.qde` parsed with DTDs, entities and external references refused."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden) as exc:
        if re.search(rb"<!ENTITY[^>]*(SYSTEM|PUBLIC)", data):
            what = "an external entity (it would make the parser read a file or a URL)"
        elif b"<!ENTITY" in data:
            what = "an entity (entities can expand without bound)"
        else:
            what = "a DTD (a DTD can declare entities, external ones included)"
        raise RawFileError(path, f"{PROJECT_ENTRY} declares {what}: refused, a REFI-QDA project needs none; "
                           f"export it again without a DOCTYPE ({type(exc).__name__})") from None
    except ParseError as exc:
        line, column = exc.position
        raise RawFileError(path, f"{PROJECT_ENTRY} is not well-formed XML at line {line}, column {column} "
                           f"({exc.msg if hasattr(exc, 'msg') else exc})") from None
    if root.tag != _q("Project"):
        raise RawFileError(path, f"{PROJECT_ENTRY}: the root element is {root.tag!r}, not a REFI-QDA "
                           f"<Project> in namespace {QDA_NAMESPACE}")
    validate_project(path, data)
    return root


@cache
def project_schema() -> etree.XMLSchema:
    """The REFI-QDA 1.5 project schema (Project-mrt2019.xsd, MIT, shipped in reference/)."""
    return etree.XMLSchema(etree.parse(str(PROJECT_XSD), _LXML_PARSER))


# lxml only ever sees bytes that defusedxml accepted (no DTD, no entity); it is told not to
# load DTDs, resolve entities or use the network all the same.
_LXML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def validate_project(path: Path, data: bytes) -> None:
    """Raise `RawFileError` (with the line) when project.qde breaks the REFI-QDA schema."""
    schema = project_schema()
    if not schema.validate(etree.fromstring(data, _LXML_PARSER)):
        error = schema.error_log.last_error
        raise RawFileError(path, f"{PROJECT_ENTRY} does not follow the REFI-QDA project schema "
                           f"({PROJECT_XSD.name}) at line {error.line}: {error.message}")


def _attr(path: Path, element: Element, name: str, what: str, ordinal: int) -> str:
    value = element.get(name)
    if value is None or not value.strip():
        raise RawFileError(path, f"{PROJECT_ENTRY}: {what} has no {name!r} attribute", row=ordinal, column=name)
    return value.strip()


def _code_description(text: str | None) -> dict[str, str | None]:
    """label, hypothesis, stance, definition from `key: value` lines (absent keys: null)."""
    values: dict[str, str | None] = dict.fromkeys(CODE_DESCRIPTION_KEYS)
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in values:
            values[key.strip().lower()] = value.strip() or None
    return values


def _read_source_text(path: Path, archive: zipfile.ZipFile, source: Element, ordinal: int) -> str:
    content = source.find(_q("PlainTextContent"))
    if content is not None:
        return content.text or ""
    target = _attr(path, source, "plainTextPath", "a TextSource without PlainTextContent", ordinal)
    if not target.startswith("internal://"):
        raise RawFileError(path, f"{PROJECT_ENTRY}: TextSource {source.get('name')!r} points outside the "
                           f"project ({target!r}); only internal:// sources are read", row=ordinal, column="plainTextPath")
    entry = "sources/" + target.removeprefix("internal://")
    try:
        info = archive.getinfo(entry)
    except KeyError:
        raise RawFileError(path, f"{PROJECT_ENTRY}: TextSource {source.get('name')!r} names {entry}, which is "
                           "not in the archive", row=ordinal, column="plainTextPath") from None
    if info.file_size > MAX_SOURCE_BYTES:
        raise RawFileError(path, f"{entry} unpacks to {info.file_size} bytes: refused", row=ordinal)
    try:
        return archive.read(entry).decode("utf-8")
    except UnicodeDecodeError:
        raise RawFileError(path, f"{entry} is not UTF-8 text", row=ordinal, column="plainTextPath") from None


def read_qdpx(path: Path) -> dict[str, pl.DataFrame]:
    """The interviews, segments and codebook frames of a REFI-QDA project."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise RawFileError(path, f"not a readable .qdpx: a .qdpx is a zip archive and this one cannot be opened ({exc})") from None
    with archive:
        try:
            info = archive.getinfo(PROJECT_ENTRY)
        except KeyError:
            raise RawFileError(path, f"the archive holds no {PROJECT_ENTRY}, so it is not a REFI-QDA project") from None
        if info.file_size > MAX_PROJECT_BYTES:
            raise RawFileError(path, f"{PROJECT_ENTRY} unpacks to {info.file_size} bytes: refused")
        try:
            data = archive.read(PROJECT_ENTRY)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise RawFileError(path, f"{PROJECT_ENTRY} cannot be unpacked: the archive is damaged ({exc})") from None
        root = parse_project(path, data)
        return _project_frames(path, archive, root)


def _project_frames(path: Path, archive: zipfile.ZipFile, root: Element) -> dict[str, pl.DataFrame]:
    codes: dict[str, str] = {}
    code_rows: list[dict] = []

    def walk(element: Element, parent: str | None) -> None:
        for code in element.findall(_q("Code")):
            ordinal = len(code_rows) + 1
            guid = _attr(path, code, "guid", "a Code", ordinal)
            name = _attr(path, code, "name", f"Code {guid}", ordinal)
            codes[guid] = name
            description = code.find(_q("Description"))
            code_rows.append({ROW_COLUMN: ordinal, "code": name, "parent_code": parent,
                              **_code_description(description.text if description is not None else None)})
            walk(code, name)

    book = root.find(_q("CodeBook"))
    if book is not None and book.find(_q("Codes")) is not None:
        walk(book.find(_q("Codes")), None)

    variables: dict[str, str] = {}
    for k, variable in enumerate(root.iterfind(f"{_q('Variables')}/{_q('Variable')}"), start=1):
        variables[_attr(path, variable, "guid", "a Variable", k)] = _attr(path, variable, "name", "a Variable", k)

    interview_rows: list[dict] = []
    segment_rows: list[dict] = []
    sources = root.find(_q("Sources"))
    for ordinal, source in enumerate(sources.findall(_q("TextSource")) if sources is not None else [], start=1):
        name = _attr(path, source, "name", "a TextSource", ordinal)
        row: dict = {ROW_COLUMN: ordinal, "interview_id": name}
        for value in source.findall(_q("VariableValue")):
            ref = value.find(_q("VariableRef"))
            target = ref.get("targetGUID") if ref is not None else None
            if target not in variables:
                raise RawFileError(path, f"{PROJECT_ENTRY}: TextSource {name!r} has a value of an undeclared "
                                   f"variable ({target!r})", row=ordinal, column="VariableRef")
            held = [child for child in value if child is not ref]
            row[variables[target]] = held[0].text if held else None
        interview_rows.append(row)
        text = _read_source_text(path, archive, source, ordinal)
        for selection in source.findall(_q("PlainTextSelection")):
            codings = selection.findall(_q("Coding"))
            position = len(segment_rows) + 1
            bounds = []
            for attribute in ("startPosition", "endPosition"):
                raw = _attr(path, selection, attribute, f"a PlainTextSelection of {name!r}", position)
                if not re.fullmatch(r"\d+", raw):
                    raise RawFileError(path, f"{PROJECT_ENTRY}: {attribute} {raw!r} of a selection of {name!r} "
                                       "is not a whole number", row=position, column=attribute)
                bounds.append(int(raw))
            start, end = bounds
            if not start <= end <= len(text):
                raise RawFileError(path, f"{PROJECT_ENTRY}: selection {start}-{end} of {name!r} lies outside its "
                                   f"transcript of {len(text)} characters", row=position, column="endPosition")
            segment_id = selection.get("name") or selection.get("guid")
            for coding in codings:
                ref = coding.find(_q("CodeRef"))
                target = ref.get("targetGUID") if ref is not None else None
                segment_rows.append({
                    ROW_COLUMN: len(segment_rows) + 1, "interview_id": name, "segment_id": segment_id,
                    # an unresolved reference stays visible: quarantined later as an unknown code
                    "code": codes.get(target, target), "text": text[start:end], "position": f"{start}-{end}",
                })
    # registry columns in the order the project declares its variables
    columns = list(dict.fromkeys([ROW_COLUMN, "interview_id", *variables.values()]))
    frames = {
        "interviews": pl.DataFrame(interview_rows, schema={c: (pl.Int64 if c == ROW_COLUMN else pl.String) for c in columns}),
        "segments": pl.DataFrame(segment_rows, schema={ROW_COLUMN: pl.Int64, **{c: pl.String for c in ("interview_id", "segment_id", "code", "text", "position")}}),
        "codebook": pl.DataFrame(code_rows, schema={ROW_COLUMN: pl.Int64, **{c: pl.String for c in ("code", "parent_code", *CODE_DESCRIPTION_KEYS)}}),
    }
    return frames


# --------------------------------------------------------------------------- folder
def _find(folder: Path, stem: str) -> Path | None:
    found = sorted(p for p in folder.glob(f"{stem}.*") if p.suffix.lower().lstrip(".") in TABLE_EXTENSIONS)
    if len(found) > 1:
        raise RawFileError(found[0], f"more than one {stem} table ({', '.join(p.name for p in found)}): keep one")
    return found[0] if found else None


def read_interview_folder(folder: Path) -> InterviewDelivery:
    """Read a wave's interviews folder. The three tables take precedence; a `.qdpx` beside
    them is logged as not read. Raises `RawFileError` naming the file, row and column."""
    tables = {t: _find(folder, t) for t in TABLES}
    projects = sorted(folder.glob("*.qdpx"))
    if len(projects) > 1:
        raise RawFileError(projects[0], f"more than one .qdpx project ({', '.join(p.name for p in projects)}): keep one")
    present = [t for t, p in tables.items() if p is not None]
    if present and len(present) < len(TABLES):
        missing = [t for t in TABLES if t not in present]
        raise RawFileError(folder / f"{missing[0]}.csv", f"the interview tables come as three ({', '.join(TABLES)}); "
                           f"{', '.join(missing)} is missing")
    if present:
        frames, extras, files = {}, {}, []
        for table, path in tables.items():
            frames[table], extras[table] = read_table(path, table)
            files.append(InterviewFile(path, table, path.suffix.lower().lstrip("."), frames[table].height, "read"))
        files += [InterviewFile(p, "qdpx", "qdpx", None, "not read: the tables take precedence") for p in projects]
        return InterviewDelivery(frames, files, extras)
    if projects:
        path = projects[0]
        frames, extras = {}, {}
        for table, frame in read_qdpx(path).items():
            frames[table], extras[table] = conform(path, frame, table)
        rows = sum(f.height for f in frames.values())
        return InterviewDelivery(frames, [InterviewFile(path, "qdpx", "qdpx", rows, "read")], extras)
    raise RawFileError(folder, "the interviews folder holds neither the three tables (interviews, segments, "
                       "codebook as csv or xlsx) nor a .qdpx project")
