# The two commands of the README: `make run` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The /demo page's browser assets: Gladia's JS SDK from npm, pinned by the lock file.
DEMO := broker/demo
DEMO_ASSETS := $(DEMO)/node_modules/.installed

.PHONY: run test bench fmt clean lock upgrade demo-assets optional-demo-assets

# Every Python package the venv holds, pinned with hashes; `make lock` writes it from pyproject.toml.
LOCK := requirements.lock
# The image's packages (no test tools), at the same versions as $(LOCK).
IMAGE_LOCK := deploy/requirements.lock
# The build backend is locked too, so the editable install builds without fetching anything.
BUILD_REQUIREMENT := setuptools>=68
COMPILE = echo '$(BUILD_REQUIREMENT)' | $(BIN)/uv pip compile --quiet --universal \
	--python-version 3.11 --generate-hashes --custom-compile-command 'make lock' pyproject.toml -

# A clean venv holding exactly the lock, then the broker itself (its code, no dependencies).
$(BIN)/.installed: $(LOCK) pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
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

# After a change to pyproject.toml's dependencies: the locks again, keeping every pin still allowed.
lock: $(BIN)/.installed
	$(COMPILE) --extra test -o $(LOCK)
	$(COMPILE) --constraints $(LOCK) -o $(IMAGE_LOCK)

# The scheduled refresh (weekly): the newest releases the pins allow, then every check on them.
# The locks' diff is the deliberate change to review and commit.
upgrade: $(BIN)/.installed
	$(COMPILE) --extra test --upgrade -o $(LOCK)
	$(COMPILE) --constraints $(LOCK) -o $(IMAGE_LOCK)
	$(MAKE) --no-print-directory test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(DEMO)/node_modules
