"""Dump every table of a warehouse to sorted CSV, to compare two runs' outputs.

Run ids and timestamps (`run_id`, columns ending in `_at`) are dropped; list and struct
columns are written as JSON text; rows are sorted on every column. Two runs of the same
inputs must give byte-identical files (`diff -r`).

    .venv/bin/python scripts/dump_warehouse.py data/warehouse/lbc.duckdb /tmp/dump
"""

import sys
from pathlib import Path

import duckdb

NESTED = ("[]", "STRUCT", "MAP", "JSON")


def main(database: str, out: str) -> int:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(database, read_only=True)
    tables = con.execute("select table_schema, table_name from information_schema.tables order by 1, 2").fetchall()
    for schema, table in tables:
        columns = con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position", [schema, table]).fetchall()
        keep = [(c, t) for c, t in columns if c != "run_id" and not c.endswith("_at")]
        select = ", ".join(
            f'to_json("{c}")::varchar as "{c}"' if any(n in t for n in NESTED) else f'"{c}"' for c, t in keep)
        frame = con.sql(f'select {select} from "{schema}"."{table}"').pl()
        frame = frame.sort(frame.columns, nulls_last=True) if frame.height else frame
        frame.write_csv(folder / f"{schema}.{table}.csv", float_precision=None)
        print(f"{schema}.{table}", frame.shape)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
