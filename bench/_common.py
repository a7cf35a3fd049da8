"""What every benchmark shares: its database, the app's processes, timing, and the figure lines.

A database is a local PostgreSQL name (``database("load")`` is ``roster_bench_load``; set
``ROSTER_BENCH_DB`` to change the prefix) or, for ``bench/soak.py``, a ``DATABASE_URL``, which
may be an SQLite file. One benchmark runs at a time: each waits on a lock file for the one
before it to end, since a figure measured beside another benchmark means little.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import platform
import random
import re
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import dj_database_url
import psycopg2
import psycopg2.extras
import requests

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)  # what a benchmark keys its samples by
ROOT = Path(__file__).resolve().parent.parent
PYTHON, GUNICORN = (str(ROOT / ".venv" / "bin" / name) for name in ("python", "gunicorn"))
COLUMNS = "id,name,datetime,department_id,job_id"
LOCK = Path(tempfile.gettempdir()) / "roster-bench.lock"
# One key for every process of a run; production settings refuse keys shorter than 50 characters.
_SECRET_KEY = secrets.token_urlsafe(50)
# Departments and jobs of data/sample, through the app's models (no batch row: soak audits them).
_LOAD_REFERENCE = """
import csv
from backend.models import Department, Job
for model, field in ((Department, "department"), (Job, "job")):
    with open(f"data/sample/{field}s.csv", newline="") as f:
        rows = [model(id=int(r[0]), **{field: r[1]}) for r in csv.reader(f) if r]
    model.objects.bulk_create(rows)
print(Department.objects.count(), Job.objects.count())
"""


def options(doc: str, **sizes: Any) -> argparse.Namespace:
    """The script's options (``rows=1000`` gives ``--rows``, of its default's type, full size)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, default in sizes.items():
        flag, kind = f"--{name.replace('_', '-')}", type(default)
        parser.add_argument(flag, type=kind, default=default, help="default %(default)s")
    return parser.parse_args()


# --- databases -------------------------------------------------------------------------------


def database(suffix: str) -> str:
    """The local PostgreSQL database of one benchmark."""
    return f"{os.environ.get('ROSTER_BENCH_DB', 'roster_bench')}_{suffix}"


def _config(db: str) -> dict[str, Any]:
    """dj-database-url's settings of ``db``, with its ``URL``; an SQLite path made absolute."""
    url = db if "://" in db else f"postgres://postgres@127.0.0.1:5432/{db}"
    config = dj_database_url.parse(url)
    if config["ENGINE"] == "django.db.backends.sqlite3":  # relative to the caller, not the app
        config["NAME"] = str(Path(config["NAME"]).resolve())
        url = f"sqlite:///{config['NAME']}"
    return {**config, "URL": url}


def is_sqlite(db: str) -> bool:
    return _config(db)["ENGINE"] == "django.db.backends.sqlite3"


def _server(db: str, dbname: str | None = None) -> dict[str, Any]:
    """psycopg2's arguments for ``dbname`` (default: ``db`` itself) on ``db``'s server."""
    config = _config(db)
    given = {key.lower(): config[key] for key in ("HOST", "PORT", "USER", "PASSWORD")}
    given = {key: value for key, value in given.items() if value}
    return {**given, "dbname": dbname or config["NAME"]}


def pg_dsn(db: str) -> str:
    return " ".join(f"{key}={value}" for key, value in _server(db).items())


def connect(db: str) -> Any:
    """A DB-API connection to ``db``: sqlite3 for an SQLite file, else psycopg2."""
    return sqlite3.connect(_config(db)["NAME"]) if is_sqlite(db) else psycopg2.connect(pg_dsn(db))


def sql(
    db: str, statement: str, params: Mapping[str, Any] | None = None, *, server: bool = False
) -> list[tuple]:
    """Run one statement (autocommit) on the PostgreSQL database ``db``, or with ``server`` on
    the ``postgres`` database of its server: its rows, if any."""
    conn = psycopg2.connect(**_server(db, "postgres" if server else None))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def psql(db: str) -> list[str]:
    """The ``psql`` command on the PostgreSQL database ``db``, quiet, stopping at an error."""
    return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg_dsn(db)]


def fill(db: str, statement: str, rows: int) -> None:
    """Run ``statement``, SQL that makes ``{rows}`` hired employees, then ``VACUUM ANALYZE``
    (statistics, visibility map, hint bits); print the time it took."""
    started = time.perf_counter()
    sql(db, statement.format(rows=rows))
    sql(db, "VACUUM ANALYZE")
    print(f"filled with {rows:,} rows in {time.perf_counter() - started:.1f} s")


def fill_unindexed(db: str, statement: str, rows: int) -> None:
    """``fill``, with the hires' secondary indexes dropped first and built again after, as
    they were: at 10M rows a build is far quicker than inserts into a trigram index. The
    summary's triggers count the rows as they go in."""
    indexes = sql(
        db,
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'hired_employees' "
        "AND indexname <> 'hired_employees_pkey'",
    )
    for name, _ in indexes:
        sql(db, f'DROP INDEX "{name}"')
    fill(db, statement, rows)
    for _, definition in indexes:
        sql(db, definition)
    sql(db, "VACUUM ANALYZE")


def insert_rows(conn: Any, rows: Sequence[tuple]) -> None:
    """``rows`` (of ``COLUMNS``) into hired_employees with psycopg2's ``execute_values``."""
    with conn.cursor() as cur:
        statement = f"INSERT INTO hired_employees ({COLUMNS}) VALUES %s"
        psycopg2.extras.execute_values(cur, statement, rows, page_size=1000)


def remove_database(db: str) -> None:
    """Drop ``db`` on its server, or delete its SQLite files."""
    if is_sqlite(db):
        path = Path(_config(db)["NAME"])
        for suffix in ("", "-wal", "-shm", "-journal"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
    else:
        sql(db, f'DROP DATABASE IF EXISTS "{_config(db)["NAME"]}" WITH (FORCE)', server=True)


def reset_database(db: str) -> None:
    """An empty ``db``; on SQLite the first migration creates the file."""
    remove_database(db)
    if is_sqlite(db):
        Path(_config(db)["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    else:
        sql(db, f'CREATE DATABASE "{_config(db)["NAME"]}"', server=True)


def app_env(db: str, **extra: str) -> dict[str, str]:
    """The environment the app runs with: production settings, quiet logs, the bench database.

    An SQLite database keeps Roster's var folder beside its file.
    """
    env = {**os.environ, "DEBUG": "0", "SECRET_KEY": _SECRET_KEY, "LOG_LEVEL": "WARNING"}
    env.update(DATABASE_URL=_config(db)["URL"], DJANGO_SETTINGS_MODULE="backend.settings")
    if is_sqlite(db):
        env["ROSTER_VAR_DIR"] = str(Path(_config(db)["NAME"]).parent)
    return {**env, **extra}


def manage(env: Mapping[str, str], *args: str, cwd: Path = ROOT) -> str:
    """Run ``manage.py *args`` (of the checkout ``cwd``): its stdout; its output if it fails."""
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def prepare_database(db: str) -> None:
    """A fresh database, migrated, with the sample's 12 departments and 183 jobs."""
    reset_database(db)
    env = app_env(db)
    manage(env, "migrate", "--noinput", "-v", "0")
    counts = manage(env, "shell", "-c", _LOAD_REFERENCE).split()[-2:]
    if counts != ["12", "183"]:
        raise RuntimeError(f"expected 12 departments and 183 jobs, got {counts}")


def create_token(db: str, name: str, scope: str) -> str:
    out = manage(app_env(db), "create_token", name, "--scope", scope, "--replace")
    return out.strip().splitlines()[-1].strip()


@contextlib.contextmanager
def worktree(commit: str) -> Iterator[Path]:
    """The Roster of ``commit``, checked out in a temporary git worktree (same venv)."""
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
        tree = Path(tmp) / "roster"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run(
            [*git, "add", "--detach", str(tree), commit], check=True, capture_output=True
        )
        try:
            yield tree
        finally:
            subprocess.run([*git, "remove", "--force", str(tree)], capture_output=True)


# --- data ------------------------------------------------------------------------------------

_EPOCH, _HIRED = datetime(2019, 1, 1, tzinfo=UTC), datetime(2021, 1, 1, tzinfo=UTC)
_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Perlman"]


def employee(i: int) -> tuple[int, str, datetime, int, int]:
    """Hired employee ``i`` of the HTTP benchmarks: id, name, datetime, department, job."""
    return i, f"Bench Employee {i}", _HIRED + timedelta(minutes=i), 1 + i % 12, 1 + i % 183


def hired_employees_csv(path: Path, rows: int, bad_every: int = 100) -> tuple[Path, int]:
    """A headerless hired_employees file of ``rows`` rows, every ``bad_every``-th one bad (in
    turn a bad datetime, a missing job, an unknown department), and a copy of its valid rows:
    that copy's path and the number of bad rows."""
    rng, valid = random.Random(rows), path.with_name(f"valid_{path.name}")
    with path.open("w", encoding="utf-8") as out, valid.open("w", encoding="utf-8") as ok:
        for i in range(1, rows + 1):
            if i % bad_every == 0:
                out.write(
                    (
                        f"{i},Bad Date {i},2021-13-45T99:00:00Z,{1 + i % 12},{1 + i % 183}\n",
                        f"{i},No Job {i},2021-03-04T10:00:00Z,{1 + i % 12},\n",
                        f"{i},Nowhere {i},2021-03-04T10:00:00Z,99,{1 + i % 183}\n",
                    )[(i // bad_every) % 3]
                )
                continue
            moment = _EPOCH + timedelta(seconds=rng.randrange(3 * 365 * 86400))
            line = (
                f"{i},{rng.choice(_FIRST)} {rng.choice(_LAST)},"
                f"{moment.strftime('%Y-%m-%dT%H:%M:%SZ')},"
                f"{rng.randint(1, 12)},{rng.randint(1, 183)}\n"
            )
            out.write(line)
            ok.write(line)
    return valid, rows // bad_every


# --- processes -------------------------------------------------------------------------------


class Timed(NamedTuple):
    """One timed command: its wall seconds, the peak RSS of its largest process, its stdout."""

    seconds: float
    rss_mb: float
    stdout: str


def timed(cmd: Sequence[str], env: Mapping[str, str]) -> Timed:
    """Run ``cmd`` under ``/usr/bin/time -f "%e %M"`` (whose own footprint is small, unlike this
    process's, which may hold an S3 server's data); its output if it fails."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        time_it = ["/usr/bin/time", "-o", report.name, "-f", "%e %M", *cmd]
        elapsed, done = clock(
            subprocess.run, time_it, cwd=ROOT, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr[-4000:]}")
        max_kb = report.read().split()[-1]
    return Timed(elapsed, int(max_kb) / 1024, done.stdout)


def copy_csv(db: str, path: Path) -> Timed:
    """psql's ``\\copy`` of the headerless CSV file ``path`` into hired_employees, timed."""
    command = f"\\copy hired_employees ({COLUMNS}) from '{path}' csv"  # no quote in a temp path
    return timed([*psql(db), "-c", command], app_env(db))


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn(db: str, workers: int = 2, log: Path | None = None, **env: str) -> Iterator[str]:
    """Serve the app with gunicorn (``env`` over ``app_env``); yield its /graphql URL once it
    answers; always stop it. Its output goes to ``log``, kept for the caller, if given."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/graphql"
    cmd = [GUNICORN, "backend.wsgi", "-w", str(workers), "-b", f"127.0.0.1:{port}"]
    with tempfile.TemporaryDirectory(prefix="bench-gunicorn-") as tmp:
        log = log or Path(tmp) / "gunicorn.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=app_env(db, **env),
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
            with serving(proc, url, "gunicorn", log.read_text):
                yield url


@contextlib.contextmanager
def serving(
    proc: subprocess.Popen[Any], url: str, name: str, output: Callable[[], str]
) -> Iterator[None]:
    """Wait (60 s at most) until the server ``proc`` (started in a session of its own) answers
    at ``url``, then always stop it: SIGTERM to its process group, SIGKILL if it is stuck.
    ``output`` reads what it printed, for the error when it does not start."""
    try:
        deadline = time.monotonic() + 60
        while not _answers(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{output()}")
            time.sleep(0.2)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _answers(url: str) -> bool:
    """Whether the server answers at all (a 401 without a token is an answer)."""
    try:
        requests.post(url, json={"query": "{ __typename }"}, timeout=10)
    except (requests.ConnectionError, requests.Timeout):
        return False
    return True


def session(token: str) -> requests.Session:
    """A keep-alive session that sends JSON with ``token``."""
    http = requests.Session()
    http.headers.update(Authorization=f"Bearer {token}", **{"Content-Type": "application/json"})
    return http


def post(
    http: requests.Session, url: str, body: bytes, field: str | None = None
) -> tuple[float, Any]:
    """POST ``body``: the seconds until the whole answer arrived, and the answer; with ``field``,
    only ``data[field]``, and an answer that is not a 200 with that field and no error raises."""
    # the whole body is in when post() returns: decoding it is the client's work
    elapsed, response = clock(http.post, url, data=body)
    answer = response.json()
    if field is None:
        return elapsed, answer
    data = (answer.get("data") or {}).get(field)
    if response.status_code != 200 or answer.get("errors") or data is None:
        raise RuntimeError(f"unexpected answer ({response.status_code}): {str(answer)[:500]}")
    return elapsed, data


# --- timing and figures ----------------------------------------------------------------------

median = statistics.median


def clock(work: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[float, T]:
    """The wall seconds ``work(*args, **kwargs)`` took, and its result."""
    started = time.perf_counter()
    result = work(*args, **kwargs)
    return time.perf_counter() - started, result


def interleave(
    rounds: int, warmups: int, step: Callable[..., Mapping[K, float]], *args: Any
) -> dict[K, list[float]]:
    """Call ``step(round, *args)``, which times each measurement once, in turn (so that background
    load hits them alike), ``warmups + rounds`` times: each one's seconds after the warm-ups."""
    samples: dict[K, list[float]] = {}
    for round_ in range(warmups + rounds):
        for key, seconds in step(round_, *args).items():
            if round_ >= warmups:
                samples.setdefault(key, []).append(seconds)
    return samples


def p90(samples: Sequence[float]) -> float:
    return statistics.quantiles(samples, n=10, method="inclusive")[-1]


def p99(samples: Sequence[float]) -> float:
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[-1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def show(value: float, unit: str) -> str:
    """``value`` in ``unit``: "ms" and "s" take seconds."""
    if unit == "ms":
        return ms(value)
    return f"{value:,.2f} s" if unit == "s" else f"{value:,.0f} {unit}"


def compare(
    label: str,
    figure: float,
    baseline: float,
    unit: str,
    limit: float | None = None,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    note: str = "",
) -> None:
    """Print ``label: figure | baseline | ratio``, with the verdict against the target if there
    is one (``limit``: the highest ratio; ``at_least``, ``at_most``: bounds of the figure)."""
    ratio = figure / baseline
    target = ""
    if limit is not None:
        target = f"  (target <= {limit}x)  {verdict(ratio <= limit)}"
    if at_least is not None:
        target = f"  (target >= {show(at_least, unit)})  {verdict(figure >= at_least)}"
    if at_most is not None:
        target = f"  (target <= {show(at_most, unit)})  {verdict(figure <= at_most)}"
    figures = f"{show(figure, unit)} | baseline {show(baseline, unit)} | {ratio:.2f}x"
    print(f"{label}: {figures}{target}{note}", flush=True)


def _machine(db: str) -> str:
    """What the figures are measured on: CPU, memory, Python and the database server."""
    cpu = re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    if is_sqlite(db):
        server = f"SQLite {sqlite3.sqlite_version}"
    else:
        server = f"PostgreSQL {sql(db, 'SHOW server_version', server=True)[0][0]}"
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}, nproc {os.cpu_count()}, {memory:.0f} GiB, "
        f"{cpu[1] if cpu else '?'}, Python {platform.python_version()}, {server}"
    )


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@contextlib.contextmanager
def run(title: str, db: str, *, keep: bool = False) -> Iterator[None]:
    """Wait for any other benchmark to end (a lock file), print the title and the machine, and
    at the end the load average; drop ``db`` after a run that went through (unless ``keep``:
    a database built once for every run), keep it otherwise."""
    with LOCK.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for the benchmark that holds {LOCK} to end", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        print(f"== {title}\n   {_machine(db)}, load (1/5/15 min) {_load()}", flush=True)
        try:
            yield
        except BaseException:
            print(f"database kept: {db}", file=sys.stderr)
            raise
        else:
            if not keep:
                remove_database(db)
        finally:
            print(f"load average (1/5/15 min) at the end: {_load()}", flush=True)
