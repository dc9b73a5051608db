# Skyline — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CODE := skyline workflows activities api worker stack tests

.PHONY: run test install system lint typecheck clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Debian packages of the embedded stack (varnish, prometheus); installs them when root.
system: install
	$(PY) -m stack check

## Start the embedded stack in the foreground: Temporal (+UI :8233), S3, Varnish, Prometheus, worker, API.
run: system
	$(PY) -m stack run

lint: install
	$(VENV)/bin/ruff check $(CODE)
	$(VENV)/bin/ruff format --check $(CODE)

typecheck: install
	$(VENV)/bin/mypy $(CODE)

## What CI runs: lint, types, and every test against real servers the tests start.
test: system lint typecheck
	$(PY) -m pytest -q

clean:
	rm -rf .skyline test-artifacts .pytest_cache .mypy_cache .ruff_cache
