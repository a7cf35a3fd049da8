"""Loads under races and faults, in real processes: one source loads once, however often and
however concurrently it is started, and a run that fails says so and resumes.

The children use the suite's own test database (SQLite file or PostgreSQL), so these run on
both; the tests that kill a connection mid-load, or restore departments while chunks are
copied in, need a server and always use PostgreSQL.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3
import psycopg2
import pytest
from django.conf import settings
from django.db import connection

from backend import dictionary
from backend.models import Batch, Department, HiredEmployee, Job, LoadRun, Rejection
from jobs.loading import load_source
from jobs.sources import SourceFile, resolve
from tests.pg_cluster import PgCluster
from tests.test_load_csv import _generated_file

ROOT = Path(settings.BASE_DIR)
TEST_SECRET_KEY = secrets.token_urlsafe(50)
MAIN_SERVER = "postgres://postgres@127.0.0.1:5432"


def _suite_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _child_env(database_url: str | None = None, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url or _suite_database_url(),
        "DEBUG": "1",
        "LOG_LEVEL": "INFO",
        **extra,
    }


class _Child:
    """A child process whose output goes to files: a pipe nobody reads while we wait would
    fill up with the child's log lines and stall it mid-transaction."""

    def __init__(self, command: list[str], env: dict[str, str], folder: Path) -> None:
        name = uuid.uuid4().hex[:8]
        self.out, self.err = folder / f"{name}.out", folder / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)

    def poll(self) -> int | None:
        return self.process.poll()

    def kill(self) -> None:
        self.process.kill()

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        """Wait for the child: its exit code, stdout and stderr."""
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            self.process.kill()
        return code, self.out.read_text(), self.err.read_text()


def _seed_references() -> None:
    for i in (1, 2, 3):
        Department.objects.create(id=i, department=f"D{i}")
        Job.objects.create(id=i, job=f"J{i}")


def _hires_file(folder: Path, rows: int) -> tuple[Path, set[int]]:
    """Departments and jobs 1..3 stored, and a hired_employees file of ``rows`` rows whose
    every 50th line is bad: the file and its bad lines."""
    _seed_references()
    path = folder / "hired_employees.csv"
    return path, _generated_file(path, rows)


def _wait_for(condition: Any, what: str, child: _Child | None = None, seconds: float = 60) -> None:
    """Poll ``condition``; on a timeout, kill ``child`` and show what it said."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        if child is not None and child.poll() is not None:
            break
        time.sleep(0.02)
    said = ""
    if child is not None:
        child.kill()
        said = child.finish()[2][-3000:]
    raise AssertionError(f"timed out waiting for {what}\n{said}")


def _assert_one_clean_run(uri_part: str, rows: int, bad: set[int]) -> None:
    """The tables, the rejection log and load_runs equal those of one clean run."""
    assert HiredEmployee.objects.count() == rows - len(bad)
    assert Rejection.objects.count() == len(bad), "a bad row was logged more than once"
    assert set(Rejection.objects.values_list("position", flat=True)) == bad
    assert not Rejection.objects.exclude(reasons__0__code="invalid_datetime").exists()
    (run,) = LoadRun.objects.filter(uri__contains=uri_part)
    assert (run.status, run.read, run.inserted, run.rejected, run.last_line) == (
        "completed",
        rows,
        rows - len(bad),
        len(bad),
        rows,
    )


@pytest.mark.django_db(transaction=True)
def test_two_load_csv_processes_on_one_file_load_it_once(tmp_path: Path) -> None:
    rows = 30_000
    path, bad = _hires_file(tmp_path, rows)
    command = [sys.executable, "manage.py", "load_csv", str(path), "--chunk-size", "1000"]

    def start() -> _Child:
        return _Child(command, _child_env(), tmp_path)

    first = start()
    _wait_for(
        lambda: LoadRun.objects.filter(last_line__gt=0).exists(),
        "the first load's first chunk",
        first,
    )
    second = start()  # the first is mid-run: the second must wait for it, not load beside it
    outputs = [child.finish() for child in (first, second)]

    assert [code for code, _, _ in outputs] == [0, 0], outputs
    assert "(unchanged)" not in outputs[0][1]
    assert "(unchanged)" in outputs[1][1], "the second load should find the first one's run"
    assert "waiting for another process" in outputs[1][2]
    _assert_one_clean_run(path.name, rows, bad)


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_s3_event_loads_the_object_once(tmp_path: Path, bucket: str) -> None:
    rows = 30_000
    path, bad = _hires_file(tmp_path, rows)
    boto3.client("s3").upload_file(str(path), bucket, "landing/hired_employees.csv")
    event = {"Records": [{"s3": {"bucket": {"name": bucket},
                                 "object": {"key": "landing/hired_employees.csv"}}}]}  # fmt: skip
    invoke = "import json, sys; from lambdas.load_csv import handler; "
    invoke += "print(json.dumps(handler(json.loads(sys.argv[1]))))"

    def deliver() -> _Child:
        return _Child([sys.executable, "-c", invoke, json.dumps(event)], _child_env(), tmp_path)

    first = deliver()
    _wait_for(
        lambda: LoadRun.objects.filter(last_line__gt=0).exists(),
        "the first delivery's chunk",
        first,
    )
    second = deliver()
    outputs = [child.finish() for child in (first, second)]

    assert [code for code, _, _ in outputs] == [0, 0], outputs
    answers = [json.loads(out.strip().splitlines()[-1]) for _, out, _ in outputs]
    assert [answer["runs"][0]["unchanged"] for answer in answers] == [False, True]
    assert answers[0]["runs"][0]["inserted"] == rows - len(bad)
    _assert_one_clean_run("hired_employees.csv", rows, bad)


@pytest.mark.django_db(transaction=True)
def test_a_distributed_map_chunk_retried_concurrently_is_stored_once(tmp_path: Path) -> None:
    _seed_references()
    rows, bad = 5000, set(range(7, 5000, 97))
    items = [
        {"index": i - 1, "row": {"id": str(i), "name": f"Name {i}",
                                 "datetime": "nope" if i in bad else "2021-03-01T10:00:00Z",
                                 "department_id": "1", "job_id": "2"}}
        for i in range(1, rows + 1)
    ]  # fmt: skip
    event = {"BatchInput": {"bucket": "landing", "key": "hired_employees.csv", "etag": '"e1"'},
             "Items": items}  # fmt: skip
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))
    invoke = "import json, sys; from lambdas.load_chunk import handler; "
    invoke += "print(json.dumps(handler(json.load(open(sys.argv[1])))))"
    command = [sys.executable, "-c", invoke, str(event_file)]
    for _ in range(3):  # the same retried batch, three times at once, more than once
        children = [_Child(command, _child_env(), tmp_path) for _ in range(3)]
        outputs = [child.finish() for child in children]
        assert [code for code, _, _ in outputs] == [0, 0, 0], outputs

    assert HiredEmployee.objects.count() == rows - len(bad)
    assert Rejection.objects.count() == len(bad)
    assert set(Rejection.objects.values_list("position", flat=True)) == bad
    (run,) = LoadRun.objects.all()
    assert (run.status, run.read, run.inserted, run.rejected) == (
        "completed", rows, rows - len(bad), len(bad),
    )  # fmt: skip
    assert Batch.objects.count() == 1


# --- restores of the referenced tables during a load ------------------------------------------

_RACE_CHUNK, _RACE_CHUNKS = 1100, 40
"""A load of 40 chunks of 1,100 lines: each chunk past writers.COPY_THRESHOLD (the COPY
path), and chunk k (from 0) the only one to name department 10 + k."""

_RESTORER = """
import json, os, sys, time
import django

django.setup()
from django.db.models import Max
from backend.models import LoadRun
from jobs.backups import restore_tables

keys, stop, chunk, chunks = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])


def restore(which):
    started, error = time.time(), ""
    departments = keys["without"].get(which, keys["full"]["departments"])
    try:
        restore_tables(tables=["departments", "jobs"],
                       backups={"departments": departments, "jobs": keys["full"]["jobs"]})
    except Exception as failure:
        error = f"{type(failure).__name__}: {failure}"
    print(json.dumps({"backup": which, "error": error, "started": started,
                      "ended": time.time()}), flush=True)


while not os.path.exists(stop):
    committed = LoadRun.objects.aggregate(line=Max("last_line"))["line"] or 0
    if committed // chunk < chunks:
        restore(str(10 + committed // chunk))
    restore("full")
"""
"""Until the ``stop`` file exists: restore departments without the one that the chunk being
loaded names, then every department; jobs 1..3 each time (deleted and inserted again). One
JSON line per restore."""


def _hires_naming_a_department_per_chunk(path: Path) -> set[int]:
    """Every other line of chunk k names department 10 + k, the others department 1; jobs are
    1..3; every 50th line is bad (its datetime). Returns the bad lines."""
    bad = set()
    with path.open("w", encoding="utf-8") as out:
        for i in range(1, _RACE_CHUNK * _RACE_CHUNKS + 1):
            if i % 50 == 0:
                bad.add(i)
                out.write(f"{i},Name {i},not-a-date,1,1\n")
                continue
            department = 10 + (i - 1) // _RACE_CHUNK if i % 2 else 1
            out.write(f"{i},Name {i},2021-03-0{1 + i % 9}T10:00:00Z,{department},{1 + i % 3}\n")
    return bad


_RACE_SETUP = """
import json, sys
import django

django.setup()
from backend.models import Department, Job
from jobs.backups import backup_tables

chunks = int(sys.argv[1])
Job.objects.bulk_create([Job(id=i, job=f"J{i}") for i in (1, 2, 3)])
department_ids = [1, *range(10, 10 + chunks)]
Department.objects.bulk_create([Department(id=i, department=f"D{i}") for i in department_ids])
keys = {"full": {file.table: file.key for file in backup_tables()}, "without": {}}
for department in department_ids[1:]:
    Department.objects.filter(id=department).delete()
    (file,) = backup_tables(tables=["departments"])
    keys["without"][str(department)] = file.key
    Department.objects.create(id=department, department=f"D{department}")
print(json.dumps(keys))
"""
"""Departments 1 and 10..(9 + chunks) and jobs 1..3 stored; their backup (``full``), and for
each department d from 10 a backup of departments without d (``without``): their keys."""


def test_restores_of_departments_and_jobs_during_a_load_never_orphan_or_lose_a_hire(
    tmp_path: Path,
) -> None:
    """One process loads 44,000 hires in chunks of 1,100 (the ``COPY`` path, with the foreign
    keys' per-row triggers skipped), while another restores departments and jobs over and
    over: in turn without the department the chunk being loaded names, and whole.

    A restore that lands while a chunk names the department it removes either waits for the
    chunk (step 2 locked the department) and then fails, as it would orphan the chunk's hires;
    or removes it first, and the chunk parks those rows until the next whole restore replays
    them. At the end no hire points nowhere, and every valid line is stored, once, and logged
    at most once (parked, then resolved); the bad lines are logged once each.

    PostgreSQL only, on a database of its own: SQLite runs one writer at a time, so there the
    restores would only ever come between two chunks.
    """
    folder, path, stop = tmp_path / "backups", tmp_path / "hired_employees.csv", tmp_path / "stop"
    bad = _hires_naming_a_department_per_chunk(path)
    with _postgres_database() as url:
        env = _child_env(url, BACKUP_DIR=str(folder), LOG_LEVEL="WARNING")
        setup = [sys.executable, "-c", _RACE_SETUP, str(_RACE_CHUNKS)]
        made = subprocess.run(setup, cwd=ROOT, env=env, capture_output=True, text=True)
        assert made.returncode == 0, made.stderr[-3000:]
        keys = json.loads(made.stdout.strip().splitlines()[-1])
        arguments = [json.dumps(keys), str(stop), str(_RACE_CHUNK), str(_RACE_CHUNKS)]
        restorer = _Child([sys.executable, "-c", _RESTORER, *arguments], env, tmp_path)
        try:
            _wait_for(lambda: restorer.out.read_text(), "the first restore", restorer)
            command = [sys.executable, "manage.py", "load_csv", str(path)]
            loader = _Child([*command, "--chunk-size", str(_RACE_CHUNK)], env, tmp_path)
            load_code, _, load_err = loader.finish(timeout=300)
        finally:
            stop.touch()
            restore_code, restore_out, restore_err = restorer.finish(timeout=120)

        assert load_code == 0, load_err[-3000:]
        assert restore_code == 0, restore_err[-3000:]
        restores = [json.loads(line) for line in restore_out.splitlines()]
        failed = [r for r in restores if r["error"]]
        assert all("would orphan" in r["error"] and r["backup"] != "full" for r in failed), failed
        assert (restores[-1]["backup"], restores[-1]["error"]) == ("full", "")
        ((started, finished, *run),) = _query(
            url,
            "SELECT extract(epoch FROM started_at)::float8, "
            "extract(epoch FROM finished_at)::float8, status, read, last_line, inserted, rejected "
            "FROM load_runs",
        )
        during = [r for r in restores if started <= r["started"] and r["ended"] <= finished]
        assert len(during) >= 3, f"only {len(during)} restores ran during the load"

        assert _query(url, "SELECT count(*) FROM departments") == [(1 + _RACE_CHUNKS,)]
        assert _query(url, "SELECT id FROM jobs ORDER BY id") == [(1,), (2,), (3,)]
        for column, parents in (("department_id", "departments"), ("job_id", "jobs")):
            orphans = (
                f"SELECT count(*) FROM hired_employees h "
                f"WHERE NOT EXISTS (SELECT FROM {parents} p WHERE p.id = h.{column})"
            )
            assert _query(url, orphans) == [(0,)]
        rows = _RACE_CHUNK * _RACE_CHUNKS
        valid = set(range(1, rows + 1)) - bad
        assert {i for (i,) in _query(url, "SELECT id FROM hired_employees")} == valid
        logged = "SELECT position, row_id, reasons -> 0 ->> 'code' FROM rejections WHERE status = "
        still_open = _query(url, logged + "'open' ORDER BY position")
        assert still_open == [(line, line, "invalid_datetime") for line in sorted(bad)]
        replayed = _query(url, logged + "'resolved'")  # parked, then stored by a replay
        assert {row_id for _, row_id, _ in replayed} <= valid
        assert {code for _, _, code in replayed} <= {"unknown_reference"}
        assert run == [
            "completed",
            rows,
            rows,
            len(valid) - len(replayed),
            len(bad) + len(replayed),
        ]


# --- a run that fails ------------------------------------------------------------------------


@dataclass(frozen=True)
class _BrokenSource(SourceFile):
    """A real file whose reads fail with EIO after ``fail_after`` bytes, as a dying disk or a
    dropped S3 connection would."""

    path: str = ""
    fail_after: int = 0

    @contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        with Path(self.path).open("rb") as stream:
            yield _FailingStream(stream, self.fail_after)  # type: ignore[misc]


class _FailingStream(io.RawIOBase):
    def __init__(self, stream: IO[bytes], fail_after: int) -> None:
        super().__init__()
        self.stream, self.left = stream, fail_after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            raise OSError(errno.EIO, "Input/output error")
        block = self.stream.read(min(len(buffer), self.left))
        self.left -= len(block)
        buffer[: len(block)] = block
        return len(block)


@pytest.mark.django_db(transaction=True)
def test_a_failed_run_is_recorded_with_its_error_and_the_next_run_resumes(tmp_path: Path) -> None:
    rows = 20_000
    path, bad = _hires_file(tmp_path, rows)
    (real,) = resolve(str(path))
    broken = _BrokenSource(**vars(real), path=str(path), fail_after=path.stat().st_size // 2)
    table = dictionary.table("hired_employees")

    with pytest.raises(OSError, match="Input/output error"):
        load_source(file=broken, table=table, chunk_size=1000)

    (failed,) = LoadRun.objects.all()
    assert failed.status == "failed"
    assert failed.error == "OSError: [Errno 5] Input/output error"
    assert failed.finished_at is not None
    assert 0 < failed.last_line < rows

    summary = load_source(file=real, table=table, chunk_size=1000)

    assert (summary.status, summary.skipped) == ("completed", failed.read)
    (run,) = LoadRun.objects.all()
    assert (run.error, run.finished_at is not None) == ("", True)
    _assert_one_clean_run(path.name, rows, bad)


@contextmanager
def _postgres_database() -> Iterator[str]:
    """A migrated PostgreSQL database of this test's own on the main server, dropped after."""
    name = f"roster_fault_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(f"{MAIN_SERVER}/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    url = f"{MAIN_SERVER}/{name}"
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=_child_env(url),
            check=True, capture_output=True,
        )  # fmt: skip
        yield url
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _production_env(url: str) -> dict[str, str]:
    return _child_env(url, DEBUG="0", SECRET_KEY=TEST_SECRET_KEY, LOG_LEVEL="CRITICAL")


def _load_until_midway(url: str, path: Path, folder: Path) -> tuple[_Child, list[str]]:
    """Departments and jobs 1..3 into the migrated database at ``url``, then a ``load_csv``
    child of ``path`` on it, returned once 5,000 lines are committed, with its command."""
    _query(url, "INSERT INTO departments VALUES (1, 'D1'), (2, 'D2'), (3, 'D3') RETURNING id")
    _query(url, "INSERT INTO jobs VALUES (1, 'J1'), (2, 'J2'), (3, 'J3') RETURNING id")
    command = [sys.executable, "manage.py", "load_csv", str(path), "--chunk-size", "1000"]
    child = _Child(command, _production_env(url), folder)
    _wait_for(
        lambda: _query(url, "SELECT last_line >= 5000 FROM load_runs") == [(True,)],
        "the load's first chunks",
        child,
    )
    return child, command


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(psycopg2.connect(url)) as db:
        db.autocommit = True
        with db.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()


def test_a_load_whose_connection_dies_is_recorded_failed_on_a_fresh_one(tmp_path: Path) -> None:
    """The database kills the loader's connection mid-run (as a restart or failover does): the
    run is marked failed with the error, the command ends with one ``error:`` line, and the
    next run resumes to the clean result. PostgreSQL only: SQLite has no connection to lose."""
    path = tmp_path / "hired_employees.csv"
    rows = 60_000
    bad = _generated_file(path, rows)
    with _postgres_database() as url:
        env = _production_env(url)
        child, command = _load_until_midway(url, path, tmp_path)
        try:
            killed = _query(
                url,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            assert killed and all(ok for (ok,) in killed)
        finally:
            code, _, stderr = child.finish(timeout=60)

        assert code != 0
        ((status, error, finished),) = _query(
            url, "SELECT status, error, finished_at IS NOT NULL FROM load_runs"
        )
        assert (status, finished) == ("failed", True)
        assert "terminat" in error or "closed" in error, error
        assert stderr.strip().splitlines()[-1].startswith("error: "), stderr
        assert "Traceback" not in stderr

        rerun = subprocess.run(command, cwd=ROOT, env=env, text=True, capture_output=True)

        assert rerun.returncode == 0, rerun.stderr
        assert _query(url, "SELECT count(*) FROM hired_employees") == [(rows - len(bad),)]
        assert _query(url, "SELECT count(*) FROM rejections") == [(len(bad),)]
        positions = {p for (p,) in _query(url, "SELECT position FROM rejections")}
        assert positions == bad
        assert _query(url, "SELECT status, read, error FROM load_runs") == [("completed", rows, "")]


@pytest.mark.parametrize("fault", ["restart", "crash"])
def test_a_load_through_a_database_restart_or_crash_resumes_to_the_clean_result(
    tmp_path: Path, pg_cluster: PgCluster, fault: str
) -> None:
    """The tests' own cluster stops (a fast shutdown) or its postmaster is killed with
    ``kill -9`` mid-load. The command ends with one ``error:`` line; the committed chunks stay;
    after the server is back, the next run resumes and the result is exactly one clean load."""
    path = tmp_path / "hired_employees.csv"
    rows = 60_000
    bad = _generated_file(path, rows)
    url = pg_cluster.create_database(f"roster_{fault}_{uuid.uuid4().hex[:8]}")
    env = _production_env(url)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    child, command = _load_until_midway(url, path, tmp_path)
    try:
        pg_cluster.stop() if fault == "restart" else pg_cluster.kill()
    finally:
        code, _, stderr = child.finish(timeout=60)
    pg_cluster.start()

    assert code == 1
    assert stderr.strip().splitlines()[-1].startswith("error: the database"), stderr
    assert "Traceback" not in stderr
    ((status, last_line),) = _query(url, "SELECT status, last_line FROM load_runs")
    assert status in {"running", "failed"}  # "failed" when it could still record it
    stored = _query(url, "SELECT count(*) FROM hired_employees")[0][0]
    assert stored == last_line - last_line // 50, "committed chunks must survive the fault"

    rerun = subprocess.run(command, cwd=ROOT, env=env, text=True, capture_output=True)

    assert rerun.returncode == 0, rerun.stderr
    assert _query(url, "SELECT count(*) FROM hired_employees") == [(rows - len(bad),)]
    assert {p for (p,) in _query(url, "SELECT position FROM rejections")} == bad
    assert _query(url, "SELECT count(*) FROM rejections") == [(len(bad),)]
    assert _query(url, "SELECT status, read, inserted, error FROM load_runs") == [
        ("completed", rows, rows - len(bad), "")
    ]
