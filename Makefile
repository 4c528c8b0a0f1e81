# wattlake: `make demo` (install + sample fleet + every asset on ./lakehouse), `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
STAMP  := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install demo test test-fast dev bench clean

$(STAMP): requirements.lock requirements-nodeps.txt pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "wattlake needs Python 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.8
	$(UV) pip install -q -p $(BIN)/python -r requirements.lock
	$(UV) pip install -q -p $(BIN)/python --no-deps -r requirements-nodeps.txt
	$(UV) pip install -q -p $(BIN)/python --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME) && cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/wattlake demo

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

test-fast: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -q -m "not slow"

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -m pipelines.definitions

bench: install
	$(BIN)/python benchmarks/run.py --systems 100 --days 365 --json bench-100.json

clean:
	rm -rf lakehouse landing .dagster_home exports data_docs
