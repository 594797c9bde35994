"""The digest recorded for a raw file is the digest of the bytes that were read.

The reader once read a file's bytes, parsed them, and hashed the file again afterwards: a
file replaced in between (a large delivery copied over while it was read) was recorded
with the other file's digest. Here the file is replaced right after its bytes are read.
"""

import datetime as dt
import hashlib
import os
from pathlib import Path

import polars as pl
import pyreadstat
import pytest

from lbc_pipeline_tests.rows import valid_row, write_wave
from lbc_pipeline.codebook import load_codebook
from lbc_pipeline.lib.raw import reading
from lbc_pipeline.lib.raw.loading import load_folder
from lbc_pipeline.lib.raw.reading import file_sha256, read_raw_file

COLUMNS = [v.name for v in load_codebook().file_variables("questionnaires")]


def frame(qids: list[str]) -> pl.DataFrame:
    return pl.DataFrame([valid_row(q) for q in qids], schema={c: pl.String for c in COLUMNS})


def write(path: Path, qids: list[str]) -> None:
    data = frame(qids)
    ext = path.suffix.lstrip(".")
    if ext == "csv":
        data.write_csv(path)
    elif ext == "xlsx":
        data.write_excel(path)
    elif ext == "parquet":
        data.write_parquet(path)
    elif ext == "sav":
        pyreadstat.write_sav(data.to_pandas(), str(path))


def replace_after_read(monkeypatch, path: Path, qids: list[str]) -> bytes:
    """Replace `path` (rename over it, as a copy tool does) right after the reader has read
    its bytes; return the bytes of the replacement."""
    other = path.with_name("replacement" + path.suffix)
    write(other, qids)
    replacement = other.read_bytes()
    original = reading.read_file_bytes

    def read_then_replace(p: Path) -> bytes:
        data = original(p)
        if p == path and other.exists():
            os.replace(other, path)
        return data

    monkeypatch.setattr(reading, "read_file_bytes", read_then_replace)
    return replacement


@pytest.mark.parametrize("ext", ["csv", "xlsx", "parquet", "sav"])
def test_a_file_replaced_during_the_read_keeps_the_digest_of_what_was_read(tmp_path, monkeypatch, ext):
    path = tmp_path / f"questionnaires.{ext}"
    write(path, ["A1", "A2"])
    delivered = path.read_bytes()
    replacement = replace_after_read(monkeypatch, path, ["B1", "B2", "B3"])
    loaded = read_raw_file(path, "questionnaires")
    assert path.read_bytes() == replacement  # the file on disk is the other one now
    assert loaded.frame["qid"].to_list() == ["A1", "A2"]  # the rows read are the first file's
    assert loaded.sha256 == hashlib.sha256(delivered).hexdigest()  # and so is the digest
    assert loaded.size_bytes == len(delivered)
    assert file_sha256(path) != loaded.sha256  # hashing the path again would have named the other file


def test_the_delivery_fingerprint_uses_the_digests_of_what_was_read(tmp_path, monkeypatch):
    folder = write_wave(tmp_path / "w", [valid_row("A1"), valid_row("A2")])
    path = folder / "questionnaires.csv"
    delivered = path.read_bytes()
    replace_after_read(monkeypatch, path, ["B1"])
    files = load_folder(folder)
    assert files.delivery.files["questionnaires.csv"] == hashlib.sha256(delivered).hexdigest()
    assert files.raw_tables(dt.datetime(2026, 1, 1))["raw.load_log"]["sha256"][0] \
        == hashlib.sha256(delivered).hexdigest()


def test_an_unchanged_file_has_its_own_digest(tmp_path):
    """Negative case: nothing replaced, the digest is the file's."""
    path = tmp_path / "questionnaires.csv"
    write(path, ["A1"])
    loaded = read_raw_file(path, "questionnaires")
    assert (loaded.sha256, loaded.size_bytes) == (file_sha256(path), path.stat().st_size)
