"""Shared setup for the benchmarks: a throw-away PostgreSQL database, gunicorn, tokens, figures.

Nothing here asserts: the benchmarks print figures. Setup failures (a migration that fails, a
server that never answers) still stop the run, since there would be nothing to measure.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import requests

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python")
GUNICORN = str(VENV_BIN / "gunicorn")
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"

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
    """The dj-database-url URL of the local database ``name``."""
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def pg_dsn(name: str) -> str:
    """The psycopg2 DSN of the local database ``name``."""
    return f"host=127.0.0.1 port=5432 user=postgres dbname={name}"


def _admin(*statements: str) -> None:
    """Run statements on the ``postgres`` database, outside a transaction (CREATE DATABASE)."""
    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def drop_database(name: str) -> None:
    """Drop the bench database ``name`` if it exists: a million rows are not worth keeping."""
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def recreate_database(name: str) -> None:
    """Drop (if present) and create the database ``name``, from the ``postgres`` database."""
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')


def app_env(db_name: str) -> dict[str, str]:
    """The environment the app runs with: production settings, quiet logs, the bench database."""
    env = dict(os.environ)
    env.update(
        DEBUG="0",
        SECRET_KEY="bench",
        LOG_LEVEL="WARNING",
        DATABASE_URL=database_url(db_name),
        DJANGO_SETTINGS_MODULE="backend.settings",
    )
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
    """Fresh database, migrated, with the sample departments and jobs: their counts."""
    recreate_database(db_name)
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
def gunicorn(db_name: str, workers: int = 2) -> Iterator[str]:
    """Serve the app with gunicorn; yield its /graphql URL; always stop it on the way out."""
    port = free_port()
    cmd = [GUNICORN, "backend.wsgi", "-w", str(workers), "-b", f"127.0.0.1:{port}"]
    url = f"http://127.0.0.1:{port}/graphql"
    with tempfile.TemporaryDirectory(prefix="bench-gunicorn-") as tmp:
        log_path = Path(tmp) / "gunicorn.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=app_env(db_name), stdout=log, stderr=log, start_new_session=True
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


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    conn = psycopg2.connect(PG_ADMIN_DSN)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            pg = cur.fetchone()[0]
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
        "postgresql": pg,
    }


def print_header(title: str) -> None:
    """The benchmark's name and the machine it runs on."""
    info = machine()
    print(f"== {title}")
    print("   " + ", ".join(f"{key}: {value}" for key, value in info.items()))
    sys.stdout.flush()


def print_load() -> None:
    """The load average: the machine may be shared, and figures depend on it."""
    with contextlib.suppress(OSError):
        one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
        print(f"load average (1/5/15 min) at the end: {one} {five} {fifteen}")
