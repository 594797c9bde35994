"""The contracts' catalogue (what the Dagster definitions read instead of importing pandera)
equals the pandera contracts, and loading the definitions imports none of the heavy
libraries that only the steps need."""

import json
import subprocess
import sys

from lbc_pipeline.lib import contracts
from lbc_pipeline.lib.contracts import base, catalog


def test_the_catalogue_equals_the_pandera_contracts():
    assert catalog.catalog() == catalog.from_contracts(), (
        "lib/contracts/catalog.json is out of date: python -m lbc_pipeline.lib.contracts.catalog")


def test_catalogue_dtypes_are_the_contracts_dtypes():
    for table in contracts.tables():
        assert catalog.dtypes(table) == base.dtypes(table), table
        assert [str(t) for t in catalog.dtypes(table).values()] == [str(t) for t in base.dtypes(table).values()], table
        assert catalog.dtypes(table, drop=("wave",)) == base.dtypes(table, drop=("wave",)), table


def _tables_in_fresh_process(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_every_contract_registers_on_first_use():
    # a process that only asks the package sees every contract that any module declares
    lazily = _tables_in_fresh_process(
        "import json\nfrom lbc_pipeline.lib import contracts\nprint(json.dumps(contracts.tables()))")
    everything = _tables_in_fresh_process(
        "import importlib, json, pkgutil, lbc_pipeline\n"
        "for m in pkgutil.walk_packages(lbc_pipeline.__path__, 'lbc_pipeline.'):\n"
        "    if not m.name.startswith('lbc_pipeline.synthetic') and not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "from lbc_pipeline.lib.contracts import base\nprint(json.dumps(sorted(base.SCHEMAS)))")
    assert lazily == everything == sorted(catalog.catalog())


def test_loading_the_definitions_imports_no_step_library():
    heavy = ["pandera", "pandas", "scipy", "statsmodels", "matplotlib", "great_expectations", "sklearn",
             "polars", "duckdb", "numpy", "pyarrow"]
    out = subprocess.run(
        [sys.executable, "-c", "import json, sys\nimport lbc_pipeline.definitions\n"
         f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"],
        check=True, capture_output=True, text=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
