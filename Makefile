# Flywheel — `make` lists the targets. Every command the README shows is a target here.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
IMAGE ?= flywheel:0.1.0
BASE_IMAGE ?=
# every Python folder (serving/ and others are linted as soon as they exist)
LINT_PATHS := $(wildcard flywheel components pipelines serving monitoring streaming tests bench scripts)
TYPED_PACKAGES := $(wildcard flywheel components pipelines serving monitoring streaming)

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this list of targets
	@awk 'BEGIN {FS = ":.*## "; print "Flywheel targets:"} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned ==2.13.0 in pyproject.toml: pip takes the CPU wheel on disk
	$(PY) -m pip install --quiet -e '.[dev]'
	# the tritonserver binary for `flywheel serve --triton` (see pyproject.toml: --no-deps on purpose)
	$(PY) -m pip install --quiet --no-deps 'nvidia-pytriton==0.7.0'
	@touch $(STAMP)

.PHONY: venv
venv: $(STAMP) ## Create the virtualenv and install Flywheel with its dev tools (once)

.PHONY: system-deps
system-deps: ## Install the local servers the tests use (redis-server, prometheus, prometheus-alertmanager; the Kafka-protocol broker comes from PyPI)
	@scripts/install-system-deps.sh

.PHONY: test
test: venv system-deps ## Install what is missing, then run every test (unit and integration)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: venv ## Run the fast unit tests only (no services)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

.PHONY: demo
demo: venv ## Run the whole loop locally on the embedded defaults
	@scripts/demo.sh

.PHONY: bench
bench: venv ## Run the benchmarks under bench/ (they print figures and ratios)
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

.PHONY: goldens
goldens: venv ## Regenerate the golden files (pipeline YAML, chart renderings) and manifests/
	@scripts/regen-goldens.sh

.PHONY: lint
lint: venv ## ruff on every Python folder + mypy on the packages
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy $(TYPED_PACKAGES)

.PHONY: chart-test
chart-test: venv ## Render every chart scenario with Helm's engine and validate it (schemas, policies, goldens)
	$(PY) -m pytest tests/chart tests/unit/test_kind_scripts.py $(PYTEST_ARGS)

.PHONY: image
image: ## Build the project image (docker build; BASE_IMAGE=... overrides the base)
	docker build $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) -t $(IMAGE) .

.PHONY: kind-up
kind-up: ## Create the kind cluster with its prerequisites (cert-manager, KServe, KFP, Prometheus, Strimzi Kafka)
	@scripts/kind-up.sh

.PHONY: deploy
deploy: ## Load the image into kind and helm install the chart (release flywheel, namespace flywheel)
	@IMAGE=$(IMAGE) scripts/deploy.sh

.PHONY: kind-down
kind-down: ## Delete the kind cluster and everything in it
	@scripts/kind-down.sh

.PHONY: clean
clean: ## Remove local state (.flywheel/) and caches; keeps the virtualenv
	rm -rf .flywheel .pytest_cache .mypy_cache .ruff_cache
