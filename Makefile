# theodore-observability: one spec (stack.yaml) -> every config -> a running stack.
# `make up` and `make test` are the two commands; the rest is the table of contents.

PYTHON ?= python3
VENV   := .venv
OBS    := $(VENV)/bin/theodore-obs
ENV    ?= local

.PHONY: help deps tools schema render validate lint test up down status bench clean check-drift

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

PACKAGES := catalogue/pyproject.toml telemetry/pyproject.toml glue/pyproject.toml bench/pyproject.toml

# The three distributions (catalogue: shared metric data; telemetry: the app side; glue: the
# stack tooling) and the dev-only bench/, editable, in one resolve.
$(VENV)/.installed: $(PACKAGES)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e catalogue -e telemetry -e 'glue[dev]' -e bench  # bench/: dev-only, never shipped
	touch $@

deps: $(VENV)/.installed ## Install the packages (catalogue, telemetry, glue), test tools and bench/ into .venv

tools: deps ## Build the pinned native binaries into ~/.cache/theodore-obs, fetch the Java ones (cached per version)
	$(OBS) tools
	$(VENV)/bin/python -m theodore_obs.maven_tools

schema: deps ## Regenerate the overlay part of stack.schema.json from its base
	$(VENV)/bin/python -m theodore_obs.schema_overlay

render: deps ## Render every environment of stack.yaml into rendered/
	$(OBS) render

validate: tools render ## Check every rendered file with the tool that consumes it
	$(OBS) validate

lint: deps ## ruff over the packages, the benchmarks and the tests
	$(VENV)/bin/ruff check catalogue telemetry glue bench tests

check-drift: deps ## Fail if rendered/ differs from what stack.yaml and the templates give
	$(VENV)/bin/pytest -q tests/test_render.py -k drift

# Test modules run on TEST_WORKERS processes, each module whole on one (its own ports, its own stack).
TEST_WORKERS ?= 2

test: deps tools lint ## Lint, then every test (real tools, native stacks on 127.0.0.1)
	$(VENV)/bin/pytest -q -rfEs --durations=15 -n $(TEST_WORKERS) --dist loadfile tests

up: deps ## Start the stack: compose with a Docker engine, else the native runtime
	@if docker info >/dev/null 2>&1; then \
	  echo "Docker engine found: docker compose (rendered/$(ENV)/compose.yaml)"; \
	  docker compose -f rendered/$(ENV)/compose.yaml up -d --wait; \
	else \
	  echo "No Docker engine: native runtime (processes on 127.0.0.1)"; \
	  $(MAKE) --no-print-directory tools && $(OBS) up --env $(ENV) --runtime native; \
	fi

down: deps ## Stop what `make up` started
	@if docker info >/dev/null 2>&1; then \
	  docker compose -f rendered/$(ENV)/compose.yaml down; \
	else \
	  $(OBS) down; \
	fi

status: deps ## Health of each component
	$(OBS) status --env $(ENV)

bench: tools ## Measured figures (bench/): up time, log call cost, request overhead, span export rate
	$(OBS) bench --runs 3 --out bench-results.txt

clean: down ## Stop the stack and remove its state (keeps the tool cache)
	rm -rf $${THEODORE_OBS_STATE:-$$HOME/.cache/theodore-obs/state}
