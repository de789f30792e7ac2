# The two set-up commands of the README. Both create .venv and install the project on first use.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench ui

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/etl-balances demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy etl_project assets
	$(VENV)/bin/pytest -q

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/bench_report.py

ui: $(STAMP)
	$(VENV)/bin/etl-balances ui
