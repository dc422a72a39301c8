# The two commands of the README. Both create the virtual environment themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test durability install worker clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## install, migrate and serve Patchwire on the embedded profile (SQLite, no services)
	$(VENV)/bin/patchwire serve

worker: $(STAMP)  ## a separate worker (set QUEUE_URL to redis:// or postgresql://)
	$(VENV)/bin/patchwire worker

test: $(STAMP)  ## install and run the whole test suite (lint, unit, web, queue, CLI, e2e, crash suite)
	$(VENV)/bin/ruff check engine nodes webapp tests e2e migrations bench
	$(VENV)/bin/python -m pytest

durability: $(STAMP)  ## only the crash suite (SIGKILLed workers on all three profiles; also part of `make test`)
	$(VENV)/bin/python -m pytest -m durability tests/durability

clean:
	rm -rf $(VENV) .patchwire
