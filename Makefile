# Two commands: `make run` and `make test`. Both set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VAR := var
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run admin-password test lint format migrate bench clean check-python chromium

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ragllm needs Python 3.11 or newer; set PYTHON=python3.11 (found " + sys.version.split()[0] + ")")'

$(BIN)/python: | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# DEBUG=True: settings create the development secrets under var/ on first use (the same files
# every `manage.py` command reads). The web server is granian (`manage.py serve`), never
# runserver. The login box is printed last, once the server answers.
run: $(VENV)/.installed
	@export DEBUG=$${DEBUG:-True}; \
	 set -e; \
	 $(BIN)/python manage.py migrate --no-input; \
	 $(BIN)/python manage.py load_llm_factories; \
	 HOST=$(HOST) PORT=$(PORT) $(BIN)/honcho -f Procfile start & honcho=$$!; \
	 trap 'kill -TERM $$honcho 2>/dev/null; wait $$honcho' INT TERM; \
	 $(BIN)/python manage.py bootstrap_admin --wait-for http://$(HOST):$(PORT) || true; \
	 wait $$honcho

# A new admin password, printed once (also lifts a login lockout).
admin-password: $(VENV)/.installed
	@DEBUG=$${DEBUG:-True} $(BIN)/python manage.py bootstrap_admin --reset-password

test: $(VENV)/.installed-dev lint
	$(BIN)/pytest

# The admin's browser tests drive Debian's chromium through Playwright (never a downloaded
# browser); without /usr/bin/chromium they are skipped. CI runs this before `make test`.
chromium:
	@test -x /usr/bin/chromium || apt-get install -y -q chromium >/dev/null 2>&1 || \
	 { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } || \
	 { echo "chromium could not be installed: run 'apt-get install chromium' as root" >&2; exit 1; }

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# `make bench` runs every benchmark; `make bench BENCH="recording quota"` some of them.
# wrk (Debian's package) drives the gateway benchmarks: installed here when missing.
BENCH ?=
bench: $(VENV)/.installed-dev
	@command -v wrk >/dev/null 2>&1 || apt-get install -y -q wrk >/dev/null 2>&1 || \
	 { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wrk >/dev/null 2>&1; } || \
	 echo "wrk could not be installed (apt-get install wrk): the gateway benchmarks will say so"
	$(BIN)/python benchmarks/run.py $(BENCH)

clean:
	rm -rf $(VENV) $(VAR) .pytest_cache .ruff_cache
