"""Writers for a wave's raw files in every format data entry may deliver (instrument.md
section 1): UTF-8 csv, GB18030 csv (what Chinese data-entry tools export as "GBK"), xlsx,
SPSS sav and Stata dta with variable and value labels from the codebook, and parquet.

Every writer is deterministic: the same frame gives the same bytes. The formats that carry
a creation time (xlsx document properties, the sav and dta headers) get a fixed one,
`FILE_TIMESTAMP`, instead of the clock's.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import polars as pl
import pyreadstat
import xlsxwriter
import yaml

from lbc_pipeline.codebook import Variable, load_codebook

# format name -> file extension
FORMATS = {
    "csv": "csv",
    "csv-gbk": "csv",
    "xlsx": "xlsx",
    "sav": "sav",
    "dta": "dta",
    "parquet": "parquet",
}
STATA_LABEL_LIMIT = 80  # characters of a Stata variable label
FILE_TIMESTAMP = dt.datetime(2020, 7, 1, 0, 0)  # creation time written into file headers
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def variable_label(variable: Variable) -> str:
    """A variable's label for sav and dta: English, then Chinese."""
    return f"{variable.en} / {variable.zh}"


def value_labels(variable: Variable) -> dict[int, str]:
    """A numeric variable's value labels: its codes and the special codes, English / Chinese."""
    book = load_codebook()
    labels = {code: f"{en} / {zh}" for code, (en, zh) in variable.codes.items()}
    labels.update({s.code: f"{s.en} / {s.zh}" for s in book.special_codes})
    return labels


def _labelled_variables(frame: pl.DataFrame, file: str) -> list[Variable]:
    book = load_codebook()
    by_name = {v.name: v for v in book.file_variables(file)}
    return [by_name[c] for c in frame.columns if c in by_name]


def _for_pyreadstat(frame: pl.DataFrame) -> pd.DataFrame:
    """pandas frame that pyreadstat writes: numbers as float64 (null -> NaN), text as str."""
    out = {}
    for name, dtype in frame.schema.items():
        column = frame[name]
        if dtype.is_numeric():
            out[name] = column.cast(pl.Float64).to_numpy()
        else:
            out[name] = pd.Series(column.fill_null("").to_list(), dtype=object)
    return pd.DataFrame(out)


def write_frame(frame: pl.DataFrame, out_dir: Path, file: str, fmt: str) -> Path:
    """Write one raw file (`questionnaires` or `distribution`) as `<file>.<ext>`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    path = Path(out_dir) / f"{file}.{FORMATS[fmt]}"
    if fmt == "csv":
        frame.write_csv(path)
    elif fmt == "csv-gbk":
        path.write_bytes(frame.write_csv().encode("gb18030"))
    elif fmt == "xlsx":
        workbook = xlsxwriter.Workbook(str(path))
        workbook.set_properties({"created": FILE_TIMESTAMP})
        frame.write_excel(workbook, worksheet=file, autofit=False)
        workbook.close()
    elif fmt == "parquet":
        frame.write_parquet(path, statistics=False)
    elif fmt == "sav":
        variables = _labelled_variables(frame, file)
        pyreadstat.write_sav(
            _for_pyreadstat(frame), str(path),
            column_labels={v.name: variable_label(v) for v in variables},
            variable_value_labels={v.name: value_labels(v) for v in variables if v.kind == "code"},
        )
        _stamp_sav(path)
    else:  # dta
        variables = _labelled_variables(frame, file)
        pyreadstat.write_dta(
            _for_pyreadstat(frame), str(path),
            column_labels={v.name: variable_label(v)[:STATA_LABEL_LIMIT] for v in variables},
            variable_value_labels={v.name: value_labels(v) for v in variables if v.kind == "code"},
        )
        _stamp_dta(path)
    return path


def _stamp_sav(path: Path) -> None:
    """Overwrite the creation date and time of a sav header (pyreadstat writes the clock's):
    `dd Mon yy` at byte 92 and `hh:mm:ss` at byte 101 of the fixed-layout file header."""
    data = bytearray(path.read_bytes())
    if data[:4] not in (b"$FL2", b"$FL3"):
        raise ValueError(f"{path} is not an SPSS system file")
    t = FILE_TIMESTAMP
    data[92:109] = f"{t.day:02d} {_MONTHS[t.month - 1]} {t.year % 100:02d}{t:%H:%M:%S}".encode("ascii")
    path.write_bytes(bytes(data))


def _stamp_dta(path: Path) -> None:
    """Overwrite the `<timestamp>` of a dta header (`dd Mon yyyy hh:mm`, 17 bytes)."""
    data = bytearray(path.read_bytes())
    tag = data.find(b"<timestamp>")
    if tag < 0 or data[tag + 11] != 17:
        raise ValueError(f"{path} has no Stata 118+ timestamp")
    t = FILE_TIMESTAMP
    start = tag + 12
    data[start:start + 17] = f"{t.day:02d} {_MONTHS[t.month - 1]} {t.year} {t:%H:%M}".encode("ascii")
    path.write_bytes(bytes(data))


def write_manifest(manifest: dict, out_dir: Path) -> Path:
    """Write `wave.yaml` (keys in the manifest's order, dates as YYYY-MM-DD)."""
    path = Path(out_dir) / "wave.yaml"
    path.write_text(
        yaml.safe_dump(manifest, allow_unicode=True, sort_keys=False, default_flow_style=False, width=100),
        encoding="utf-8",
    )
    return path
