"""What a run produced, as digests: one per warehouse table and one per output file.

Two runs on the same files must give the same digests (exact reruns). Columns that record
when or by which run something happened are the only thing allowed to differ, and they are
left out: `RUN_COLUMNS`. A table's digest is taken over its rows sorted on every column, so
it does not depend on the order rows were written in; DuckDB writes doubles as their exact
shortest decimal text, so one bit of difference changes the digest.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import duckdb

# Columns that record a run's time or identity, not its results.
RUN_COLUMNS = frozenset({"loaded_at", "rejected_at", "run_id", "built_at", "created_at", "started_at",
                         "published_at"})


def table_digests(database: Path) -> dict[str, str]:
    """`schema.table` -> sha256 of its rows (sorted, run columns left out), for every table."""
    out = {}
    with duckdb.connect(str(database), read_only=True) as con:
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() "
            "where database_name = current_database() order by 1, 2").fetchall()
        for schema, table in tables:
            columns = [c for (c,) in con.execute(
                "select column_name from duckdb_columns() where schema_name = ? and table_name = ? "
                "and database_name = current_database() order by column_index", [schema, table]).fetchall()
                if c not in RUN_COLUMNS]
            quoted = ", ".join(f'"{c}"' for c in columns)
            rows = con.execute(
                f'select {quoted} from "{schema}"."{table}" order by all').fetchall() if columns else []
            digest = hashlib.sha256(repr(columns).encode())
            for row in rows:
                digest.update(repr(row).encode())
            out[f"{schema}.{table}"] = digest.hexdigest()
    return out


def file_digests(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every published file under `folder` (empty when it does not
    exist): each wave's folder as consumers see it (through its link to the live version);
    the version folders themselves (`.versions`, named by run) and anything that is not a
    regular file (a FIFO would block the read) are left out."""
    if not folder.exists():
        return {}
    out = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            if entry.is_file():
                out[entry.name] = hashlib.sha256(entry.read_bytes()).hexdigest()
            continue
        for root, dirs, files in os.walk(entry, followlinks=True):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                path = Path(root) / name
                if not path.is_file():  # a FIFO or socket would block or fail the read
                    continue
                out[str(Path(entry.name) / path.relative_to(entry))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def run_outputs(data: Path) -> dict[str, str]:
    """Every digest of a data folder's outputs: warehouse tables, artifacts and reports."""
    out = {f"table {k}": v for k, v in table_digests(data / "warehouse" / "lbc.duckdb").items()}
    for kind in ("artifacts", "reports"):
        out.update({f"{kind}/{k}": v for k, v in file_digests(data / kind).items()})
    return out


def differences(first: dict[str, str], second: dict[str, str]) -> list[str]:
    """Names whose digests differ or that exist on one side only."""
    return sorted(k for k in first.keys() | second.keys() if first.get(k) != second.get(k))
