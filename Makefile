# The two set-up commands of the README: `make run` and `make test` (and `make docs`).
# Both build .venv/ from the hash-pinned lock files, so a fresh machine needs only
# Python 3.11 and the package registries.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8501
# The store's heaviest users, run a second time with $$SPREAD_DB on the test PostgreSQL.
POSTGRES_PASS := tests/test_store.py tests/test_review.py tests/test_golden.py tests/test_decisions.py \
  tests/test_regress.py tests/test_runner.py tests/test_endpoints.py tests/test_cli.py tests/test_variants.py

.PHONY: run test docs docs-check bench install install-test browser postgres clean

run: install
	$(BIN)/streamlit run app.py --server.address $(HOST) --server.port $(PORT)

test: install-test browser postgres docs-check
	$(BIN)/python -m pytest -q -p no:cacheprovider
	SPREAD_TEST_ENGINE=postgresql $(BIN)/python -m pytest -q -p no:cacheprovider -m "not browser and not local_model" \
	  $(POSTGRES_PASS)

# The docs site (mkdocs-material) on http://127.0.0.1:8000, rebuilt as pages change.
docs: install-test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

# Docs that cannot drift: docs/cli.md must hold every command's current --help
# (regenerate with `$(BIN)/cog -r docs/cli.md`), and the site must build with no dead link.
docs-check: install-test
	$(BIN)/cog --check docs/cli.md
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Every benchmark, one JSON line per measurement, saved in bench/results/ (under 10 minutes).
bench: install-test browser postgres
	$(BIN)/python bench/run_all.py

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Installs only what the lock lists, each file checked against its sha256.
install: $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads one).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium libgomp1 >/dev/null; }

# Debian's PostgreSQL for the store tests: the test set-up starts its own server on a
# loopback port in a temporary folder (tests/pg_server.py); the app never needs it.
postgres:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

clean:
	rm -rf $(VENV) site
