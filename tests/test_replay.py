"""Arrival order never matters: parked rows go in by themselves when what they reference
arrives, once each, and the rejection log says which entries are still open.

Replay runs after a batch commits, so these tests commit: ``transaction=True``. The races run
real processes on the suite's own database (SQLite file or PostgreSQL).
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from backend.auth import create_token
from backend.models import (
    Batch,
    Department,
    HiredEmployee,
    Job,
    LoadRun,
    ParkedReference,
    Rejection,
)
from jobs.ingest import ingest_rows
from jobs.ingest.replay import replay_rejections
from tests.conftest import SAMPLE_DIR, GraphQLCaller, employee
from tests.test_load_races import _Child, _child_env

FILES = ("departments", "jobs", "hired_employees")
INCOMPLETE_HIRES = 70  # the sample's hired_employees rows that break a rule of their own

pytestmark = pytest.mark.django_db(transaction=True)


def _load(*names: str, force: bool = False) -> None:
    for name in names:
        call_command("load_csv", str(SAMPLE_DIR / f"{name}.csv"), *(["--force"] if force else []),
                     verbosity=0)  # fmt: skip


def _assert_as_ordered_load() -> None:
    """The end state of loading the sample files in dependency order, whatever came first."""
    assert Department.objects.count() == 12
    assert Job.objects.count() == 183
    assert HiredEmployee.objects.count() == 1929
    open_entries = Rejection.objects.filter(status="open")
    assert open_entries.filter(table="hired_employees").count() == INCOMPLETE_HIRES
    assert open_entries.count() == INCOMPLETE_HIRES
    codes = {
        r["code"] for reasons in open_entries.values_list("reasons", flat=True) for r in reasons
    }
    assert "unknown_reference" not in codes
    assert ParkedReference.objects.count() == 0
    # every entry is one row: no row logged twice, every resolved one stored by its resolver
    assert Rejection.objects.values("row_key").distinct().count() == Rejection.objects.count()
    resolved = Rejection.objects.filter(status="resolved")
    assert not resolved.filter(resolved_by=None).exists()
    assert set(resolved.values_list("row_id", flat=True)) <= set(
        HiredEmployee.objects.values_list("id", flat=True)
    )


def _camel(row: dict[str, Any]) -> dict[str, Any]:
    """A row as GraphQL takes it: ``departmentId``, not ``department_id``."""
    named = {"department_id": "departmentId", "job_id": "jobId"}
    return {named.get(key, key): value for key, value in row.items()}


def _clear() -> None:
    for model in (ParkedReference, Rejection, Batch, LoadRun, HiredEmployee, Job, Department):
        model.objects.all().delete()


# --- every arrival order -----------------------------------------------------------------------


@pytest.mark.parametrize("order", list(itertools.permutations(FILES)), ids="-".join)
def test_every_arrival_order_ends_as_the_ordered_load(order: tuple[str, ...]) -> None:
    _load(*order)

    _assert_as_ordered_load()
    late = order.index("hired_employees") < max(order.index("departments"), order.index("jobs"))
    resolved = Rejection.objects.filter(status="resolved")
    if late:  # every hire was parked, then replayed once both references were there
        assert resolved.count() == 1929
        assert set(resolved.values_list("resolved_by__source", flat=True)) == {"replay"}
        assert set(resolved.values_list("attempts", flat=True)) == {1}, "replayed too early"
    else:
        assert resolved.count() == 0


def test_a_rerun_after_a_replay_logs_nothing_twice() -> None:
    _load("hired_employees", "departments", "jobs")
    _load("hired_employees", force=True)  # every row again: 1,929 stored already, 70 still bad

    _assert_as_ordered_load()
    assert set(Rejection.objects.values_list("attempts", flat=True)) == {2}
    assert Rejection.objects.count() == 1999


def test_force_after_a_department_added_by_hand_resolves_instead_of_logging_again() -> None:
    """Automatic replay cannot see rows written in SQL; a forced rerun stores the parked rows
    and resolves their entries, and the bad rows keep one entry each."""
    _load("hired_employees")
    with connection.cursor() as cursor:
        for name in ("departments", "jobs"):
            count = {"departments": 12, "jobs": 183}[name]
            column = name.removesuffix("s")
            cursor.executemany(
                f"INSERT INTO {name} (id, {column}) VALUES (%s, %s)",
                [(i, f"{column} {i}") for i in range(1, count + 1)],
            )
    assert Rejection.objects.filter(status="open").count() == 1999  # nobody told Roster

    _load("hired_employees", force=True)

    _assert_as_ordered_load()
    run = LoadRun.objects.filter(uri__endswith="hired_employees.csv").order_by("id").last()
    assert set(
        Rejection.objects.filter(status="resolved").values_list("resolved_by__run", flat=True)
    ) == {run.id}
    assert Rejection.objects.count() == 1999
    bad = Rejection.objects.filter(status="open")
    assert set(bad.values_list("attempts", flat=True)) == {2}


def test_replay_rejections_command_stores_what_sql_added_references_for() -> None:
    _load("hired_employees")
    Department.objects.bulk_create([Department(id=i, department=f"D{i}") for i in range(1, 13)])
    Job.objects.bulk_create([Job(id=i, job=f"J{i}") for i in range(1, 184)])

    call_command("replay_rejections", "--table", "hired_employees", verbosity=0)
    _assert_as_ordered_load()

    # a second call finds nothing new to store, and leaves the bad rows as they were
    (again,) = replay_rejections(table="hired_employees")
    assert (again.read, again.inserted, again.rejected) == (0, 0, 0)
    assert set(Rejection.objects.filter(status="open").values_list("attempts", flat=True)) == {1}


# --- the three loads at once, in separate processes ---------------------------------------------


def _three_loads_at_once(folder: Path, *, chunk: int) -> None:
    children = [
        _Child(
            [
                sys.executable,
                "manage.py",
                "load_csv",
                str(SAMPLE_DIR / f"{name}.csv"),
                "--chunk-size",
                str(chunk),
            ],
            _child_env(LOG_LEVEL="ERROR"),
            folder,
        )
        for name in FILES
    ]
    for child in children:
        code, _, err = child.finish()
        assert code == 0, err[-2000:]


@pytest.mark.parametrize("chunk", [1000, 37])
def test_the_three_sample_files_at_once_end_as_the_ordered_load(tmp_path: Path, chunk: int) -> None:
    """Three processes, one per file, as three S3 events delivered at the same moment; the
    small chunks make the hires commit in many steps among the other two loads."""
    rounds = 4 if connection.vendor == "postgresql" else 2
    for _ in range(rounds):
        _clear()
        _three_loads_at_once(tmp_path, chunk=chunk)
        _assert_as_ordered_load()


# --- the API: a hire before its department and its job, in other processes ---------------------

_POST = """
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
django.setup()
from django.test.utils import setup_test_environment
setup_test_environment()
from django.test import Client
path, body = sys.argv[1], sys.argv[2]
answer = Client().post(path, data=body, content_type="application/json",
                       headers={"Authorization": "Bearer " + os.environ["ROSTER_TEST_TOKEN"]})
print(answer.status_code, answer.content.decode())
"""


def _post_in_a_process(folder: Path, token: str, path: str, body: dict[str, Any]) -> Any:
    child = _Child(
        [sys.executable, "-c", _POST, path, json.dumps(body)],
        _child_env(ROSTER_TEST_TOKEN=token, LOG_LEVEL="ERROR"),
        folder,
    )
    code, out, err = child.finish()
    assert code == 0, err[-2000:]
    status, _, content = out.strip().partition(" ")
    assert status == "200", out
    return json.loads(content)


_INSERT = """mutation($input: BatchInput!) {
  insertBatch(input: $input) { inserted rejected batchId rejections { reasons { code } } }
}"""


@pytest.mark.parametrize("arrives_first", ["department", "job"])
def test_api_hire_before_its_department_and_job_goes_in_when_both_arrive(
    tmp_path: Path, arrives_first: str
) -> None:
    token = create_token(name="writer", scope="write")
    hire = employee(500, department_id=70, job_id=80)
    first = _post_in_a_process(
        tmp_path,
        token,
        "/graphql",
        {"query": _INSERT, "variables": {"input": {"hiredEmployees": [_camel(hire)]}}},
    )["data"]["insertBatch"]
    assert (first["inserted"], first["rejected"]) == (0, 1)
    codes = [r["code"] for r in first["rejections"][0]["reasons"]]
    assert codes == ["unknown_reference", "unknown_reference"]
    (entry,) = Rejection.objects.all()
    assert (entry.status, entry.parked, entry.waits.count()) == ("open", True, 2)

    department = {"departments": [{"id": 70, "department": "Seventy"}]}
    job = {"jobs": [{"id": 80, "job": "Eighty"}]}
    first_arrival, second_arrival = (
        (department, job) if arrives_first == "department" else (job, department)
    )
    # the REST door for the first, GraphQL for the second: every door releases parked rows
    table, rows = next(iter(first_arrival.items()))
    body = {"destination_table": table, "data": rows}
    rest = _post_in_a_process(tmp_path, token, "/api/employees/", body)
    assert rest["inserted"] == 1
    entry.refresh_from_db()
    assert (entry.status, entry.waits.count(), HiredEmployee.objects.count()) == ("open", 1, 0)

    _post_in_a_process(
        tmp_path, token, "/graphql", {"query": _INSERT, "variables": {"input": second_arrival}}
    )
    entry.refresh_from_db()
    assert entry.status == "resolved"
    assert (entry.attempts, entry.parked, entry.waits.count()) == (1, False, 0)
    assert Batch.objects.get(pk=entry.resolved_by_id).source == "replay"
    stored = HiredEmployee.objects.get()
    assert (stored.id, stored.department_id, stored.job_id) == (500, 70, 80)
    assert ParkedReference.objects.count() == 0


# --- atomic batches ------------------------------------------------------------------------------


def test_an_atomic_batch_with_a_parked_row_is_not_replayed_alone(gql: GraphQLCaller) -> None:
    """All or nothing holds for the replay too: a department arriving later replays none of
    the batch's rows by itself; a replay of the batch stores them together."""
    Department.objects.create(id=1, department="One")
    Job.objects.create(id=1, job="One")
    rows = [_camel(employee(1)), _camel(employee(2, department_id=9))]
    batch = gql(
        "mutation($input: BatchInput!) { "
        "insertBatch(input: $input, atomic: true) { inserted batchId } }",
        {"input": {"hiredEmployees": rows}},
        scope="write",
    ).data["insertBatch"]
    assert batch["inserted"] == 0
    codes = dict(Rejection.objects.values_list("row_id", "reasons__0__code"))
    assert codes == {1: "batch_aborted", 2: "unknown_reference"}
    assert not Rejection.objects.filter(parked=True).exists()

    gql(_INSERT, {"input": {"departments": [{"id": 9, "department": "Nine"}]}}, scope="write")
    assert HiredEmployee.objects.count() == 0, "an atomic batch's row went in alone"
    assert Rejection.objects.filter(status="open").count() == 2

    replayed = gql(
        "mutation($b: ID!) { replayRejections(batchId: $b) { inserted rejected received } }",
        {"b": batch["batchId"]},
        scope="write",
    ).data["replayRejections"]
    assert replayed == {"inserted": 2, "rejected": "0", "received": "2"}  # BigInts but inserted
    assert sorted(HiredEmployee.objects.values_list("id", flat=True)) == [1, 2]
    assert set(Rejection.objects.values_list("status", flat=True)) == {"resolved"}


def test_an_atomic_batch_with_a_row_that_cannot_be_fixed_is_never_replayed(
    gql: GraphQLCaller,
) -> None:
    Department.objects.create(id=1, department="One")
    Job.objects.create(id=1, job="One")
    rows = [employee(1, department_id=9), employee(2, datetime="yesterday")]
    outcome = ingest_rows(table="hired_employees", rows=rows, source="graphql", atomic=True)
    Department.objects.create(id=9, department="Nine")

    (summary,) = replay_rejections(batch_id=str(outcome.batch_id))
    assert (summary.read, summary.inserted) == (0, 0)
    assert HiredEmployee.objects.count() == 0
    assert set(Rejection.objects.values_list("status", "attempts")) == {("open", 1)}


# --- replays that fail again, twice, and racing a load --------------------------------------------


def test_a_replay_that_fails_again_keeps_one_entry_with_its_latest_reasons(
    gql: GraphQLCaller,
) -> None:
    hire = employee(7, department_id=5, job_id=6)
    ingest_rows(table="hired_employees", rows=[hire], source="graphql")
    (entry,) = Rejection.objects.all()
    assert len(entry.reasons) == 2
    Job.objects.create(id=6, job="Six")  # by hand: automatic replay cannot see it

    for _ in range(2):  # the department is still missing: it fails again, twice
        replayed = gql(
            "mutation { replayRejections(table: HIRED_EMPLOYEES) { received inserted rejected "
            "rejections { index id reasons { code field } } } }",
            scope="write",
        ).data["replayRejections"]
        assert (replayed["received"], replayed["inserted"], replayed["rejected"]) == ("1", 0, "1")
        assert replayed["rejections"] == [
            {"index": "0", "id": 7,
             "reasons": [{"code": "unknown_reference", "field": "department_id"}]}
        ]  # fmt: skip
    entry = Rejection.objects.get()
    assert (entry.status, entry.attempts, entry.parked, entry.waits.count()) == ("open", 3, True, 1)
    assert [r["field"] for r in entry.reasons] == ["department_id"]  # the latest attempt's
    assert list(ParkedReference.objects.values_list("references", "ref_id")) == [("departments", 5)]
    assert Batch.objects.filter(source="replay").count() == 2

    # a row that takes id 7 meanwhile resolves the entry: nothing can store it now
    Department.objects.create(id=1, department="One")
    Job.objects.create(id=1, job="One")
    other = ingest_rows(table="hired_employees", rows=[employee(7, name="Other")], source="rest")
    entry.refresh_from_db()
    assert (entry.status, str(entry.resolved_by_id)) == ("resolved", str(other.batch_id))
    assert ParkedReference.objects.count() == 0


def test_automatic_replay_that_fails_again_parks_the_row_on_what_is_still_missing() -> None:
    """A hire whose department arrives while its job is still missing waits for the job, and
    is replayed once, when the job arrives."""
    ingest_rows(
        table="hired_employees", rows=[employee(3, department_id=4, job_id=6)], source="csv"
    )
    ingest_rows(table="departments", rows=[{"id": 4, "department": "Four"}], source="csv")
    entry = Rejection.objects.get()
    assert (entry.waits.count(), entry.attempts) == (
        1,
        1,
    )  # waits for the job only, not replayed yet
    assert list(ParkedReference.objects.values_list("references", "ref_id")) == [("jobs", 6)]

    ingest_rows(table="jobs", rows=[{"id": 6, "job": "Six"}], source="csv")
    entry.refresh_from_db()
    assert (entry.status, entry.attempts) == ("resolved", 1)
    assert HiredEmployee.objects.filter(pk=3).count() == 1


def test_a_replay_racing_a_forced_load_of_the_same_rows_stores_and_logs_each_once(
    tmp_path: Path,
) -> None:
    rounds = 3 if connection.vendor == "postgresql" else 1
    for _ in range(rounds):
        _clear()
        _load("hired_employees")  # every hire parked
        commands = [
            ["load_csv", str(SAMPLE_DIR / "jobs.csv"), str(SAMPLE_DIR / "departments.csv")],
            ["load_csv", str(SAMPLE_DIR / "hired_employees.csv"), "--force", "--chunk-size", "50"],
            ["replay_rejections"],
        ]
        env = _child_env(LOG_LEVEL="ERROR")
        children = [_Child([sys.executable, "manage.py", *c], env, tmp_path) for c in commands]
        for child in children:
            code, _, err = child.finish()
            assert code == 0, err[-2000:]
        _assert_as_ordered_load()
        assert Rejection.objects.count() == 1999


# --- the log in GraphQL ------------------------------------------------------------------------


def test_rejections_filter_by_status_and_show_who_resolved_them(gql: GraphQLCaller) -> None:
    _load("hired_employees", "departments", "jobs")
    query = """query($status: RejectionStatus) {
      rejections(table: HIRED_EMPLOYEES, status: $status, first: 2) {
        totalCount nodes { status resolvedBy attempts parked rowId }
      }
    }"""
    opened = gql(query, {"status": "OPEN"}, scope="read").data["rejections"]
    resolved = gql(query, {"status": "RESOLVED"}, scope="read").data["rejections"]
    everything = gql(query, {}, scope="read").data["rejections"]

    assert (opened["totalCount"], resolved["totalCount"]) == ("70", "1929")
    assert everything["totalCount"] == "1999"
    assert {node["attempts"] for node in opened["nodes"]} == {"1"}
    assert {node["status"] for node in opened["nodes"]} == {"OPEN"}
    assert {node["resolvedBy"] for node in opened["nodes"]} == {None}
    replay_batches = {
        str(b) for b in Batch.objects.filter(source="replay").values_list("id", flat=True)
    }
    assert {node["resolvedBy"] for node in resolved["nodes"]} <= replay_batches
    assert {node["parked"] for node in resolved["nodes"] + opened["nodes"]} == {False}

    bad = gql("{ rejections(status: CLOSED) { totalCount } }", scope="read")
    assert bad.status == 200 and bad.errors, "an unknown status is refused"


def test_replay_needs_the_write_scope_and_a_table_or_batch(gql: GraphQLCaller) -> None:
    denied = gql("mutation { replayRejections(table: JOBS) { received } }", scope="read")
    assert denied.codes == ["FORBIDDEN"]
    missing = gql("mutation { replayRejections { received } }", scope="write")
    assert missing.codes == ["BAD_USER_INPUT"]
    unknown = gql(
        "mutation($b: ID!) { replayRejections(batchId: $b) { received } }",
        {"b": "7a3c2a64-8b89-4a52-a0b5-0d0f1b1b5b1b"},
        scope="write",
    )
    assert unknown.codes == ["BAD_USER_INPUT"]
    assert "no batch" in unknown.errors[0]["message"]


# --- the other doors: a Distributed Map chunk, a restore ------------------------------------------


def test_a_distributed_map_chunk_parks_and_a_later_department_releases(tmp_path: Path) -> None:
    from lambdas.load_chunk import handler

    Department.objects.create(id=1, department="One")
    Job.objects.create(id=1, job="One")
    row = {"id": "2", "name": "N2", "datetime": "2021-01-01T00:00:00Z", "department_id": "9",
           "job_id": "1"}  # fmt: skip
    event = {
        "BatchInput": {"bucket": "landing", "key": "in/hired_employees.csv", "etag": '"e1"'},
        "Items": [{"index": 0, "row": row}],
    }
    assert handler(event)["rejected"] == 1
    assert Rejection.objects.get().parked

    ingest_rows(table="departments", rows=[{"id": 9, "department": "Nine"}], source="rest")
    assert HiredEmployee.objects.get().department_id == 9
    assert Rejection.objects.get().status == "resolved"


def test_a_restore_of_the_references_releases_the_hires_parked_before(tmp_path: Path) -> None:
    from django.conf import settings
    from django.test import override_settings

    from jobs.backups import backup_tables, restore_tables
    from tests.test_backups import _folder

    with override_settings(STORAGES={**settings.STORAGES, "backups": _folder(tmp_path)}):
        _load("departments", "jobs")
        backup_tables(tables=["departments", "jobs"])
        Job.objects.all().delete()
        Department.objects.all().delete()
        _load("hired_employees")
        assert HiredEmployee.objects.count() == 0

        restore_tables(tables=["departments", "jobs"])

    _assert_as_ordered_load()
    assert set(
        Rejection.objects.filter(status="resolved").values_list("resolved_by__source", flat=True)
    ) == {"replay"}


# --- upgrading an existing log --------------------------------------------------------------------


def test_migration_keys_merges_and_resolves_an_existing_log() -> None:
    """A log written before rejection status: the same row logged three times becomes one
    entry with three attempts; an entry whose id is stored since is resolved; one missing only
    a reference is parked, and ``replay_rejections`` then stores it."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("backend", "0001_initial")])
    apps = executor.loader.project_state([("backend", "0001_initial")]).apps
    old_batch, old_rejection = (
        apps.get_model("backend", "Batch"),
        apps.get_model("backend", "Rejection"),
    )
    old_department = apps.get_model("backend", "Department")
    old_job = apps.get_model("backend", "Job")
    old_hire = apps.get_model("backend", "HiredEmployee")
    from django.utils import timezone

    now = timezone.now()
    batch = old_batch.objects.create(source="csv", table="hired_employees", status="completed",
                                     started_at=now, finished_at=now)  # fmt: skip
    missing = [
        {
            "field": "department_id",
            "code": "unknown_reference",
            "message": "department 2 does not exist",
        }
    ]
    blank = [{"field": "name", "code": "required", "message": "is required"}]
    for position, row_id, raw, reasons in [
        (1, 1, "1,Ada,2021-01-01T00:00:00Z,2,1", missing),
        (1, 1, "1,Ada,2021-01-01T00:00:00Z,2,1", missing),  # the same row, logged again
        (1, 1, "1,Ada,2021-01-01T00:00:00Z,2,1", missing),
        (2, 2, "2,,2021-01-01T00:00:00Z,1,1", blank),
        (3, 3, "3,Cy,2021-01-01T00:00:00Z,9,1", missing),  # stored since
    ]:
        old_rejection.objects.create(
            batch=batch, source="csv", table="hired_employees", position=position,
            row_id=row_id, raw=raw, reasons=reasons,
        )  # fmt: skip
    old_department.objects.create(id=1, department="One")
    old_department.objects.create(id=9, department="Nine")
    old_job.objects.create(id=1, job="One")
    old_hire.objects.create(id=3, name="Cy", datetime=now, department_id=9, job_id=1)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    entries = {e.row_id: e for e in Rejection.objects.all()}
    assert sorted(entries) == [1, 2, 3]
    assert (entries[1].attempts, entries[1].status, entries[1].parked) == (3, "open", True)
    assert (entries[2].attempts, entries[2].status, entries[2].parked) == (1, "open", False)
    assert (entries[3].status, entries[3].resolved_by_id) == ("resolved", None)

    Department.objects.create(id=2, department="Two")
    replay_rejections(table="hired_employees")
    assert sorted(HiredEmployee.objects.values_list("id", flat=True)) == [1, 3]
    assert Rejection.objects.get(row_id=1).status == "resolved"
