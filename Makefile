# The two commands of the README: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2

.PHONY: demo test lint bench lab clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The project installs itself (editable): kernels, workers, notebooks and training jobs import pipeline_utils
# because it is installed, and its entry points register the local backend and the `mlops` command.
$(VENV)/.runtime-deps: requirements.txt pyproject.toml setup.py | $(BIN)/python
	$(PIP) -r requirements.txt
	$(PIP) --no-deps -e .
	touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt pyproject.toml setup.py | $(BIN)/python
	$(PIP) -r requirements-dev.txt
	$(PIP) --no-deps -e .
	touch $@ $(VENV)/.runtime-deps

# The pipeline on the image example, then a drift monitor catching a darker batch of images (examples/ihc/drift_demo.py).
demo: $(VENV)/.runtime-deps
	$(BIN)/python run_pipeline.py pipeline run --path-yml examples/ihc/deployment_metadata.draft.yml
	$(BIN)/python examples/ihc/drift_demo.py --path-yml examples/ihc/deployment_metadata.draft.yml

lint: $(VENV)/.dev-deps
	$(BIN)/ruff check .

# The KServe client that tests/runtime/test_oip_binary.py drives lives in its own venv (see requirements-interop.txt).
INTEROP := .venv-interop

$(INTEROP)/.deps: requirements-interop.txt
	test -x $(INTEROP)/bin/python || $(PYTHON) -m venv $(INTEROP)
	$(INTEROP)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-interop.txt
	touch $@

# The heavy extras (the IBM SDKs of the cpd backend, Ray Serve, azure-ai-ml, kubernetes-validate), so that their
# tests run; one pip call, so that pip resolves what they share (opentelemetry for ray and azure-ai-ml; pandas, which
# ibm-watsonx-ai holds below 2.4). The local default never imports them.
EXTRAS := requirements-cpd.txt requirements-ray.txt requirements-azureml.txt requirements-k8s.txt

$(VENV)/.extras-deps: $(EXTRAS) $(VENV)/.dev-deps
	$(PIP) $(addprefix -r ,$(EXTRAS))
	touch $@

test: lint $(INTEROP)/.deps $(VENV)/.extras-deps
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

BASELINES := .venv-baselines

$(BASELINES)/.deps: bench/requirements-baselines.txt
	test -x $(BASELINES)/bin/python || $(PYTHON) -m venv $(BASELINES)
	$(BASELINES)/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements-baselines.txt
	touch $@

bench: $(VENV)/.dev-deps $(BASELINES)/.deps
	BENCH_BASELINE_PYTHON=$(CURDIR)/$(BASELINES)/bin/python $(BIN)/python bench/run_all.py

lab: $(VENV)/.runtime-deps
	$(PIP) -r requirements-lab.txt
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) $(BASELINES) $(INTEROP) .pytest_cache .ruff_cache
