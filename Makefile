# The two commands of the README: `make run` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The /demo page's browser assets: Gladia's JS SDK from npm, pinned by the lock file.
DEMO := broker/demo
DEMO_ASSETS := $(DEMO)/node_modules/.installed

.PHONY: run test bench fmt clean demo-assets optional-demo-assets

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(DEMO_ASSETS): $(DEMO)/package.json $(DEMO)/package-lock.json
	npm ci --prefix $(DEMO) --no-audit --no-fund --loglevel=error
	touch $@

demo-assets: $(DEMO_ASSETS)

# Without npm the demo page still runs; only its JS SDK modes are off (and their test skips,
# except in CI, where .ci/run installs npm).
optional-demo-assets:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory demo-assets; \
	else echo "npm not found: /demo runs without its Gladia JS SDK modes"; fi

run: $(BIN)/.installed optional-demo-assets
	$(BIN)/broker dev

test: $(BIN)/.installed optional-demo-assets
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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(DEMO)/node_modules
