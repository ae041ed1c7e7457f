# Two commands: `make run` and `make test`. Both set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VAR := var
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format migrate bench clean check-python

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

# Development secrets, generated once and kept under var/ (never committed).
$(VAR)/secret_key $(VAR)/credentials_key:
	@mkdir -p $(VAR)
	@umask 077; $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(48))' > $@

run: $(VENV)/.installed $(VAR)/secret_key $(VAR)/credentials_key
	@export DEBUG=$${DEBUG:-True}; \
	 [ -n "$$SECRET_KEY" ] || export SECRET_KEY_FILE=$${SECRET_KEY_FILE:-$(CURDIR)/$(VAR)/secret_key}; \
	 [ -n "$$CREDENTIALS_ENCRYPTION_KEY" ] || export CREDENTIALS_ENCRYPTION_KEY_FILE=$${CREDENTIALS_ENCRYPTION_KEY_FILE:-$(CURDIR)/$(VAR)/credentials_key}; \
	 set -e; \
	 $(BIN)/python manage.py migrate --no-input; \
	 $(BIN)/python manage.py load_llm_factories; \
	 $(BIN)/python manage.py bootstrap_admin; \
	 echo "Admin console: http://$(HOST):$(PORT)/admin/  API docs: http://$(HOST):$(PORT)/api/docs/"; \
	 HOST=$(HOST) PORT=$(PORT) exec $(BIN)/honcho -f Procfile start

test: $(VENV)/.installed-dev lint
	$(BIN)/pytest

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
