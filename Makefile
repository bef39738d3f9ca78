# The two commands of the quick start, and the checks CI runs.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PY := .venv/bin/python

.PHONY: demo test lint bench bootstrap clean

bootstrap:
	@.ci/bootstrap.sh

demo: bootstrap
	$(UV) run --frozen procbots demo

test:
	@.ci/bootstrap.sh --postgres
	$(UV) run --frozen pytest $(PYTEST_ARGS)

lint: bootstrap
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check bots config connectors flows
	$(UV) run --frozen mypy bots config connectors flows
	$(UV) run --frozen lint-imports

bench: bootstrap
	$(UV) run --frozen python -m benchmarks

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache var/
