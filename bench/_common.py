"""Shared setup for the benchmarks: a throw-away PostgreSQL database, gunicorn, tokens, figures.

A database is named by its local PostgreSQL name (``roster_bench``) or, where a benchmark also
runs on SQLite (``bench/soak.py``), by a ``DATABASE_URL``: ``sqlite:////tmp/soak.sqlite3``.

Nothing here asserts: the benchmarks print figures. Setup failures (a migration that fails, a
server that never answers) still stop the run, since there would be nothing to measure.
"""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dj_database_url
import psycopg2
import requests

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python")
GUNICORN = str(VENV_BIN / "gunicorn")
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
# One key for every process of a run; production settings refuse keys shorter than 50 characters.
_SECRET_KEY = secrets.token_urlsafe(50)

# Departments and jobs of data/sample, loaded through the app's own models.
_LOAD_REFERENCE = """
import csv
from backend.models import Department, Job
with open("data/sample/departments.csv", newline="") as f:
    Department.objects.bulk_create(
        [Department(id=int(r[0]), department=r[1]) for r in csv.reader(f) if r]
    )
with open("data/sample/jobs.csv", newline="") as f:
    Job.objects.bulk_create([Job(id=int(r[0]), job=r[1]) for r in csv.reader(f) if r])
print(Department.objects.count(), Job.objects.count())
"""


def database_url(name: str) -> str:
    """The dj-database-url URL of the local database ``name``; a URL is returned as it is."""
    return name if "://" in name else f"postgres://postgres@127.0.0.1:5432/{name}"


def is_sqlite(db: str) -> bool:
    """Whether ``db`` (a local PostgreSQL name or a URL) is an SQLite file."""
    return dj_database_url.parse(database_url(db))["ENGINE"] == "django.db.backends.sqlite3"


def sqlite_path(db: str) -> Path:
    """The file of the SQLite database ``db`` (a ``sqlite:///`` URL)."""
    return Path(dj_database_url.parse(database_url(db))["NAME"])


def _server(db: str, dbname: str) -> dict[str, Any]:
    """psycopg2's arguments for the database ``dbname`` on the PostgreSQL server of ``db``."""
    config = dj_database_url.parse(database_url(db))
    given = {
        "host": config["HOST"],
        "port": config["PORT"],
        "user": config["USER"],
        "password": config["PASSWORD"],
    }
    return {**{key: value for key, value in given.items() if value}, "dbname": dbname}


def connect(db: str) -> Any:
    """A DB-API connection to ``db``: psycopg2 for PostgreSQL, sqlite3 for an SQLite file."""
    if is_sqlite(db):
        return sqlite3.connect(sqlite_path(db))
    return psycopg2.connect(**_server(db, dj_database_url.parse(database_url(db))["NAME"]))


def pg_dsn(name: str) -> str:
    """The psycopg2 DSN of the local database ``name``."""
    return f"host=127.0.0.1 port=5432 user=postgres dbname={name}"


def _admin(*statements: str) -> None:
    """Run statements on the local server's ``postgres`` database (CREATE DATABASE)."""
    _on_server("postgres", *statements)


def drop_database(name: str) -> None:
    """Drop the bench database ``name`` if it exists: a million rows are not worth keeping."""
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def recreate_database(name: str) -> None:
    """Drop (if present) and create the database ``name``, from the ``postgres`` database."""
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')


def _sqlite_files(db: str) -> list[Path]:
    path = sqlite_path(db)
    return [path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]


def _on_server(db: str, *statements: str) -> None:
    """Run statements on the ``postgres`` database of ``db``'s server, outside a transaction."""
    conn = psycopg2.connect(**_server(db, "postgres"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def remove_database(db: str) -> None:
    """Drop ``db`` (a local PostgreSQL name or a URL): on its server, or its SQLite files."""
    if is_sqlite(db):
        for path in _sqlite_files(db):
            path.unlink(missing_ok=True)
        return
    name = dj_database_url.parse(database_url(db))["NAME"]
    _on_server(db, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def reset_database(db: str) -> None:
    """An empty ``db``: dropped and created on its PostgreSQL server, or its SQLite files
    deleted (the first migration creates the file)."""
    remove_database(db)
    if is_sqlite(db):
        sqlite_path(db).parent.mkdir(parents=True, exist_ok=True)
    else:
        _on_server(db, f'CREATE DATABASE "{dj_database_url.parse(database_url(db))["NAME"]}"')


def app_env(db_name: str) -> dict[str, str]:
    """The environment the app runs with: production settings, quiet logs, the bench database.

    ``db_name`` may be a URL; an SQLite database keeps Roster's var folder beside its file.
    """
    env = dict(os.environ)
    env.update(
        DEBUG="0",
        SECRET_KEY=_SECRET_KEY,
        LOG_LEVEL="WARNING",
        DATABASE_URL=database_url(db_name),
        DJANGO_SETTINGS_MODULE="backend.settings",
    )
    if is_sqlite(db_name):
        env["ROSTER_VAR_DIR"] = str(sqlite_path(db_name).parent)
    return env


def manage(env: dict[str, str], *args: str) -> str:
    """Run ``manage.py *args`` and return its stdout; raise with its output if it fails."""
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def prepare_database(db_name: str) -> tuple[int, int]:
    """Fresh database, migrated, with the sample departments and jobs: their counts.

    ``db_name`` may be a URL, of a PostgreSQL database or an SQLite file.
    """
    reset_database(db_name)
    env = app_env(db_name)
    manage(env, "migrate", "--noinput", "-v", "0")
    departments, jobs = (int(n) for n in manage(env, "shell", "-c", _LOAD_REFERENCE).split()[-2:])
    if (departments, jobs) != (12, 183):
        raise RuntimeError(f"expected 12 departments and 183 jobs, got {departments}, {jobs}")
    return departments, jobs


def create_token(db_name: str, name: str, scope: str) -> str:
    """A fresh API token (the last stdout line of ``create_token``)."""
    out = manage(app_env(db_name), "create_token", name, "--scope", scope, "--replace")
    return out.strip().splitlines()[-1].strip()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def gunicorn(
    db_name: str,
    workers: int = 2,
    *,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
) -> Iterator[str]:
    """Serve the app with gunicorn; yield its /graphql URL; always stop it on the way out.

    ``env`` is laid over ``app_env``'s. The server's output goes to ``log_path`` when it is
    given (kept for the caller to read), else to a temporary file.
    """
    port = free_port()
    cmd = [GUNICORN, "backend.wsgi", "-w", str(workers), "-b", f"127.0.0.1:{port}"]
    url = f"http://127.0.0.1:{port}/graphql"
    with tempfile.TemporaryDirectory(prefix="bench-gunicorn-") as tmp:
        log_path = log_path or Path(tmp) / "gunicorn.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env={**app_env(db_name), **(env or {})},
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            try:
                _wait_until_up(proc, url, log_path)
                yield url
            finally:
                _stop(proc)


def _wait_until_up(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 60) -> None:
    """Poll ``url`` until the server answers anything (401 without a token is fine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{log.read_text()}")
        try:
            requests.post(url, json={"query": "{ __typename }"}, timeout=10)
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer within {timeout}s:\n{log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the gunicorn master (it stops its workers); SIGKILL its process group if stuck."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


# --- figures ---------------------------------------------------------------------------------


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def p90(samples: Sequence[float]) -> float:
    """The 90th percentile (inclusive method, interpolated)."""
    return statistics.quantiles(samples, n=10, method="inclusive")[-1]


def p99(samples: Sequence[float]) -> float:
    """The 99th percentile (inclusive method, interpolated); the sample itself if alone."""
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[-1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def machine(db: str | None = None) -> dict[str, str]:
    """What the figures were measured on: with ``db``, the version of its database server (or
    of SQLite), else that of the local PostgreSQL."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    if db is not None and is_sqlite(db):
        database = ("sqlite", sqlite3.sqlite_version)
    else:
        server = {"dsn": PG_ADMIN_DSN} if db is None else _server(db, "postgres")
        conn = psycopg2.connect(**server)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW server_version")
                database = ("postgresql", cur.fetchone()[0])
        finally:
            conn.close()
    free = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.splitlines()
    mem = next((line.split()[1] for line in free if line.startswith("Mem:")), "?")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "memory": mem,
        "cpu": cpu,
        "python": platform.python_version(),
        database[0]: database[1],
    }


def print_header(title: str, db: str | None = None) -> None:
    """The benchmark's name and the machine it runs on (``db``: see ``machine``)."""
    info = machine(db)
    print(f"== {title}")
    print("   " + ", ".join(f"{key}: {value}" for key, value in info.items()))
    sys.stdout.flush()


def print_load() -> None:
    """The load average: the machine may be shared, and figures depend on it."""
    with contextlib.suppress(OSError):
        one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
        print(f"load average (1/5/15 min) at the end: {one} {five} {fifteen}")
