# The two commands of the README: `make run` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test check fmt clean

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

fmt: $(BIN)/.installed
	$(BIN)/ruff format broker tests
	$(BIN)/ruff check --fix broker tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
