# Two commands: `make run` starts the broker, `make test` runs the tests. Each sets up .venv itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	mkdir -p data
	$(BIN)/cetate serve --host 127.0.0.1 --port 1026 --store sqlite:///data/cetate.db

test: $(STAMP)
	$(BIN)/ruff check broker models security adapters tests bench
	$(BIN)/mypy
	$(BIN)/pytest
	# Again on PostgreSQL, every test that drives a broker (skipped if no PostgreSQL, unless CI)
	$(BIN)/pytest --store-engine postgresql --store-tests-only

bench: $(STAMP)
	$(BIN)/python -m bench.core

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
