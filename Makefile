# The two commands of the README, and the checks CI runs.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: dev test lint install install-dev

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## make dev: install, then run the whole stack (API, SSE gateway, worker, scheduler) on :8000
dev: install
	$(VENV)/bin/explorer-jobs dev

## make test: install, then run every test against the local Redis, PostgreSQL and MariaDB
test: install
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check layers functions
	$(VENV)/bin/mypy
