# Roster's two commands: `make demo` (serve the sample data) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_URL ?= postgres://postgres@127.0.0.1:5432/roster

.PHONY: demo test coverage lint schema setup postgres browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

## make demo: migrate SQLite, load data/sample once, print an admin token, serve on :8000
demo: setup
	DEBUG=1 $(BIN)/python manage.py demo

## make test: lint, then the suite on SQLite and on PostgreSQL (that run with coverage)
test: setup lint postgres browser
	$(BIN)/python -m pytest
	DATABASE_URL=$(PG_URL) $(BIN)/python -m pytest --cov --cov-report=term

## make coverage: the suite on both databases, traced, with the combined coverage figure (slower)
coverage: setup postgres browser
	$(BIN)/python -m pytest --cov --cov-report=
	DATABASE_URL=$(PG_URL) $(BIN)/python -m pytest --cov --cov-append --cov-report=term

## make schema: rewrite schema.graphql, the published contract, from the code's schema
schema: setup
	$(BIN)/python manage.py export_schema

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy backend jobs graph lambdas
	$(BIN)/cfn-lint lambdas/template.yaml

## postgres: start the local cluster when it is down, and fail if it still can't be reached
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@for i in 1 2 3 4 5 6 7 8 9 10; do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; \
	  echo "PostgreSQL is not reachable at 127.0.0.1:5432" >&2; exit 1

## browser: Debian's Chromium and its driver, for the dashboard's browser test (needs root)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

clean:
	rm -rf $(VENV) var
