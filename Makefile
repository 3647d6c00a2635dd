# The project's verbs. `make demo` and `make test` set up what they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
# Tests and the demo never talk to AWS: fake credentials, fixed region.
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

.PHONY: venv image-envs lint typecheck cfn-lint validate build pytest test sdk-test sdk-test-pending demo local bench reliability lock clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The local SageMaker's environments of the prebuilt images it emulates (scikit-learn 1.2-1, XGBoost
# 1.7-1: their library versions, from local/modeldrop_local/sagemaker/images/*.lock), built once per
# machine into ~/.cache/modeldrop/images (MODELDROP_IMAGE_ENVS); a no-op once built. First use builds
# them too; building here first keeps that out of the tests' timeouts and the demo's first deployment.
image-envs: venv
	$(BIN)/python -m modeldrop_local.sagemaker.worker.image_envs

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Each function folder holds an app.py: mypy checks them one by one, since they share a module name.
typecheck: venv
	$(BIN)/mypy
	for dir in functions/*/; do $(BIN)/mypy "$$dir"app.py || exit 1; done

cfn-lint: venv
	$(BIN)/cfn-lint template.yaml

validate: venv
	$(BIN)/sam validate --lint --template template.yaml

build: venv
	$(BIN)/sam build --template template.yaml --cached --parallel

pytest: venv image-envs
	$(BIN)/pytest

test: lint typecheck cfn-lint validate build pytest sdk-test

demo: venv image-envs
	$(BIN)/python -m modeldrop_local.demo

# The local cloud in the foreground (edge :4566, REST :3000, state in .state/); Ctrl-C stops it.
local: venv image-envs
	$(BIN)/modeldrop local up --state-dir .state

BENCH_STAMP := $(VENV)/.installed-bench
MLFLOW_VENV := .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed

$(BENCH_STAMP): $(STAMP) requirements-bench.lock
	$(BIN)/python -m pip install --quiet -r requirements.lock -r requirements-bench.lock
	touch $(BENCH_STAMP)

# MLflow lives in a venv of its own: it brings pandas and pyarrow, which start threads at import and
# would change the product's environment (the local SageMaker's fork servers must stay thread-free).
$(MLFLOW_STAMP): requirements.lock requirements-mlflow.lock
	test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MLFLOW_VENV)/bin/python -m pip install --quiet -r requirements.lock -r requirements-mlflow.lock
	touch $(MLFLOW_STAMP)

# The SageMaker Python SDK v2 (tests/sdk) and the scikit-learn image's real serving stack (the
# conformance oracle, tests/conformance) each live in a venv of their own, so the product's .venv
# stays lean; the tests run under .venv's pytest and call into those venvs as subprocesses.
SDK_VENV := .venv-sdk
SDK_STAMP := $(SDK_VENV)/.installed
ORACLE_VENV := .venv-oracle
ORACLE_STAMP := $(ORACLE_VENV)/.installed

$(SDK_STAMP): requirements-sdk.lock
	test -x $(SDK_VENV)/bin/python || $(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SDK_VENV)/bin/python -m pip install --quiet -r requirements-sdk.lock
	touch $(SDK_STAMP)

# --no-deps: sagemaker-containers pins Flask 1.1.1 and asks for gunicorn, gevent, paramiko, which the
# in-process serving path never imports; the lock lists every package that path does import.
$(ORACLE_STAMP): requirements-oracle.lock
	test -x $(ORACLE_VENV)/bin/python || $(PYTHON) -m venv $(ORACLE_VENV)
	$(ORACLE_VENV)/bin/python -m pip install --quiet --upgrade pip setuptools wheel
	$(ORACLE_VENV)/bin/python -m pip install --quiet --no-deps -r requirements-oracle.lock
	touch $(ORACLE_STAMP)

# The SageMaker Python SDK paths and the conformance suite (part of `make test`); rows marked
# fidelity_pending (written from the real containers, not yet matched locally) run with `make sdk-test-pending`.
sdk-test: venv image-envs $(SDK_STAMP) $(ORACLE_STAMP)
	$(BIN)/pytest -p no:cacheprovider -m "sdk and not fidelity_pending" tests/sdk tests/conformance

sdk-test-pending: venv image-envs $(SDK_STAMP) $(ORACLE_STAMP)
	$(BIN)/pytest -p no:cacheprovider -m "sdk" tests/sdk tests/conformance

# Writes benchmarks/RESULTS.md and the PNG plots beside it; `python -m benchmarks.<name>` runs one.
bench: $(BENCH_STAMP) $(MLFLOW_STAMP) build image-envs
	$(BIN)/python -m benchmarks.run_all

# Hostile tarballs, hostile HTTP, load and faults against a local cloud on free loopback ports (about
# 10 minutes); writes reliability/RESULTS.md and results.json. Not part of `make test`; .ci/run runs it after.
# RELIABILITY_ARGS="--load-seconds 30" runs the load cases for the issue's 30 s.
reliability: venv image-envs
	$(BIN)/python -m reliability.run $(RELIABILITY_ARGS)

lock:
	$(BIN)/python -m pip install --quiet -r requirements.in
	$(BIN)/python -m pip freeze --exclude-editable | sort -f > requirements.lock

clean:
	rm -rf .aws-sam .mypy_cache .ruff_cache .pytest_cache $(MLFLOW_VENV) $(SDK_VENV) $(ORACLE_VENV)
