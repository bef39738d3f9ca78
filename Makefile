# The two commands of the quick start, and the checks CI runs.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PY := .venv/bin/python

.PHONY: demo test check lint bench bootstrap clean prefect-yaml

# The fast tests: domain, connectors, runtime, CLI and flows' helpers without a browser,
# a Prefect API or PostgreSQL (no Chromium needed), one pytest worker per core (pytest-xdist).
# `make test` runs everything.
FAST := not browser and not prefect and not slow and not postgres

bootstrap:
	@.ci/bootstrap.sh

demo: bootstrap
	$(UV) run --frozen procbots demo

test:
	@.ci/bootstrap.sh --postgres
	$(UV) run --frozen pytest $(PYTEST_ARGS)

check:
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --user --quiet uv
	@$(UV) sync --frozen --quiet
	$(UV) run --frozen pytest -q -n auto -m "$(FAST)" $(PYTEST_ARGS)

# prefect.yaml is generated from the bot registry (bots/registry.py); a test compares them.
prefect-yaml:
	$(UV) run --frozen procbots serve --write-prefect-yaml

lint: bootstrap
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check bots config connectors flows
	$(UV) run --frozen mypy bots config connectors flows
	$(UV) run --frozen lint-imports

bench: bootstrap
	$(UV) run --frozen python -m benchmarks

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache var/
