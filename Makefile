# Skyline — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CODE := $(wildcard skyline adapters workflows activities api collector worker stack tests demo bench cli)

.PHONY: run test install system browser demo lint typecheck bench mutants clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Debian packages of the embedded stack (varnish, prometheus, redis-server); installs them when root.
system: install
	$(PY) -m stack check

# Debian's chromium for the browser tests and the demo (Playwright drives it; never `playwright install`), nodejs
# for the loader tests, then `npm ci` of the browser tests' npm packages (esbuild, single-spa, web-vitals, ...).
browser: install
	$(PY) -c 'import sys; from stack.system_packages import main; sys.exit(main(["browser"]))'
	$(PY) -c 'from tests.browser.bundler import ensure_esbuild, ensure_shell_packages as s; ensure_esbuild(); s()'

## The browser loop live: shell page, synthetic Chromium users, a healthy rollout promoted, a faulty one rolled back.
demo: system browser
	$(PY) -m demo $(DEMO_ARGS)

## Start the embedded stack in the foreground: Temporal (+UI :8233), S3, Redis, Varnish, Prometheus, worker, API.
## RUN_ARGS are passed on: `make run RUN_ARGS=--ephemeral-ports` (free ports), see `python -m stack run --help`.
run: system
	$(PY) -m stack run $(RUN_ARGS)

lint: install
	$(VENV)/bin/ruff check $(CODE)
	$(VENV)/bin/ruff format --check $(CODE)

typecheck: install
	$(VENV)/bin/mypy $(CODE)

## What CI runs: lint, types, and every test against real servers the tests start.
## Two processes, each with its own stack (TEST_JOBS=0: one process); whole files stay together.
test: system browser lint typecheck
	$(PY) -m pytest -q -n $(or $(TEST_JOBS),2) --dist loadgroup

## Benchmarks against peers on a private stack; tables on stdout, JSON in bench/results/ (BENCH_ARGS=--full: 1,000 rollouts).
bench: system
	$(PY) -m bench $(BENCH_ARGS)

## Mutation score of the pure rules (domain, manifest activities' rules, API authorization) against the
## fast layer (tests/skyline): prints the score and the survivors, keeps the last result in
## docs/mutation.md. 15 to 40 minutes (MUTANTS_JOBS=1 on a shared machine); not part of `make test`.
mutants: install
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children $(or $(MUTANTS_JOBS),2)
	$(PY) -m tests.support.mutation

clean:
	rm -rf .skyline test-artifacts .pytest_cache .mypy_cache .ruff_cache mutants
