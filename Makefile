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

# End to end (product vs pandas vs DuckDB scripts, 100k and 1M rows), then the library level.
# Flags go to bench_e2e.py: `make bench ARGS=--with-5m`, `make bench ARGS="--repeat 5"`.
bench: $(STAMP)
	$(VENV)/bin/python benchmarks/bench_e2e.py $(ARGS)
	$(VENV)/bin/python benchmarks/bench_report.py

ui: $(STAMP)
	$(VENV)/bin/etl-balances ui
