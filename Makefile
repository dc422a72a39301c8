# The two commands of the README. Both create the virtual environment themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test durability docs-shots install worker clean

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

TEST_WORKERS ?= auto
# pytest's exit status 5 means that it collected no test (a wrong path or marker): say so, and fail.
PYTEST_FAILED = { status=$$?; [ $$status -ne 5 ] || echo "pytest collected no tests (exit status 5)" >&2; exit $$status; }

test: $(STAMP)  ## install and run the whole test suite (lint, unit, web, queue, CLI, e2e, crash suite) on every core
	$(VENV)/bin/ruff check engine nodes webapp tests e2e migrations bench
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup || $(PYTEST_FAILED)

durability: $(STAMP)  ## only the crash suite (SIGKILLed workers on all three profiles; also part of `make test`)
	$(VENV)/bin/python -m pytest -m durability tests/durability || $(PYTEST_FAILED)

docs-shots: $(STAMP)  ## refresh the pictures in docs/ from the browser tests (a test run never writes there)
	PATCHWIRE_DOCS_SHOTS=1 $(VENV)/bin/python -m pytest -q \
		"e2e/test_editor_flow.py::test_new_user_builds_and_runs_a_workflow[embedded]" \
		"e2e/test_execution_watch.py::test_watch_an_execution_then_inspect_its_failed_node[embedded]" \
		"e2e/test_node_editor_panes.py::test_a_person_reads_a_nodes_input_and_output_in_three_panes[embedded]"

clean:
	rm -rf $(VENV) .patchwire
