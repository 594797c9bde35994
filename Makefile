# Set-up and everyday commands. Every target installs what it needs first.
#   make run    install, then run the main job on every wave under data/raw
#   make test   install (with test extras), then run the whole test suite (CI runs this)
#   make test-fast  the fast default run: no integration or load tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv

.PHONY: install run test test-fast ui flow benchmark clean-outputs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv==0.13.8

$(VENV)/.installed: $(BIN)/python requirements.lock pyproject.toml
	$(UV) pip sync --quiet --python $(BIN)/python requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/lbc run

test: install
	$(BIN)/python -m pytest -m "slow or not slow"

test-fast: install
	$(BIN)/python -m pytest

ui: install
	@home=$${DAGSTER_HOME:-$(CURDIR)/.dagster_home}; mkdir -p $$home; \
	  [ -f $$home/dagster.yaml ] || cp dagster.yaml $$home/dagster.yaml; \
	  DAGSTER_HOME=$$home $(BIN)/dagster dev -w workspace.yaml

flow: install
	$(BIN)/lbc flow

benchmark: install
	$(BIN)/python scripts/benchmark.py

clean-outputs:
	rm -rf data/warehouse data/artifacts data/reports
