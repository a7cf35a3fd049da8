"""The paths that guard data, on the real database and through the public entry points.

A page the database refuses for a reason the rules did not predict (here a rule added in SQL
by the test) loses only its bad rows, each logged with the database's message. A batch that
fails on an unexpected database error is rolled back whole and leaves a FAILED ``Batch``, or,
inside a caller's transaction, only a log line: the caller records the failure its own way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core.management import ManagementUtility, call_command
from django.db import DatabaseError, connection, transaction

from backend.dictionary import MAX_BATCH_ROWS
from backend.models import Batch, Department, HiredEmployee, Job, LoadRun, Rejection, Source
from jobs.ingest import check_rows, ingest_rows, store_rows
from tests.conftest import employee

pytestmark = pytest.mark.django_db

FORBIDDEN = "Forbidden Name"
"""A name the dictionary accepts and the test's SQL rule refuses."""


@pytest.fixture
def seeded() -> None:
    """Departments 1, 2 and jobs 1, 2 for employees to reference."""
    Department.objects.bulk_create(
        [Department(id=1, department="Sales"), Department(id=2, department="Research")]
    )
    Job.objects.bulk_create([Job(id=1, job="Clerk"), Job(id=2, job="Engineer")])


def stored_ids() -> list[int]:
    return list(HiredEmployee.objects.order_by("id").values_list("id", flat=True))


def logged(batch: Batch) -> list[tuple[int, int | None, list[dict[str, Any]]]]:
    """The batch's rejection log entries: (position, row id, reasons), by position."""
    rows = Rejection.objects.filter(batch=batch).order_by("position")
    return [(r.position, r.row_id, r.reasons) for r in rows]


def _execute(*statements: str) -> None:
    """Run DDL. PostgreSQL alters no table while foreign-key checks are pending in the
    transaction (the test's own): those checks run first, then are deferred again, as Django
    declares them."""
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        statements = ("SET CONSTRAINTS ALL IMMEDIATE", *statements, "SET CONSTRAINTS ALL DEFERRED")
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


@contextmanager
def forbidden_name() -> Iterator[str]:
    """While open, the database refuses employees named ``FORBIDDEN`` (a CHECK constraint on
    PostgreSQL, a trigger on SQLite, which sqlite3 reports as an IntegrityError); yields the
    first line of the database's message, as the rejection log keeps it."""
    if connection.vendor == "postgresql":
        _execute(
            "ALTER TABLE hired_employees ADD CONSTRAINT guard_forbidden_name "
            f"CHECK (name <> '{FORBIDDEN}')"
        )
        message = (
            'new row for relation "hired_employees" violates check constraint '
            '"guard_forbidden_name"'
        )
        drop = ["ALTER TABLE hired_employees DROP CONSTRAINT IF EXISTS guard_forbidden_name"]
    else:
        _execute(
            "CREATE TRIGGER guard_forbidden_name BEFORE INSERT ON hired_employees BEGIN "
            f"SELECT RAISE(ABORT, 'forbidden name') WHERE NEW.name = '{FORBIDDEN}'; END"
        )
        message = "forbidden name"
        drop = ["DROP TRIGGER IF EXISTS guard_forbidden_name"]
    try:
        yield message
    finally:
        _execute(*drop)


@contextmanager
def failing_inserts(table: str) -> Iterator[None]:
    """While open, every INSERT into ``table`` fails with 'forced failure': a fault the
    pipeline cannot expect (on PostgreSQL an InternalError, on SQLite an IntegrityError)."""
    if connection.vendor == "postgresql":
        _execute(
            "CREATE FUNCTION guard_forced_failure() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'forced failure'; END $$",
            f"CREATE TRIGGER guard_forced_failure BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION guard_forced_failure()",
        )
        drops = (
            f"DROP TRIGGER IF EXISTS guard_forced_failure ON {table}",
            "DROP FUNCTION IF EXISTS guard_forced_failure()",
        )
    else:
        _execute(
            f"CREATE TRIGGER guard_forced_failure BEFORE INSERT ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'forced failure'); END"
        )
        drops = ("DROP TRIGGER IF EXISTS guard_forced_failure",)
    try:
        yield
    finally:
        _execute(*drops)


def batch_of(size: int, bad: set[int]) -> list[dict[str, Any]]:
    """``size`` valid rows, those at the positions ``bad`` named ``FORBIDDEN``. Ids run
    backwards (position 0 has the highest), so the writers' id order is not the batch's."""
    return [
        employee(size - position, **({"name": FORBIDDEN} if position in bad else {}))
        for position in range(size)
    ]


def refused(size: int, bad: set[int], message: str) -> list[tuple[int, int, list[dict]]]:
    """The log entries the rows at ``bad`` must leave: one each, the database's message."""
    reason = {"field": None, "code": "integrity_error", "message": message}
    return [(position, size - position, [reason]) for position in sorted(bad)]


# --- a refusal the rules did not predict: only the bad rows are lost -----------------------


@pytest.mark.parametrize(
    ("size", "bad"),
    [
        pytest.param(1, {0}, id="one-bad-row"),
        pytest.param(2, {0}, id="bad-first-of-two"),
        pytest.param(2, {1}, id="bad-last-of-two"),
        pytest.param(10, {0, 4, 5, 9}, id="ends-and-adjacent"),
        pytest.param(10, set(range(10)), id="all-bad"),
        pytest.param(MAX_BATCH_ROWS, {0, 1, 2, 499, 500, 997, 998, 999}, id="api-size"),
    ],
)
def test_rows_the_database_refuses_are_isolated_and_logged(
    seeded: None, size: int, bad: set[int]
) -> None:
    with forbidden_name() as message:
        result = ingest_rows(
            table="hired_employees", rows=batch_of(size, bad), source=Source.GRAPHQL
        )
    good = sorted(size - position for position in range(size) if position not in bad)
    assert stored_ids() == good
    assert not HiredEmployee.objects.filter(name=FORBIDDEN).exists()
    assert (result.received, result.inserted, result.rejected, result.status) == (
        size,
        size - len(bad),
        len(bad),
        "completed",
    )
    assert [r.position for r in result.rejections] == sorted(bad)
    batch = Batch.objects.get()
    assert (batch.source, batch.received, batch.inserted, batch.rejected, batch.status) == (
        "graphql",
        size,
        size - len(bad),
        len(bad),
        "completed",
    )
    assert logged(batch) == refused(size, bad, message)


def test_a_file_chunk_the_database_refuses_falls_back_and_isolates_its_bad_rows(
    seeded: None,
) -> None:
    """A chunk of more than 1000 rows, as the loaders store it: on PostgreSQL its straight
    ``COPY`` fails, and the staged large page is split until the bad rows stand alone. Two of
    its ids are stored already, so the fallback must also skip existing ids."""
    size, bad = 2500, {0, 1, 1249, 1250, 2498, 2499}
    existing = {1000, 1800}
    ingest_rows(table="hired_employees", rows=[employee(i) for i in existing], source=Source.REST)
    rows = batch_of(size, bad)
    with forbidden_name() as message:
        checked = check_rows(table="hired_employees", rows=rows, copy_lines=True)
        result = store_rows(
            checked,
            source=Source.CSV,
            positions=range(1, size + 1),
            originals=[f"line {position}" for position in range(size)],
            uri="file:///hired_employees.csv",
        )
    bad_ids = {size - position for position in bad}
    assert stored_ids() == [i for i in range(1, size + 1) if i not in bad_ids]
    assert (result.received, result.inserted, result.rejected) == (size, size - 8, 8)
    batch = Batch.objects.get(source=Source.CSV)
    assert (batch.uri, batch.received, batch.inserted, batch.rejected, batch.status) == (
        "file:///hired_employees.csv",
        size,
        size - 8,
        8,
        "completed",
    )
    entries = Rejection.objects.filter(batch=batch).order_by("position")
    by_code = {}
    for entry in entries:
        assert len(entry.reasons) == 1
        by_code.setdefault(entry.reasons[0]["code"], []).append((entry.position, entry.row_id))
    assert by_code == {
        "integrity_error": [(position + 1, size - position) for position in sorted(bad)],
        "duplicate": [(size - 1800 + 1, 1800), (size - 1000 + 1, 1000)],
    }
    assert {entry.raw for entry in entries if entry.reasons[0]["code"] == "integrity_error"} == {
        f"line {position}" for position in bad
    }
    assert {e.reasons[0]["message"] for e in entries if e.row_id in bad_ids} == {message}


def test_an_atomic_batch_with_a_row_the_database_refuses_stores_nothing(seeded: None) -> None:
    with forbidden_name() as message:
        result = ingest_rows(
            table="hired_employees",
            rows=[employee(1), employee(2, name=FORBIDDEN), employee(3)],
            source=Source.REST,
            atomic=True,
        )
    assert stored_ids() == []
    assert (result.received, result.inserted, result.rejected, result.status) == (
        3,
        0,
        3,
        "rejected",
    )
    batch = Batch.objects.get()
    assert (batch.atomic, batch.inserted, batch.rejected, batch.status) == (True, 0, 3, "rejected")
    aborted = {
        "field": None,
        "code": "batch_aborted",
        "message": "not inserted: the atomic batch has invalid rows",
    }
    assert logged(batch) == [
        (0, 1, [aborted]),
        (1, 2, [{"field": None, "code": "integrity_error", "message": message}]),
        (2, 3, [aborted]),
    ]
    assert not Rejection.objects.filter(parked=True).exists()


def test_the_refused_row_goes_in_once_the_database_accepts_it(seeded: None) -> None:
    """The log entry of a refused row is resolved by the batch that finally stores it."""
    rows = [employee(1), employee(2, name=FORBIDDEN)]
    with forbidden_name():
        first = ingest_rows(table="hired_employees", rows=rows, source=Source.REST)
    again = ingest_rows(table="hired_employees", rows=rows, source=Source.REST)
    assert (first.inserted, again.inserted, again.rejected) == (1, 1, 1)
    assert stored_ids() == [1, 2]
    entry = Rejection.objects.get(row_id=2)
    assert (entry.status, entry.resolved_by_id) == ("resolved", again.batch_id)
    assert Rejection.objects.get(row_id=1).reasons[0]["code"] == "duplicate"


# --- an unexpected database error: the batch is rolled back and recorded as FAILED ---------


def _errors(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """The ingest log's ERROR records: (message, the error they carry)."""
    caplog.set_level(logging.ERROR, logger="roster.ingest")
    return [
        (r.getMessage(), getattr(r, "error", ""))
        for r in caplog.records
        if r.name == "roster.ingest" and r.levelno >= logging.ERROR
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("atomic", "source"), [(False, Source.REST), (True, Source.GRAPHQL)], ids=["plain", "atomic"]
)
def test_a_database_error_rolls_the_batch_back_and_leaves_a_failed_batch(
    seeded: None, caplog: pytest.LogCaptureFixture, atomic: bool, source: Source
) -> None:
    rows = [employee(1), employee(2, name=None), employee(3)]  # row 2 must be logged
    with failing_inserts("rejections"), pytest.raises(DatabaseError, match="forced failure"):
        ingest_rows(table="hired_employees", rows=rows, source=source, atomic=atomic, uri="u")
    assert stored_ids() == []
    assert Rejection.objects.count() == 0
    batch = Batch.objects.get()
    assert (batch.status, batch.table, batch.source, batch.uri, batch.atomic) == (
        "failed",
        "hired_employees",
        source.value,
        "u",
        atomic,
    )
    assert (batch.received, batch.inserted, batch.rejected) == (3, 0, 0)
    assert "forced failure" in batch.error
    assert batch.started_at <= batch.finished_at
    ((message, error),) = _errors(caplog)
    assert message == "batch failed"
    assert "forced failure" in error


@pytest.mark.django_db(transaction=True)
def test_when_the_audit_itself_fails_the_error_still_reaches_the_caller(
    seeded: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The ``Batch`` table refuses the batch's audit row, then the FAILED one: the caller
    still gets the first error, and the log says the failure could not be recorded."""
    with failing_inserts("batches"), pytest.raises(DatabaseError, match="forced failure"):
        ingest_rows(table="hired_employees", rows=[employee(1)], source=Source.REST)
    assert (stored_ids(), Batch.objects.count()) == ([], 0)
    assert [message for message, _ in _errors(caplog)] == [
        "batch failed",
        "could not record the failed batch",
    ]


def test_inside_a_callers_transaction_the_failure_is_left_to_the_caller(
    seeded: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The caller's transaction is broken: the pipeline writes no FAILED batch into it (that
    write would fail, and log so), it only logs the failure."""
    with (
        failing_inserts("rejections"),
        pytest.raises(DatabaseError, match="forced failure"),
        transaction.atomic(),
    ):
        ingest_rows(
            table="hired_employees", rows=[employee(1), employee(2, name=None)], source="restore"
        )
    assert (stored_ids(), Batch.objects.count(), Rejection.objects.count()) == ([], 0, 0)
    ((message, error),) = _errors(caplog)
    assert message == "batch failed"
    assert "forced failure" in error


@pytest.mark.django_db(transaction=True)
def test_load_csv_hitting_a_database_error_fails_its_run_and_resumes_once_fixed(
    seeded: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hired_employees.csv"
    path.write_text(
        "1,Ada,2021-07-27T16:02:08Z,1,1\n2,,2021-07-27T16:02:08Z,1,1\n3,Bo,2021-07-27T16:02:08Z,2,2\n",
        encoding="utf-8",
    )
    with failing_inserts("rejections"):
        with pytest.raises(DatabaseError, match="forced failure") as caught:
            call_command("load_csv", str(path), verbosity=0)
        run = LoadRun.objects.get()
        assert (run.status, run.table, run.read, run.inserted, run.last_line) == (
            "failed",
            "hired_employees",
            0,
            0,
            0,
        )
        assert run.error.startswith(f"{type(caught.value).__name__}: forced failure")
        assert run.finished_at is not None
        # From the command line: one ``error:`` line and exit status 1, the run failed again.
        with pytest.raises(SystemExit) as exited:
            ManagementUtility(["manage.py", "load_csv", str(path)]).execute()
        assert exited.value.code == 1
        last_line = capsys.readouterr().err.strip().splitlines()[-1]
        assert last_line.startswith("error: ")
        assert "forced failure" in last_line
        assert list(LoadRun.objects.values_list("id", "status")) == [(run.id, "failed")]
    # Nothing of the failed chunks was kept: not a row, not a log entry, not a batch (the
    # loader's transaction held them, and the run records the failure).
    assert (stored_ids(), Rejection.objects.count(), Batch.objects.count()) == ([], 0, 0)
    call_command("load_csv", str(path), verbosity=0)
    run.refresh_from_db()
    assert (run.status, run.error, run.read, run.inserted, run.rejected) == (
        "completed",
        "",
        3,
        2,
        1,
    )
    assert stored_ids() == [1, 3]
    assert list(Rejection.objects.values_list("position", "row_id")) == [(2, 2)]
