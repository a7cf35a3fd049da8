# Roster's two commands: `make demo` (serve the sample data) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_URL ?= postgres://postgres@127.0.0.1:5432/roster

.PHONY: demo test coverage lint schema setup postgres browser audit peer graphiql clean

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

## make test: lint, then the suite on SQLite and on PostgreSQL at once, each with its own
## var/ folder (coverage on the PostgreSQL run); the SQLite run's output follows the other's
test: setup lint postgres browser audit peer
	@mkdir -p var
	@ROSTER_VAR_DIR=$(CURDIR)/var/test-sqlite $(BIN)/python -m pytest > var/test-sqlite.log 2>&1 & lite=$$!; \
	ROSTER_VAR_DIR=$(CURDIR)/var/test-postgresql DATABASE_URL=$(PG_URL) \
	  $(BIN)/python -m pytest --cov --cov-report=term; pg=$$?; \
	wait $$lite; sqlite=$$?; \
	echo "== the SQLite run (var/test-sqlite.log)"; cat var/test-sqlite.log; \
	echo "== PostgreSQL: exit $$pg, SQLite: exit $$sqlite"; test $$pg -eq 0 -a $$sqlite -eq 0

## make coverage: the suite on both databases, traced, with the combined coverage figure (slower)
coverage: setup postgres browser audit peer
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

## audit: graphql-http, at the lockfile's versions, for the GraphQL-over-HTTP audit test
audit: tests/http_audit/node_modules/.package-lock.json

tests/http_audit/node_modules/.package-lock.json: tests/http_audit/package-lock.json
	cd tests/http_audit && npm ci --no-audit --no-fund --loglevel=error

## peer: PostGraphile 4, at the lockfile's versions, for bench/peer.py and its test
peer: bench/peer/node_modules/.package-lock.json

bench/peer/node_modules/.package-lock.json: bench/peer/package-lock.json
	cd bench/peer && npm ci --no-audit --no-fund --loglevel=error

## browser: Debian's Chromium and its driver, for the browser tests of the dashboard and GraphiQL (needs root)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

## graphiql: vendor GraphiQL, its explorer plugin and React again at the pinned versions (npm)
graphiql:
	scripts/vendor_graphiql.sh

clean:
	rm -rf $(VENV) var tests/http_audit/node_modules bench/peer/node_modules
