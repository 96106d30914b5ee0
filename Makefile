# The two commands of the README: `make run` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test bench check fmt clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/broker dev

test: $(BIN)/.installed
	$(BIN)/ruff check broker tests
	$(BIN)/ruff format --check broker tests
	$(BIN)/mypy
	$(BIN)/pytest

# The benchmark table of the README (needs redis-server and wrk: apt-get install redis-server wrk).
bench: $(BIN)/.installed
	$(BIN)/python -m tests.bench

fmt: $(BIN)/.installed
	$(BIN)/ruff format broker tests
	$(BIN)/ruff check --fix broker tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
