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

# Bytecode is compiled at install time: this machine sets PYTHONDONTWRITEBYTECODE=1, so
# without it every process recompiles every module it imports (seconds per run).
$(VENV)/.installed: $(BIN)/python requirements.lock pyproject.toml
	$(UV) pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python --no-deps -e .
	touch $@

# The project's own modules (an editable install) are compiled on every install; up to date,
# this takes a fraction of a second.
install: $(VENV)/.installed
	$(BIN)/python -m compileall -q lbc_pipeline scripts

run: install
	$(BIN)/lbc run

# Two worker processes (pytest-xdist), each file's tests on one worker: the suite's whole
# runs are mostly one-core Python, so two of them at once use this 2-core machine (and CI).
test: install
	$(BIN)/python -m pytest -m "slow or not slow" -n 2 --dist loadfile

test-fast: install
	$(BIN)/python -m pytest -n 2 --dist loadfile

ui: install
	@home=$${DAGSTER_HOME:-$(CURDIR)/.dagster_home}; mkdir -p $$home; \
	  [ -f $$home/dagster.yaml ] || cp dagster.yaml $$home/dagster.yaml; \
	  DAGSTER_HOME=$$home $(BIN)/dagster dev -w workspace.yaml

flow: install
	$(BIN)/lbc flow

# Every case by default (1M waves included: minutes); e.g. BENCH_ARGS="--only reference --pairs 5"
benchmark: install
	$(BIN)/python scripts/benchmark.py $(BENCH_ARGS)

clean-outputs:
	rm -rf data/warehouse data/restricted data/artifacts data/reports
