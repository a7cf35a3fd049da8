"""The hires summary (``backend/hire_summary.py``) stays exact, whoever writes and however
concurrently: each test compares it with a full scan of ``hired_employees``.

Runs on SQLite and PostgreSQL; the concurrent test uses real processes on the suite's own
database and, on PostgreSQL, reads the server's deadlock counter.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.test import override_settings

from backend import metrics
from backend.hire_summary import QUARTERS
from backend.models import Batch, DepartmentYear, HireCount, HiredEmployee, JobYear, Rejection
from jobs.backups import backup_tables, restore_tables
from jobs.ingest import ingest_rows
from jobs.loading import load_sources
from tests.test_load_races import ROOT, _child_env

Key = tuple[int, int, int, int]
DEPARTMENTS, JOBS = 4, 5


def scanned() -> dict[Key, int]:
    """Hires per (year, department, job, quarter), counted from the rows in Python."""
    counts: dict[Key, int] = {}
    for moment, department, job in HiredEmployee.objects.values_list(
        "datetime", "department_id", "job_id"
    ):
        utc = moment.astimezone(UTC)
        key = (utc.year, department, job, (utc.month + 2) // 3)
        counts[key] = counts.get(key, 0) + 1
    return counts


def summarised() -> dict[Key, int]:
    """The summary's hires per key, summed over its stripes, leaving out keys whose hires all
    went (they may stay at 0)."""
    counts: dict[Key, int] = {}
    rows = HireCount.objects.values_list("year", "department_id", "job_id", *QUARTERS, "hires")
    for year, department, job, *quarters, hires in rows:
        assert hires == sum(quarters), "hires is the quarters' sum"
        for quarter, n in enumerate(quarters, start=1):
            key = (year, department, job, quarter)
            counts[key] = counts.get(key, 0) + n
    return {key: hires for key, hires in counts.items() if hires}


def rollup(model: type[DepartmentYear | JobYear], column: str) -> dict[tuple[int, int], int]:
    """A rollup's hires per (year, department or job), summed over stripes, leaving out 0."""
    sums: dict[tuple[int, int], int] = {}
    for year, parent, hires in model.objects.values_list("year", column, "hires"):
        sums[(year, parent)] = sums.get((year, parent), 0) + hires
    return {key: hires for key, hires in sums.items() if hires}


def assert_exact(context: str = "") -> None:
    expected = scanned()
    assert summarised() == expected, f"the summary drifted from the rows {context}"
    for model, column, position in ((DepartmentYear, "department_id", 1), (JobYear, "job_id", 2)):
        sums: dict[tuple[int, int], int] = {}
        for key, hires in expected.items():
            sums[(key[0], key[position])] = sums.get((key[0], key[position]), 0) + hires
        assert rollup(model, column) == sums, f"{model.__name__} drifted from the rows {context}"
    assert min([0, *summarised().values()]) == 0, "a key below 0"


def _references() -> None:
    ingest_rows(
        table="departments",
        rows=[{"id": i, "department": f"D{i}"} for i in range(1, DEPARTMENTS + 1)],
        source="graphql",
    )
    ingest_rows(
        table="jobs", rows=[{"id": i, "job": f"J{i}"} for i in range(1, JOBS + 1)], source="graphql"
    )


def _moment(rng: random.Random) -> str:
    """A time in 2020-2022, in a random zone: quarter and year edges included, so a hire at
    2021-12-31T23:30-01:00 counts in 2022's first quarter, as its UTC time says."""
    edges = [datetime(2021, 1, 1, tzinfo=UTC), datetime(2021, 4, 1, tzinfo=UTC),
             datetime(2022, 1, 1, tzinfo=UTC)]  # fmt: skip
    if rng.random() < 0.3:
        moment = rng.choice(edges) + timedelta(minutes=rng.choice([-30, -1, 0, 1, 30]))
    else:
        moment = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(1_500_000))
    offset = rng.choice(["Z", "+01:00", "-01:00", "+05:30"])
    if offset == "Z":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    sign, hours, minutes = offset[0], int(offset[1:3]), int(offset[4:6])
    shift = timedelta(hours=hours, minutes=minutes) * (1 if sign == "+" else -1)
    return (moment + shift).strftime("%Y-%m-%dT%H:%M:%S") + offset


def _hire(rng: random.Random, row_id: int, *, department: int | None = None) -> dict[str, Any]:
    return {
        "id": row_id,
        "name": f"Hire {row_id}",
        "datetime": _moment(rng),
        "department_id": department or rng.randint(1, DEPARTMENTS),
        "job_id": rng.randint(1, JOBS),
    }


@pytest.mark.django_db(transaction=True)
def test_every_door_keeps_the_summary_exact(tmp_path: Path) -> None:
    """Random batches (some rows bad, some ids repeated), atomic aborts, a file load, a replay,
    a restore, and updates and deletes outside the pipeline (as the admin makes them)."""
    rng = random.Random(14)
    _references()
    next_id = 1
    backups = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "backups")},
    }
    with override_settings(STORAGES={**settings.STORAGES, "backups": backups}):
        for round_ in range(6):
            rows = [_hire(rng, next_id + i) for i in range(rng.randint(1, 300))]
            next_id += len(rows)
            rows += [dict(rng.choice(rows), name="")]  # a bad row
            rows += [dict(rng.choice(rows))]  # an id the batch repeats
            ingest_rows(table="hired_employees", rows=rows, source="graphql")
            assert_exact(f"after batch {round_}")

            aborted = [_hire(rng, next_id + i) for i in range(50)] + [{"id": -1}]
            outcome = ingest_rows(
                table="hired_employees", rows=aborted, source="graphql", atomic=True
            )
            assert outcome.inserted == 0
            assert_exact(f"after an atomic abort {round_}")

        csv = tmp_path / "hired_employees.csv"
        lines = [_hire(rng, next_id + i) for i in range(2500)]
        next_id += len(lines)
        csv.write_text(
            "".join(
                f"{r['id']},{r['name']},{r['datetime']},{r['department_id']},{r['job_id']}\n"
                for r in lines
            )
        )
        load_sources([str(csv)])
        assert_exact("after a file load")

        # Parked rows wait for department 9; its arrival replays them.
        parked = [_hire(rng, next_id + i, department=9) for i in range(40)]
        next_id += len(parked)
        ingest_rows(table="hired_employees", rows=parked, source="rest")
        assert Rejection.objects.filter(parked=True, status="open").count() == 40
        assert_exact("after parking")
        ingest_rows(table="departments", rows=[{"id": 9, "department": "D9"}], source="graphql")
        assert HiredEmployee.objects.filter(department_id=9).count() == 40
        assert_exact("after the replay")

        (backup,) = backup_tables(tables=["hired_employees"])
        before_restore = scanned()
        HiredEmployee.objects.filter(id__lte=200).delete()
        ingest_rows(
            table="hired_employees",
            rows=[_hire(rng, next_id + i) for i in range(100)],
            source="graphql",
        )
        assert_exact("after deletes and more hires")
        restore_tables(tables=["hired_employees"], backups={"hired_employees": backup.key})
        assert_exact("after a restore")
        assert summarised() == before_restore

        # Writes outside the pipeline: a move to another department and quarter, a rename
        # (no key changes), a delete, a raw insert.
        HiredEmployee.objects.filter(id__lte=50).update(
            department_id=2, datetime=datetime(2019, 8, 1, tzinfo=UTC)
        )
        HiredEmployee.objects.filter(id__range=(51, 80)).update(name="Renamed")
        HiredEmployee.objects.filter(job_id=3).delete()
        HiredEmployee.objects.create(
            id=next_id, name="By hand", datetime=datetime(2031, 12, 31, 23, tzinfo=UTC),
            department_id=1, job_id=1,
        )  # fmt: skip
        assert_exact("after updates and deletes outside the pipeline")
        assert summarised()[(2031, 1, 1, 4)] == 1


@pytest.mark.django_db
def test_the_metrics_and_totals_read_the_summary(gql: Any) -> None:
    """Proof that the metrics and the unfiltered, department or job totals come from the
    summary: a summary row changed by hand shows in them, while a name filter still counts
    the rows themselves."""
    _references()
    rng = random.Random(3)
    ingest_rows(
        table="hired_employees", rows=[_hire(rng, i) for i in range(1, 201)], source="graphql"
    )
    assert_exact()
    counted = scanned()
    key = min(k for k in counted if k[:2] == (2021, 2))  # a key department 2 has in 2021
    _, _, job, quarter = key
    HireCount.objects.filter(year=2021, department_id=2, job_id=job).update(**{f"q{quarter}": 1000})
    quarterly = metrics.hires_by_quarter(year=2021)
    (changed,) = [row for row in quarterly if (row.department, row.job) == ("D2", f"J{job}")]
    assert getattr(changed, f"q{quarter}") == 1000

    query = "query($f: HiredEmployeeFilter) { hiredEmployees(first: 1, filter: $f) { totalCount } }"

    def count(filter: dict[str, Any] | None) -> int:
        return int(gql(query, {"f": filter}).data["hiredEmployees"]["totalCount"])

    def rows(**lookups: int) -> int:
        return HiredEmployee.objects.filter(**lookups).count()

    both = {"department_id": 2, "job_id": job}
    assert count({"departmentId": 2, "jobId": job}) == rows(**both) - counted[key] + 1000

    # Each rollup is its own rows: one changed by hand shows where that rollup answers.
    department_2021 = DepartmentYear.objects.get(year=2021, department_id=2).hires
    DepartmentYear.objects.filter(year=2021, department_id=2).update(hires=1000)
    departments, _ = metrics.hires_per_department(year=2021)
    assert departments[1].hired == 1000
    assert count(None) == 200 - department_2021 + 1000
    assert count({"departmentId": 2}) == rows(department_id=2) - department_2021 + 1000
    nested = gql("{ departments { nodes { id hiredEmployees(first: 0) { totalCount } } } }")
    per_department = {
        int(node["id"]): node["hiredEmployees"]["totalCount"]
        for node in nested.data["departments"]["nodes"]
    }
    assert per_department[2] == rows(department_id=2) - department_2021 + 1000
    assert per_department[1] == rows(department_id=1)

    job_2021 = JobYear.objects.get(year=2021, job_id=job).hires
    JobYear.objects.filter(year=2021, job_id=job).update(hires=1000)
    assert count({"jobId": job}) == rows(job_id=job) - job_2021 + 1000
    assert count({"name": {"startsWith": "Hire"}}) == 200  # rows, not the summary
    assert count({"id": {"lte": 10}}) == 10

    call_command("rebuild_summaries", verbosity=0)
    assert_exact("after rebuild_summaries")
    assert count(None) == 200


@pytest.mark.django_db(transaction=True)
def test_rebuild_summaries_command_prints_what_it_counted(tmp_path: Path) -> None:
    _references()
    rng = random.Random(5)
    ingest_rows(
        table="hired_employees", rows=[_hire(rng, i) for i in range(1, 101)], source="graphql"
    )
    for model in (HireCount, DepartmentYear, JobYear):
        model.objects.all().delete()
    assert summarised() == {} and rollup(DepartmentYear, "department_id") == {}
    result = subprocess.run(
        [sys.executable, "manage.py", "rebuild_summaries"],
        cwd=ROOT, env=_child_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    header, _, row = result.stdout.strip().splitlines()
    assert header.split() == ["summary", "hires", "seconds"]
    assert row.split()[:2] == ["hire_counts", "100"]
    assert_exact("after the command")


@pytest.mark.django_db
def test_the_triggers_fire_without_the_foreign_keys_triggers() -> None:
    """The loader may skip the foreign keys' per-row triggers (PostgreSQL's replica mode): the
    summary's triggers are ENABLE ALWAYS and still count. SQLite has no such mode: its row
    triggers count a raw INSERT."""
    _references()
    rng = random.Random(9)
    rows = [_hire(rng, i) for i in range(1, 1501)]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
            ingest_rows(table="hired_employees", rows=rows, source="csv")
            cursor.execute(
                "SELECT tgname, tgenabled FROM pg_trigger WHERE tgname LIKE 'hire_counts_on_%%'"
            )
            assert dict(cursor.fetchall()) == {
                f"hire_counts_on_{event}": "A"
                for event in ("insert", "update", "delete", "truncate")
            }
        else:
            cursor.execute(
                "INSERT INTO hired_employees (id, name, datetime, department_id, job_id) "
                "VALUES (1, 'Raw', '2021-05-06 07:08:09', 1, 1)"
            )
    assert HiredEmployee.objects.count() == (1500 if connection.vendor == "postgresql" else 1)
    assert_exact()


_INSERT = (
    "INSERT INTO hired_employees (id, name, datetime, department_id, job_id) "
    "VALUES (%s, 'Striped', '2021-05-06T07:08:09Z', 1, 1)"
)


def _stripes(key: Key) -> dict[int, int]:
    rows = HireCount.objects.filter(year=key[0], department_id=key[1], job_id=key[2])
    return dict(rows.values_list("stripe", f"q{key[3]}"))


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_take_stripes_and_never_wait_for_each_other() -> None:
    """On PostgreSQL, transactions open at once that write the same summary key each take a
    stripe of their own: none waits for another's rows (a 2-second lock timeout would fail
    it), a fifth waits for a stripe, readers sum the stripes (one of them below 0), and the
    rebuild folds them into stripe 0. SQLite has one writer at a time: stripe 0."""
    _references()
    key = (2021, 1, 1, 2)
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_INSERT, [1])
        assert _stripes(key) == {0: 1}
        assert_exact()
        return
    import psycopg2
    import psycopg2.errors

    params = {k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"}
    writers = [psycopg2.connect(**params) for _ in range(5)]
    try:
        with writers[0], writers[0].cursor() as cursor:
            cursor.execute(_INSERT, [1])  # committed, in stripe 0
        for n, writer in enumerate(writers[:4]):  # four open transactions: stripes 0 to 3
            with writer.cursor() as cursor:
                cursor.execute("SET lock_timeout = '2s'")
                if n == 1:
                    cursor.execute("DELETE FROM hired_employees WHERE id = 1")  # stripe 1: -1
                else:
                    cursor.execute(_INSERT, [10 + n])
        with writers[4].cursor() as cursor:
            cursor.execute("SET lock_timeout = '500ms'")
            with pytest.raises(psycopg2.errors.LockNotAvailable):
                cursor.execute(_INSERT, [20])  # every stripe is taken: it waits for one
        writers[4].rollback()
        for writer in writers[:4]:
            writer.commit()
        assert _stripes(key) == {0: 2, 1: -1, 2: 1, 3: 1}
        assert summarised()[key] == 3 == HiredEmployee.objects.count()
        assert_exact("with four stripes")
        quarterly = metrics.hires_by_quarter(year=2021)
        assert [(row.department, row.job, row.q2) for row in quarterly] == [("D1", "J1", 3)]
    finally:
        for writer in writers:
            writer.close()
    call_command("rebuild_summaries", verbosity=0)
    assert _stripes(key) == {0: 3}
    assert_exact("after the rebuild")


_WRITER = textwrap.dedent(
    """
    import random, sys, django
    django.setup()
    from jobs.ingest import ingest_rows
    from tests.test_hire_summary import _hire
    seed, first_id, batches = map(int, sys.argv[1:4])
    rng = random.Random(seed)
    for b in range(batches):
        rows = [_hire(rng, first_id + b * 1000 + i) for i in range(rng.randint(200, 1000))]
        ingest_rows(table="hired_employees", rows=rows, source="graphql",
                    atomic=rng.random() < 0.2)
    """
)


def _deadlocks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_and_restores_keep_it_exact_without_deadlocks(tmp_path: Path) -> None:
    """Three processes write overlapping keys in batches of up to 1000 (some atomic) while a
    fourth restores hired_employees twice: the summary equals the scan, nobody failed, and
    PostgreSQL counted no deadlock."""
    _references()
    rng = random.Random(1)
    ingest_rows(
        table="hired_employees", rows=[_hire(rng, i) for i in range(1, 3001)], source="graphql"
    )
    env = _child_env(BACKUP_DIR=str(tmp_path / "backups"), PYTHONPATH=str(ROOT))

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip

    made = run("manage.py", "backup", "hired_employees")
    assert made.returncode == 0, made.stderr
    deadlocks = _deadlocks() if connection.vendor == "postgresql" else 0

    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(seed), str(100_000 * (seed + 1)), "8"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(3)
    ]
    for _ in range(2):  # one after the other, while the writers write
        restored = run("manage.py", "restore", "hired_employees")
        assert restored.returncode == 0, restored.stderr[-3000:]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err[-3000:]

    written = Batch.objects.filter(source="graphql", table="hired_employees")
    assert written.count() == 1 + 3 * 8  # the first batch, then every writer's batches
    assert_exact("after concurrent writers and restores")
    if connection.vendor == "postgresql":
        assert _deadlocks() == deadlocks
