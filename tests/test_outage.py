"""The API during a database outage, and the /healthz and /readyz probes.

Most tests here run a real Roster server (gunicorn, ``DEBUG`` off, one sync worker that keeps its
database connection between requests) against a database of their own, and take that database
away for real. They do not use ``DATABASE_URL``: the PostgreSQL ones use the ``pg_cluster``
fixture's cluster (tests/pg_cluster.py), which can be stopped without touching the main
PostgreSQL, and the SQLite one a file of its own. So they run, and mean the same, in both runs
of the suite (``DATABASE_URL`` unset and set); only the in-process tests at the end use the
suite's database.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db.migrations.loader import MigrationLoader
from django.test import Client

from backend.health import RETRY_AFTER_SECONDS, UNAVAILABLE_MESSAGE
from tests.pg_cluster import PgCluster, children_of

ROOT = Path(settings.BASE_DIR)
DEPARTMENTS_QUERY = "{ departments(first: 5) { totalCount nodes { id department } } }"
DEPARTMENTS = [{"id": 1, "department": "Sales"}, {"id": 2, "department": "Legal"}]
GRAPHQL_UNAVAILABLE = {
    "data": None,
    "errors": [{"message": UNAVAILABLE_MESSAGE, "extensions": {"code": "SERVICE_UNAVAILABLE"}}],
}
REST_UNAVAILABLE = {"message": UNAVAILABLE_MESSAGE, "code": "SERVICE_UNAVAILABLE"}
NOT_READY = {"status": "unavailable", "code": "SERVICE_UNAVAILABLE"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RosterServer:
    """``gunicorn backend.wsgi`` on a free port, as in production, with its own settings."""

    def __init__(self, database_url: str, var_dir: Path) -> None:
        var_dir.mkdir(parents=True, exist_ok=True)
        self.log = var_dir / "server.log"
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "ROSTER_VAR_DIR": str(var_dir),
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "CONN_MAX_AGE": "60",
            "LOG_LEVEL": "WARNING",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.token = ""

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def migrate_and_make_token(self) -> None:
        self.manage("migrate", "--noinput")
        self.token = self.manage("create_token", "outage", "--scope", "admin").splitlines()[-1]

    def start(self) -> None:
        command = [sys.executable, "-m", "gunicorn", "backend.wsgi", "--workers", "1"]
        command += ["--bind", f"127.0.0.1:{self.port}", "--timeout", "60"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, f"the server exited:\n{self.log.read_text()}"
            try:
                if requests.get(f"{self.base}/healthz", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, (
                f"the server did not answer:\n{self.log.read_text()}"
            )
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def workers(self) -> list[int]:
        """The worker pids: the same list before and after an outage means no restart."""
        assert self.process is not None
        return sorted(children_of(self.process.pid))

    def get(self, path: str, *, token: bool = True) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if token else {}
        return requests.get(self.base + path, headers=headers, timeout=30)

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.post(self.base + path, json=body, headers=headers, timeout=30)

    def graphql(self, query: str = DEPARTMENTS_QUERY) -> requests.Response:
        return self.post("/graphql", {"query": query})


MakeServer = Callable[[str], RosterServer]


@pytest.fixture
def roster_server(tmp_path: Path) -> Iterator[MakeServer]:
    """Make servers with ``roster_server(database_url)``; they are stopped after the test."""
    servers: list[RosterServer] = []

    def make(database_url: str) -> RosterServer:
        server = RosterServer(database_url, tmp_path / f"server{len(servers)}")
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


TEMPLATE = "roster_outage_template"


@pytest.fixture(scope="module")
def migrated(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database in the own cluster, migrated and holding an admin token (returned), which
    each PostgreSQL test copies: a copy takes a tenth of a second, migrate and create_token
    about four seconds."""
    runner = RosterServer(pg_cluster.create_database(TEMPLATE), tmp_path_factory.mktemp("template"))
    runner.migrate_and_make_token()
    return runner.token


def on_pg_cluster(
    pg_cluster: PgCluster, roster_server: MakeServer, token: str, name: str
) -> RosterServer:
    """A server on a fresh copy of the migrated database."""
    server = roster_server(pg_cluster.create_database(name, template=TEMPLATE))
    server.token = token
    return server


def serving(server: RosterServer) -> RosterServer:
    """Start the server and store two departments through the REST route."""
    server.start()
    stored = server.post(
        "/api/employees/", {"destination_table": "departments", "data": DEPARTMENTS}
    )
    assert (stored.status_code, stored.json()["inserted"]) == (200, 2)
    return server


def assert_serving(server: RosterServer) -> None:
    graphql = server.graphql()
    assert graphql.status_code == 200
    assert graphql.json() == {"data": {"departments": {"totalCount": 2, "nodes": DEPARTMENTS}}}
    rest = server.get("/api/employees/departments")
    assert rest.status_code == 200
    assert rest.json() == {"message": "Success", "data": DEPARTMENTS, "next_after": None}
    ready = server.get("/readyz", token=False)
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})


def assert_unavailable(answer: requests.Response, body: dict[str, Any]) -> None:
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == body


def assert_in_outage(server: RosterServer) -> None:
    # Twice: the first request finds the kept connection broken, the second has none.
    for _ in range(2):
        assert_unavailable(server.graphql(), GRAPHQL_UNAVAILABLE)
    assert_unavailable(server.post("/graphql/", {"query": DEPARTMENTS_QUERY}), GRAPHQL_UNAVAILABLE)
    assert_unavailable(server.get("/api/employees/departments"), REST_UNAVAILABLE)
    assert_unavailable(server.get("/api/metrics/hires-by-quarter?year=2021"), REST_UNAVAILABLE)
    assert_unavailable(server.get("/dashboard/?year=2021"), REST_UNAVAILABLE)
    write = server.post("/api/employees/", {"destination_table": "jobs", "data": [{"id": 1}]})
    assert_unavailable(write, REST_UNAVAILABLE)
    alive = server.get("/healthz", token=False)
    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
    ready = server.get("/readyz", token=False)
    assert_unavailable(ready, {"message": "the database does not answer", **NOT_READY})
    log = server.log.read_text()
    assert "database unavailable" in log  # one warning a request, with the driver's reason
    assert "Traceback" not in log  # an outage is expected: no stack traces in the log


# --- PostgreSQL: the tests' own cluster goes away and comes back -----------------------------


@pytest.mark.parametrize("outage", ["stop", "kill"])
def test_a_postgresql_outage_answers_503_json_and_service_resumes_by_itself(
    pg_cluster: PgCluster, roster_server: MakeServer, migrated: str, outage: str
) -> None:
    server = serving(on_pg_cluster(pg_cluster, roster_server, migrated, f"roster_{outage}"))
    assert_serving(server)
    workers = server.workers()

    getattr(pg_cluster, outage)()  # a clean shutdown, or the postmaster SIGKILLed
    assert_in_outage(server)

    pg_cluster.start()
    assert_serving(server)
    assert server.workers() == workers  # the same process reconnected by itself


@pytest.mark.parametrize("door", ["graphql", "rest"])
def test_a_connection_cut_mid_query_answers_503_and_the_next_request_reconnects(
    pg_cluster: PgCluster, roster_server: MakeServer, migrated: str, door: str
) -> None:
    """The token lookup succeeds; the departments query then loses its connection.

    The test holds a lock on ``departments`` so the server's query waits on it, and terminates
    that server backend while it waits. On /graphql, Strawberry catches the resolver's error
    into ``errors``: it must still be SERVICE_UNAVAILABLE (not masked as unexpected) and a 503.
    """
    dbname = f"roster_cut_{door}"
    server = serving(on_pg_cluster(pg_cluster, roster_server, migrated, dbname))
    request = (
        server.graphql if door == "graphql" else lambda: server.get("/api/employees/departments")
    )
    with ThreadPoolExecutor(1) as pool, closing(pg_cluster.connect(dbname)) as locker:
        locker.autocommit = False
        with locker.cursor() as cursor:
            cursor.execute("LOCK TABLE departments IN ACCESS EXCLUSIVE MODE")
        answer = pool.submit(request)
        waiting = _wait_for_lock_waiter(pg_cluster, dbname)
        with closing(pg_cluster.connect()) as admin, admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [waiting])
            assert cursor.fetchone() == (True,)
        cut = answer.result(timeout=30)

    if door == "graphql":
        assert cut.status_code == 503
        assert cut.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
        body = cut.json()
        assert body["data"] is None
        assert body["errors"] == [
            {
                "message": UNAVAILABLE_MESSAGE,
                "locations": [{"line": 1, "column": 3}],
                "path": ["departments"],
                "extensions": {"code": "SERVICE_UNAVAILABLE"},
            }
        ]
        assert "terminat" not in cut.text  # the driver's message stays in the log
    else:
        assert_unavailable(cut, REST_UNAVAILABLE)
    assert "database unavailable" in server.log.read_text()
    assert_serving(server)


def _wait_for_lock_waiter(cluster: PgCluster, dbname: str) -> int:
    """The pid of the server backend that waits for the test's lock."""
    deadline = time.monotonic() + 20
    with closing(cluster.connect()) as watcher, watcher.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
                [dbname],
            )
            if row := cursor.fetchone():
                return row[0]
            time.sleep(0.05)
    raise AssertionError("the server's query never waited for the lock")


def test_a_database_that_does_not_answer_fails_within_the_connect_timeout(
    pg_cluster: PgCluster, roster_server: MakeServer, migrated: str
) -> None:
    """A frozen server accepts the TCP connection but never answers; without a connect timeout
    (libpq has none by default) the request would hang until gunicorn killed the worker. The
    settings default it to 5 seconds for PostgreSQL."""
    server = roster_server(pg_cluster.create_database("roster_frozen", template=TEMPLATE))
    server.token = migrated
    server.start()  # no database connection yet: the first request opens it
    pg_cluster.freeze()
    started = time.monotonic()
    answer = server.get("/api/employees/departments")
    took = time.monotonic() - started
    pg_cluster.thaw()

    assert_unavailable(answer, REST_UNAVAILABLE)
    assert 4.5 < took < 15, took
    rest = server.get("/api/employees/departments")
    assert (rest.status_code, rest.json()["data"]) == (200, [])


# --- SQLite: the database file's folder goes away and comes back -----------------------------


def test_an_unreachable_sqlite_file_answers_503_json_and_service_resumes_by_itself(
    tmp_path: Path, roster_server: MakeServer
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    server = roster_server(f"sqlite:///{folder / 'roster.sqlite3'}")
    server.migrate_and_make_token()
    serving(server)
    assert_serving(server)
    workers = server.workers()

    folder.rename(tmp_path / "data-away")  # SQLite can no longer open the file
    assert_in_outage(server)

    (tmp_path / "data-away").rename(folder)
    assert_serving(server)
    assert server.workers() == workers


# --- readiness: a database without Roster's tables -------------------------------------------


@pytest.mark.parametrize("engine", ["postgresql", "sqlite"])
def test_readyz_is_503_until_the_migrations_are_applied(
    request: pytest.FixtureRequest, roster_server: MakeServer, tmp_path: Path, engine: str
) -> None:
    if engine == "postgresql":
        url = request.getfixturevalue("pg_cluster").create_database("roster_unmigrated")
    else:
        url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    server = roster_server(url)
    server.start()
    count = len(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)
    assert count > 10  # Django's apps and Roster's

    ready = server.get("/readyz", token=False)
    assert_unavailable(
        ready,
        {
            "message": f"{count} migrations are not applied; run python manage.py migrate",
            **NOT_READY,
        },
    )
    alive = server.get("/healthz", token=False)
    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})

    server.manage("migrate", "--noinput")
    ready = server.get("/readyz", token=False)
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})


# --- in process, on the suite's database ------------------------------------------------------


def test_healthz_touches_no_database(client: Client) -> None:
    # No ``db`` fixture: pytest-django fails any database access in this test.
    answer = client.get("/healthz")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


def test_readyz_answers_ok_on_a_migrated_database(client: Client, db: None) -> None:
    answer = client.get("/readyz")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


def test_probes_answer_get_and_head_only(client: Client, db: None) -> None:
    assert [client.head(path).status_code for path in ("/healthz", "/readyz")] == [200, 200]
    assert [client.post(path).status_code for path in ("/healthz", "/readyz")] == [405, 405]


def test_an_unexpected_error_outside_graphql_is_json_not_html(
    db: None, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("secret internals at /srv/roster/ingest.py")

    monkeypatch.setattr("backend.rest.ingest_rows", broken)
    client = Client(raise_request_exception=False)
    answer = client.post(
        "/api/employees/",
        data=json.dumps({"destination_table": "departments", "data": [{"id": 1}]}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {tokens['write']}"},
    )
    assert answer.status_code == 500
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"message": "Unexpected error."}
