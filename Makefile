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

.DEFAULT_GOAL := help

.PHONY: help install gpu-wheels check-params repro push pull exp-show workspace flow serve serve-model prefect-ui mlflow-ui test test-serial test-fast lint format bench clean-runs

## help: this list (`make <target> [PROFILE=smoke]`)
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed -e 's/^## /  /' -e 's/: /\t/' | expand -t 16

## install: the virtual environment in .venv (torch, dvc, prefect, mlflow, ...) and the package
install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

## check-params: validate params.yaml and every profile overlay (before any work)
check-params: install
	$(BIN)/hubert-ee check-params --root .

## repro: run the DAG on PROFILE (default | smoke | base | any profiles/<name>.yaml)
repro: install check-params workspace
	cd $(RUN_DIR) && PATH=$(CURDIR)/$(BIN):$$PATH hubert-ee run -- dvc repro
	@echo "outputs of profile '$(PROFILE)' are in $(RUN_DIR)/ (corpus: $(RUN_DIR)/data/prepared)"

## push: PROFILE's DVC-cached outputs to DVC_REMOTE (default ../hubert-ee-dvc-remote; s3://, gs://: README)
DVC_REMOTE ?= $(abspath $(CURDIR)/../hubert-ee-dvc-remote)
push: install
	cd $(RUN_DIR) && $(CURDIR)/$(BIN)/dvc remote add --local --force hubert-ee '$(DVC_REMOTE)' \
		&& $(CURDIR)/$(BIN)/dvc push -r hubert-ee

## pull: PROFILE's outputs from DVC_REMOTE into this clone (what `dvc.lock` names, byte for byte)
pull: install workspace
	cd $(RUN_DIR) && $(CURDIR)/$(BIN)/dvc remote add --local --force hubert-ee '$(DVC_REMOTE)' \
		&& $(CURDIR)/$(BIN)/dvc pull -r hubert-ee

## exp-show: DVC experiments (`dvc exp run -S key=value`) with the headline figures only
exp-show: install
	PATH=$(CURDIR)/$(BIN):$$PATH dvc exp show --no-pager --drop '.*' \
		--keep '^(Experiment|Created|[a-z_0-9]+/[^:.]*)$$' $(ARGS)

## workspace: the profile's workspace (own params, dvc.lock, cache); GIT=1: a git repo for `dvc exp`
workspace: install
ifneq ($(PROFILE),default)
ifeq ($(GIT),1)
	$(BIN)/hubert-ee workspace $(PROFILE) $(RUN_DIR) --git
	test -d $(RUN_DIR)/.dvc || (cd $(RUN_DIR) && $(CURDIR)/$(BIN)/dvc init -q \
		&& $(CURDIR)/$(BIN)/dvc config core.analytics false && git add -A \
		&& git -c user.name="$${GIT_AUTHOR_NAME:-hubert-ee}" \
			-c user.email="$${GIT_AUTHOR_EMAIL:-hubert-ee@localhost}" \
			commit -qm "hubert-ee workspace $(PROFILE)")
else
	$(BIN)/hubert-ee workspace $(PROFILE) $(RUN_DIR)
	test -d $(RUN_DIR)/.dvc || (cd $(RUN_DIR) && $(CURDIR)/$(BIN)/dvc init --no-scm -q \
		&& $(CURDIR)/$(BIN)/dvc config core.analytics false)
endif
endif

## flow: the same DAG through Prefect (temporary local server; state in .prefect/)
flow: install workspace
	PREFECT_HOME=$(CURDIR)/.prefect PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=90 \
		PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m flows.pipeline --root $(RUN_DIR)

## serve: the scheduled deployment (cron from params orchestration.cron); needs `make prefect-ui`
serve: install workspace
	PREFECT_HOME=$(CURDIR)/.prefect PREFECT_API_URL=http://127.0.0.1:4200/api \
		PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m flows.pipeline serve --root $(RUN_DIR)

## prefect-ui: Prefect server + UI on http://127.0.0.1:4200 (state in .prefect/)
prefect-ui: install
	PREFECT_HOME=$(CURDIR)/.prefect $(BIN)/prefect server start --host 127.0.0.1 --port 4200

## gpu-wheels: wheels for a GPU box with only torch (CPython 3.12) in .whl/, for benchmarks/gpu_profile.py
gpu-wheels: install
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp $(foreach n,17 24 27 28 31 34 35,--platform manylinux_2_$(n)_x86_64) \
		--platform manylinux2014_x86_64 -d .whl -r benchmarks/gpu_wheels.txt

## mlflow-ui: MLflow UI on http://127.0.0.1:5000 over the project's store
mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/$(RUN_DIR)/mlflow.db \
		--default-artifact-root $(CURDIR)/$(RUN_DIR)/mlartifacts --host 127.0.0.1 --port 5000

## serve-model: the registry's champion over HTTP on http://127.0.0.1:5001 (POST /invocations)
serve-model: install
	PATH=$(CURDIR)/$(BIN):$$PATH MLFLOW_TRACKING_URI=sqlite:///$(CURDIR)/$(RUN_DIR)/mlflow.db \
		$(BIN)/mlflow models serve -m models:/hubert-ee@champion --env-manager local \
		-h 127.0.0.1 -p 5001

## test: the whole suite (unit + end-to-end on the smoke profile), one test file per worker
## process (pytest-xdist, one per core up to TEST_WORKERS; each worker's stages get its share)
TEST_WORKERS ?= 4
test: install
	$(BIN)/python -m pytest -q -n auto --maxprocesses $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

## test-serial: the same suite in one process (clearer tracebacks, pdb)
test-serial: install
	$(BIN)/python -m pytest -q

## test-fast: unit tests only
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

## lint: ruff check and format check
lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

## format: ruff format and fix
format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

## bench: every benchmark in benchmarks/ (JSON on stdout)
bench: install
	$(BIN)/python benchmarks/run_all.py

## clean-runs: delete the profile workspaces under runs/
clean-runs:
	rm -rf runs
