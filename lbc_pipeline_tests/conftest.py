"""Shared fixtures: a private data folder, warehouse, key and DAGSTER_HOME per test; every
test under integration/ is marked slow."""

from pathlib import Path

import pytest

INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items):
    for item in items:
        if INTEGRATION in Path(item.fspath).parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def data_env(tmp_path, monkeypatch):
    """A private data folder, warehouse, pseudonym key and DAGSTER_HOME for one test."""
    data = tmp_path / "data"
    (data / "raw").mkdir(parents=True)
    monkeypatch.setenv("LBC_DATA_DIR", str(data))
    monkeypatch.setenv("LBC_DUCKDB_PATH", str(data / "warehouse" / "lbc.duckdb"))
    key = tmp_path / "pseudonym.key"
    key.write_text("ab" * 32)
    monkeypatch.setenv("LBC_PSEUDONYM_KEY_FILE", str(key))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return data
