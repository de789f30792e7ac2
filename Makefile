# The two set-up commands of the README: `make demo` and `make test`. Both create .venv and
# install into it on first use, from the hash-pinned lock files in requirements/:
#   make demo  -> requirements/runtime.lock (what the job needs to run) + the project itself
#   make test  -> the same, then requirements/test.lock (adds ruff, mypy, pytest, moto, …)
# One venv, one stamp per layer: `make test` after `make demo` only adds the test tools, and
# `make demo` after `make test` installs nothing. Regenerate the locks with `make lock`.
PY ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip --disable-pip-version-check
RUNTIME_STAMP := $(VENV)/.runtime-installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: demo test bench ui lock

$(VENV)/bin/python:
	$(PY) -m venv $(VENV)

# Exact versions, every file checked against its hash. The lock lists every dependency, so pip
# resolves nothing (--no-deps); `pip check` then proves the set complete. Last, the project.
$(RUNTIME_STAMP): requirements/runtime.lock pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q --require-hashes --no-deps -r requirements/runtime.lock
	$(PIP) install -q --no-deps -e .
	$(PIP) check
	touch $@

# test.lock holds every runtime pin at the same version, so this only adds packages.
$(TEST_STAMP): requirements/test.lock $(RUNTIME_STAMP)
	$(PIP) install -q --require-hashes --no-deps -r requirements/test.lock
	$(PIP) check
	touch $@

demo: $(RUNTIME_STAMP)
	$(VENV)/bin/etl-balances demo

test: $(TEST_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy etl_project assets
	$(VENV)/bin/pytest -q

# End to end (product vs pandas vs DuckDB scripts, 100k and 1M rows), then the library level.
# Flags go to bench_e2e.py: `make bench ARGS=--with-5m`, `make bench ARGS="--repeat 5"`.
# The pandas baseline needs pandas, which only the test install has.
bench: $(TEST_STAMP)
	$(VENV)/bin/python benchmarks/bench_e2e.py $(ARGS)
	$(VENV)/bin/python benchmarks/bench_report.py

ui: $(RUNTIME_STAMP)
	$(VENV)/bin/etl-balances ui

# Re-resolve requirements/*.lock from pyproject.toml with uv (a pinned copy in .venv/.uv; needs
# PyPI). Pins already in the locks are kept unless asked: `make lock UV_ARGS=--upgrade`, or
# `make lock UV_ARGS="--upgrade-package polars"`. test.lock is resolved first; runtime.lock
# is constrained to it, so both install the same version of every package they share.
UV_VERSION := 0.13.9
UV := $(VENV)/.uv/bin/uv
UV_COMPILE = $(UV) pip compile -q pyproject.toml --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command "make lock" $(UV_ARGS)

$(UV):
	$(PY) -m venv $(VENV)/.uv
	$(VENV)/.uv/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)

lock: | $(UV)
	mkdir -p requirements
	$(UV_COMPILE) --extra test -o requirements/test.lock
	$(UV_COMPILE) -c requirements/test.lock -o requirements/runtime.lock
