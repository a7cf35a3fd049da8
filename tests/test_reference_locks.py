"""Step 2 locks the departments and jobs a batch names (``jobs/ingest/references.py``), so the
bulk writer skips the foreign keys' per-row triggers where the role may set
``session_replication_role`` (``jobs/ingest/writers.py``), and keeps them where it may not.

Which path a load took is read from PostgreSQL's own counters: each per-row foreign-key check
is one scan of ``departments`` and one of ``jobs`` (``pg_stat_user_tables``), and step 2 is one
scan of each per chunk. The loads are real ``load_csv`` processes, logged in as a role made by
the test, on a database of the test's own on the main server: PostgreSQL in either suite run.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql

from tests.test_load_csv import _generated_file
from tests.test_load_races import ROOT, _postgres_database, _production_env

ROWS, CHUNK = 6000, 3000  # two chunks, each past writers.COPY_THRESHOLD: the COPY path


def _query(url: str, statements: str) -> list[tuple[Any, ...]]:
    """Run ``statements`` (autocommit) on ``url``: the last one's rows, if it has any."""
    with contextlib.closing(psycopg2.connect(url)) as db:
        db.autocommit = True
        with db.cursor() as cursor:
            cursor.execute(statements)
            return cursor.fetchall() if cursor.description else []


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A migrated database with departments and jobs 1..3, shared by this module's tests."""
    with _postgres_database() as url:
        _query(url, "INSERT INTO departments VALUES (1, 'D1'), (2, 'D2'), (3, 'D3')")
        _query(url, "INSERT INTO jobs VALUES (1, 'J1'), (2, 'J2'), (3, 'J3')")
        yield url


@pytest.fixture
def empty(database: str) -> str:
    """The module's database with no hires, log or runs left by an earlier test."""
    _query(
        database,
        "TRUNCATE hired_employees, rejections, parked_references, batches, load_runs",
    )
    return database


@contextlib.contextmanager
def _login_role(url: str, *, may_set_replication_role: bool) -> Iterator[str]:
    """A non-superuser role that may write Roster's tables in ``url``'s database, and with
    ``may_set_replication_role`` may also set ``session_replication_role`` (PostgreSQL 15's
    ``GRANT SET ON PARAMETER``): its URL to that database. Dropped afterwards."""
    name = f"roster_loader_{uuid.uuid4().hex[:8]}"
    role = sql.Identifier(name)
    with contextlib.closing(psycopg2.connect(url)) as admin:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
            try:
                for grant in (
                    "GRANT ALL ON ALL TABLES IN SCHEMA public TO {}",
                    "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {}",
                ):
                    cursor.execute(sql.SQL(grant).format(role))
                if may_set_replication_role:
                    grant = "GRANT SET ON PARAMETER session_replication_role TO {}"
                    cursor.execute(sql.SQL(grant).format(role))
                yield f"postgres://{name}@127.0.0.1:5432/{url.rsplit('/', 1)[1]}"
            finally:
                cursor.execute(sql.SQL("DROP OWNED BY {}").format(role))  # its grants
                cursor.execute(sql.SQL("DROP ROLE {}").format(role))


@contextlib.contextmanager
def _as(url: str, login: str) -> Iterator[str]:
    """The URL to log in to ``url``'s database as ``login``: ``superuser`` (postgres), or a
    role of the test's own, ``granted`` the SET privilege or ``plain``."""
    if login == "superuser":
        yield url
    else:
        with _login_role(url, may_set_replication_role=login == "granted") as role_url:
            yield role_url


def _counters(url: str) -> dict[str, tuple[int, int]]:
    """Each table's (scans, rows inserted), as the statistics collector has them so far."""
    rows = _query(
        url,
        "SELECT relname, seq_scan + coalesce(idx_scan, 0), n_tup_ins FROM pg_stat_user_tables "
        "WHERE relname IN ('departments', 'jobs', 'hired_employees')",
    )
    return {table: (scans, inserted) for table, scans, inserted in rows}


def _load(tmp_path: Path, url: str, login_url: str) -> tuple[dict[str, int], set[int]]:
    """``load_csv`` of a ``ROWS``-row hires file in ``CHUNK``-row chunks, by a process logged in
    at ``login_url``: the scans of departments and jobs it made, once the statistics have its
    every insert, and the file's bad lines."""
    path = tmp_path / "hired_employees.csv"
    bad = _generated_file(path, ROWS)
    before = _counters(url)
    command = [sys.executable, "manage.py", "load_csv", str(path), "--chunk-size", str(CHUNK)]
    done = subprocess.run(command, cwd=ROOT, env=_production_env(login_url), capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    deadline = time.monotonic() + 30  # a backend reports its counters as it exits
    while (after := _counters(url))["hired_employees"][1] - before["hired_employees"][1] < (
        ROWS - len(bad)
    ):
        assert time.monotonic() < deadline, "the load's statistics never arrived"
        time.sleep(0.1)
    scans = {table: after[table][0] - before[table][0] for table in ("departments", "jobs")}
    return scans, bad


def _assert_loaded(url: str, bad: set[int]) -> None:
    assert _query(url, "SELECT count(*) FROM hired_employees") == [(ROWS - len(bad),)]
    assert {p for (p,) in _query(url, "SELECT position FROM rejections")} == bad
    assert _query(url, "SELECT count(*) FROM rejections WHERE NOT parked") == [(len(bad),)]
    assert _query(url, "SELECT status, read, inserted FROM load_runs") == [
        ("completed", ROWS, ROWS - len(bad))
    ]


@pytest.mark.parametrize("login", ["superuser", "granted"])
def test_a_role_that_may_set_the_replication_role_loads_without_per_row_key_checks(
    tmp_path: Path, empty: str, login: str
) -> None:
    """Step 2's one locking look-up per chunk and table is the only scan of departments and
    jobs: the foreign keys' triggers did not check the 5,880 rows one by one."""
    with _as(empty, login) as login_url:
        scans, bad = _load(tmp_path, empty, login_url)

    assert scans == {"departments": ROWS // CHUNK, "jobs": ROWS // CHUNK}
    _assert_loaded(empty, bad)


def test_a_role_that_may_not_set_it_loads_the_same_rows_with_the_triggers_on(
    tmp_path: Path, empty: str
) -> None:
    """The fallback: one look-up per chunk, then the triggers' check of each row at commit."""
    with _as(empty, "plain") as login_url:
        assert _query(login_url, "SELECT has_parameter_privilege('session_replication_role', "
                      "'SET'), rolsuper FROM pg_roles WHERE rolname = current_user") == [
            (False, False)
        ]  # fmt: skip
        scans, bad = _load(tmp_path, empty, login_url)

    per_table = ROWS // CHUNK + ROWS - len(bad)
    assert scans == {"departments": per_table, "jobs": per_table}
    _assert_loaded(empty, bad)


_NOTE_ROLE = """
CREATE TABLE roles_seen (id serial, tbl text, event text, role text, rows bigint);
CREATE FUNCTION note_role() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO roles_seen (tbl, event, role, rows)
    SELECT TG_TABLE_NAME, TG_OP, current_setting('session_replication_role'), count(*)
    FROM changed;
    RETURN NULL;
END $$;
"""


@contextlib.contextmanager
def _role_noted(url: str, *tables: tuple[str, str]) -> Iterator[None]:
    """Statement triggers, ``ENABLE ALWAYS`` (they fire in either role), that note in
    ``roles_seen`` the replication role each (table, INSERT or UPDATE) statement ran with."""
    _query(url, _NOTE_ROLE)
    for table, event in tables:
        trigger = f"note_{event.lower()}"
        _query(
            url,
            f"CREATE TRIGGER {trigger} AFTER {event} ON {table} REFERENCING NEW TABLE AS changed "
            f"FOR EACH STATEMENT EXECUTE FUNCTION note_role(); "
            f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}",
        )
    try:
        yield
    finally:
        for table, event in tables:
            _query(url, f"DROP TRIGGER note_{event.lower()} ON {table}")
        _query(url, "DROP TABLE roles_seen; DROP FUNCTION note_role()")


def test_only_the_copy_runs_as_a_replica_and_the_audit_after_it_does_not(
    tmp_path: Path, empty: str
) -> None:
    """Each chunk's ``COPY`` runs with ``session_replication_role = replica``; the batch row,
    the rejection log and the run's progress, written after it in the same transaction, run
    with ``origin``, their triggers on."""
    noted = [("hired_employees", "INSERT"), ("batches", "INSERT"), ("rejections", "INSERT"),
             ("load_runs", "UPDATE")]  # fmt: skip
    with _role_noted(empty, *noted):
        _, bad = _load(tmp_path, empty, empty)
        seen = _query(empty, "SELECT tbl, event, role, rows FROM roles_seen ORDER BY id")

    stored, rejected = (ROWS - len(bad)) // 2, len(bad) // 2
    writes = [(t, e, r, n) for t, e, r, n in seen if n]  # Django's statements that change nothing
    chunk = [
        ("hired_employees", "INSERT", "replica", stored),
        ("batches", "INSERT", "origin", 1),
        ("rejections", "INSERT", "origin", rejected),
        ("load_runs", "UPDATE", "origin", 1),
    ]
    assert writes[: len(chunk) * 2] == chunk * 2
    assert {role for _, _, role, _ in writes[len(chunk) * 2 :]} == {"origin"}  # run completed
    _assert_loaded(empty, bad)
