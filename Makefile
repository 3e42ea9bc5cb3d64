# hubert-ee: `make repro` runs the pipeline, `make test` runs the tests (see README.md).
PROFILE ?= default
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

ifeq ($(PROFILE),default)
RUN_DIR := .
else
RUN_DIR := runs/$(PROFILE)
endif

.PHONY: install repro workspace flow test test-fast lint format bench clean-runs

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

## repro: run the DAG on PROFILE (default | smoke | base | any profiles/<name>.yaml)
repro: install workspace
	cd $(RUN_DIR) && PATH=$(CURDIR)/$(BIN):$$PATH dvc repro
	@echo "outputs of profile '$(PROFILE)' are in $(RUN_DIR)/ (corpus: $(RUN_DIR)/data/prepared)"

## workspace: create the profile's workspace (merged params, own dvc.lock and cache)
workspace: install
ifneq ($(PROFILE),default)
	$(BIN)/hubert-ee workspace $(PROFILE) $(RUN_DIR)
	test -d $(RUN_DIR)/.dvc || (cd $(RUN_DIR) && $(CURDIR)/$(BIN)/dvc init --no-scm -q \
		&& $(CURDIR)/$(BIN)/dvc config core.analytics false)
endif

## flow: the same DAG through Prefect (temporary local server; state in .prefect/)
flow: install workspace
	PREFECT_HOME=$(CURDIR)/.prefect PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=90 \
		PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m flows.pipeline --root $(RUN_DIR)

## test: the whole suite (unit + end-to-end on the smoke profile)
test: install
	$(BIN)/python -m pytest -q

## test-fast: unit tests only
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: install
	$(BIN)/python benchmarks/prepare.py
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/kmeans.py

clean-runs:
	rm -rf runs
