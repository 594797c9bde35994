"""What the Dagster definitions need of the contracts, without pandera: per table its grain
(the contract's description) and its columns (name, dtype, description), in `catalog.json`.

Loading the Definitions builds every asset's description and column schema (the UI's
Columns tab) from the contracts; importing pandera (and pandas, numpy under it) for that
alone costs most of a second. The catalogue is generated from the pandera contracts
(`python -m lbc_pipeline.lib.contracts.catalog` rewrites it) and a test checks that it
equals them, table by table, so it cannot drift.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path

CATALOG_FILE = Path(__file__).with_name("catalog.json")


@cache
def catalog() -> dict[str, dict]:
    """{table: {"description": grain, "columns": [[name, dtype, description], ...]}}."""
    return json.loads(CATALOG_FILE.read_text(encoding="utf-8"))


def has_contract(table: str) -> bool:
    return table in catalog()


def description(table: str) -> str:
    try:
        return catalog()[table]["description"]
    except KeyError:
        raise KeyError(f"{table} has no contract; register one in lbc_pipeline/lib/contracts/ "
                       f"and regenerate {CATALOG_FILE.name}") from None


def columns(table: str) -> list[tuple[str, str, str]]:
    """(name, dtype, description) of each column, in the contract's order."""
    try:
        return [tuple(c) for c in catalog()[table]["columns"]]
    except KeyError:
        raise KeyError(f"{table} has no contract; register one in lbc_pipeline/lib/contracts/ "
                       f"and regenerate {CATALOG_FILE.name}") from None


def polars_dtype(text: str):
    """A polars dtype from its repr as the catalogue stores it ('Int64', 'List(String)',
    "Datetime(time_unit='us', time_zone=None)", 'Struct({...})'): evaluated with polars' dtype
    classes as the only names (no builtins)."""
    import polars as pl

    names = {name: getattr(pl, name) for name in dir(pl.datatypes) if isinstance(getattr(pl, name, None), type)
             and issubclass(getattr(pl, name), pl.DataType)}
    return eval(text, {"__builtins__": {}}, names)  # noqa: S307 (our own file; names restricted to dtypes)


@cache
def _dtypes(table: str) -> tuple:
    return tuple((name, polars_dtype(dtype)) for name, dtype, _ in columns(table))


def dtypes(table: str, drop: tuple[str, ...] = ()) -> dict:
    """Column name -> polars dtype, in the contract's order (what `contracts.dtypes` gives)."""
    return {name: dtype for name, dtype in _dtypes(table) if name not in drop}


def from_contracts() -> dict[str, dict]:
    """The catalogue as the pandera contracts give it now (imports every contract)."""
    from lbc_pipeline.lib import contracts

    out = {}
    for table in contracts.tables():
        schema = contracts.schema_for(table)
        out[table] = {"description": schema.description,
                      "columns": [[name, str(column.dtype), column.description or ""]
                                  for name, column in schema.columns.items()]}
    return out


def dumps(tables: dict[str, dict]) -> str:
    """The catalogue as JSON with one line per column (readable diffs)."""
    def one(value) -> str:
        return json.dumps(value, ensure_ascii=False)

    blocks = []
    for table, entry in tables.items():
        columns = ",\n".join(f"   {one(c)}" for c in entry["columns"])
        blocks.append(f' {one(table)}: {{\n  "description": {one(entry["description"])},\n  "columns": [\n{columns}\n  ]\n }}')
    return "{\n" + ",\n".join(blocks) + "\n}\n"


def main() -> int:
    CATALOG_FILE.write_text(dumps(from_contracts()), encoding="utf-8")
    print(f"wrote {CATALOG_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
