"""Read replicas (``backend/replica.py``): which database answers each read.

The test settings have a second database, ``replica``, a real one of its own: each test puts
different rows in the two, so an answer shows which one served it. The router reads from it
only where a test sets ``READ_REPLICA`` (``replica_on``), as ``DATABASE_REPLICA_URL`` does in
a deployment. The router keeps a read inside a transaction on the primary, so the tests that
read the replica commit (``transaction=True``), as a deployment does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections, transaction
from django.test import Client

from backend.auth import create_token
from backend.models import ApiToken, Batch, Department, HiredEmployee, Job, Rejection, Source
from backend.replica import ReplicaRouter, read_connection, replica_reads
from backend.timeouts import is_statement_timeout
from jobs.ingest import ingest_rows
from tests.conftest import GraphQLCaller, employee
from tests.test_hostile_settings import manage

REPLICA = "replica"
BOTH = pytest.mark.django_db(transaction=True, databases=[DEFAULT_DB_ALIAS, REPLICA])

# Different rows in each database, so an answer shows which one served it: the replica has a
# department, a job and two hires that the primary has not.
PRIMARY_ROWS = {
    "departments": {1: "Sales"},
    "jobs": {1: "Clerk"},
    "hires": {1: ("Ada Primary", datetime(2021, 2, 1, tzinfo=UTC), 1, 1)},
}
REPLICA_ROWS = {
    "departments": {1: "Sales", 2: "Legal"},
    "jobs": {1: "Clerk", 2: "Counsel"},
    "hires": {
        1: ("Ada Primary", datetime(2021, 2, 1, tzinfo=UTC), 1, 1),
        2: ("Grace Replica", datetime(2021, 5, 1, tzinfo=UTC), 2, 2),
        3: ("Linus Replica", datetime(2021, 8, 1, tzinfo=UTC), 2, 1),
    },
}


def fill(alias: str, rows: dict[str, dict[int, Any]]) -> None:
    for i, name in rows["departments"].items():
        Department.objects.using(alias).create(id=i, department=name)
    for i, name in rows["jobs"].items():
        Job.objects.using(alias).create(id=i, job=name)
    for i, (name, hired, department, job) in rows["hires"].items():
        HiredEmployee.objects.using(alias).create(
            id=i, name=name, datetime=hired, department_id=department, job_id=job
        )


@pytest.fixture
def two_databases() -> None:
    fill(DEFAULT_DB_ALIAS, PRIMARY_ROWS)
    fill(REPLICA, REPLICA_ROWS)


@pytest.fixture
def replica_on(settings: Any) -> None:
    """What ``DATABASE_REPLICA_URL`` does in a deployment."""
    settings.READ_REPLICA = REPLICA


DATA = """{
  departments { totalCount nodes { id department
    hiredEmployees(first: 5) { totalCount nodes { name } } } }
  jobs { totalCount nodes { id job } }
  hiredEmployees(orderBy: {field: NAME}) { totalCount nodes { id name department { department } } }
  hiredEmployee(id: 2) { name }
  hiresByQuarter(year: 2021) { department job q1 q2 q3 q4 }
  departmentsAboveMean(year: 2021) { department hired }
}"""

REPLICA_ANSWER = {
    "departments": {
        "totalCount": 2,
        "nodes": [
            {
                "id": 1,
                "department": "Sales",
                "hiredEmployees": {"totalCount": 1, "nodes": [{"name": "Ada Primary"}]},
            },
            {
                "id": 2,
                "department": "Legal",
                "hiredEmployees": {
                    "totalCount": 2,
                    "nodes": [{"name": "Grace Replica"}, {"name": "Linus Replica"}],
                },
            },
        ],
    },
    "jobs": {"totalCount": 2, "nodes": [{"id": 1, "job": "Clerk"}, {"id": 2, "job": "Counsel"}]},
    "hiredEmployees": {
        "totalCount": 3,
        "nodes": [
            {"id": 1, "name": "Ada Primary", "department": {"department": "Sales"}},
            {"id": 2, "name": "Grace Replica", "department": {"department": "Legal"}},
            {"id": 3, "name": "Linus Replica", "department": {"department": "Legal"}},
        ],
    },
    "hiredEmployee": {"name": "Grace Replica"},
    "hiresByQuarter": [
        {"department": "Legal", "job": "Clerk", "q1": 0, "q2": 0, "q3": 1, "q4": 0},
        {"department": "Legal", "job": "Counsel", "q1": 0, "q2": 1, "q3": 0, "q4": 0},
        {"department": "Sales", "job": "Clerk", "q1": 1, "q2": 0, "q3": 0, "q4": 0},
    ],
    "departmentsAboveMean": [{"department": "Legal", "hired": 2}],
}
PRIMARY_ANSWER = {
    "departments": {
        "totalCount": 1,
        "nodes": [
            {
                "id": 1,
                "department": "Sales",
                "hiredEmployees": {"totalCount": 1, "nodes": [{"name": "Ada Primary"}]},
            }
        ],
    },
    "jobs": {"totalCount": 1, "nodes": [{"id": 1, "job": "Clerk"}]},
    "hiredEmployees": {
        "totalCount": 1,
        "nodes": [{"id": 1, "name": "Ada Primary", "department": {"department": "Sales"}}],
    },
    "hiredEmployee": None,
    "hiresByQuarter": [{"department": "Sales", "job": "Clerk", "q1": 1, "q2": 0, "q3": 0, "q4": 0}],
    "departmentsAboveMean": [],
}


def rest_get(client: Client, token: str, url: str) -> Any:
    return client.get(url, headers={"Authorization": f"Bearer {token}"})


def hire_names(alias: str) -> dict[int, str]:
    return dict(HiredEmployee.objects.using(alias).order_by("id").values_list("id", "name"))


# --- reads that go to the replica ------------------------------------------------------------


@BOTH
def test_a_query_reads_the_data_tables_and_metrics_from_the_replica(
    gql: GraphQLCaller, two_databases: None, replica_on: None
) -> None:
    answer = gql(DATA, scope="read")
    assert (answer.status, answer.body) == (200, {"data": REPLICA_ANSWER})


@BOTH
def test_rest_gets_read_the_replica(
    client: Client, tokens: dict[str, str], two_databases: None, replica_on: None
) -> None:
    rows = rest_get(client, tokens["read"], "/api/employees/departments")
    assert rows.json() == {
        "message": "Success",
        "data": [{"id": 1, "department": "Sales"}, {"id": 2, "department": "Legal"}],
        "next_after": None,
    }
    hires = rest_get(client, tokens["read"], "/api/employees/hired_employees?after=1")
    assert [row["name"] for row in hires.json()["data"]] == ["Grace Replica", "Linus Replica"]
    metric = rest_get(client, tokens["read"], "/api/metrics/departments-above-mean?year=2021")
    assert metric.json() == {"year": 2021, "data": [{"id": 2, "department": "Legal", "hired": 2}]}


@BOTH
def test_a_replica_read_gets_the_statement_timeout(
    settings: Any, two_databases: None, replica_on: None
) -> None:
    """The replica's statements are cancelled past ``STATEMENT_TIMEOUT_MS``, as the primary's."""
    settings.STATEMENT_TIMEOUT_MS = 50
    slow = {
        "postgresql": "SELECT pg_sleep(5)",
        "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
        "WHERE i < 1000000000) SELECT count(*) FROM n",
    }
    replica = connections[REPLICA]
    try:
        with replica_reads():
            assert read_connection(HiredEmployee) is replica
            with pytest.raises(OperationalError) as cancelled, replica.cursor() as cursor:
                cursor.execute(slow[replica.vendor])
    finally:
        replica.close()  # the next test's connection starts with the server's timeout
    assert is_statement_timeout(cancelled.value)


@pytest.fixture
def replica_down() -> Iterator[None]:
    """The replica cannot be reached: its file's folder does not exist, or nothing listens on
    its port."""
    replica = connections[REPLICA]
    saved = dict(replica.settings_dict)
    replica.close()
    if replica.vendor == "sqlite":
        replica.settings_dict["NAME"] = "/nonexistent-roster-replica/replica.sqlite3"
    else:
        replica.settings_dict.update(HOST="127.0.0.1", PORT="1")
    yield
    replica.close()
    replica.settings_dict.update(saved)


@BOTH
def test_an_unreachable_replica_answers_503_and_never_falls_back_to_the_primary(
    gql: GraphQLCaller,
    client: Client,
    tokens: dict[str, str],
    two_databases: None,
    replica_on: None,
    replica_down: None,
) -> None:
    answer = gql("{ departments { totalCount } }", scope="read")
    assert (answer.status, answer.codes) == (503, ["SERVICE_UNAVAILABLE"])
    rows = rest_get(client, tokens["read"], "/api/employees/departments")
    assert (rows.status_code, rows["Retry-After"], rows.json()["code"]) == (
        503,
        "5",
        "SERVICE_UNAVAILABLE",
    )


# --- what stays on the primary ---------------------------------------------------------------


@BOTH
def test_without_a_replica_configured_every_read_is_the_primarys(
    gql: GraphQLCaller, client: Client, tokens: dict[str, str], two_databases: None
) -> None:
    answer = gql(DATA, scope="read")
    assert (answer.status, answer.body) == (200, {"data": PRIMARY_ANSWER})
    rows = rest_get(client, tokens["read"], "/api/employees/departments")
    assert rows.json()["data"] == [{"id": 1, "department": "Sales"}]


@pytest.mark.django_db
def test_without_a_replica_configured_the_replica_is_never_touched(gql: GraphQLCaller) -> None:
    """This test may not use ``replica`` (pytest-django refuses any query there): with the
    flag set and no ``READ_REPLICA``, every read still answers, from the primary."""
    Department.objects.create(id=1, department="Sales")
    with replica_reads():
        answer = gql("{ departments { nodes { department } } }", scope="read")
    assert answer.body == {"data": {"departments": {"nodes": [{"department": "Sales"}]}}}


BATCH = """mutation($rows: [HiredEmployeeInput!]!) {
  insertBatch(input: {hiredEmployees: $rows}) {
    inserted rejected rejections { index id reasons { code } }
  }
}"""
# Hire 2 exists on the replica only: on the primary it is new. Department 2 exists on the
# replica only: on the primary it is missing.
NEW_HIRES = [
    employee(2, name="Grace Primary", datetime="2021-06-01T00:00:00Z"),
    employee(4, department_id=2),
]


def as_graphql(row: dict[str, Any]) -> dict[str, Any]:
    """A REST row as GraphQL's ``HiredEmployeeInput`` names its fields."""
    return {"departmentId": row["department_id"], "jobId": row["job_id"]} | {
        key: value for key, value in row.items() if key not in ("department_id", "job_id")
    }


def assert_stored_on_the_primary_only() -> None:
    assert hire_names(DEFAULT_DB_ALIAS) == {1: "Ada Primary", 2: "Grace Primary"}
    assert hire_names(REPLICA) == {1: "Ada Primary", 2: "Grace Replica", 3: "Linus Replica"}
    logged = Rejection.objects.values_list("row_id", "reasons__0__code", "parked")
    assert list(logged) == [(4, "unknown_reference", True)]
    assert Rejection.objects.using(REPLICA).count() == 0


@BOTH
def test_a_mutation_writes_and_checks_references_and_duplicates_on_the_primary(
    gql: GraphQLCaller, two_databases: None, replica_on: None
) -> None:
    """Even sent from inside ``replica_reads``: a mutation never reads the replica."""
    with replica_reads():
        answer = gql(BATCH, {"rows": [as_graphql(row) for row in NEW_HIRES]}, scope="write")
    assert answer.body == {
        "data": {
            "insertBatch": {
                "inserted": 1,
                "rejected": 1,
                "rejections": [{"index": 1, "id": 4, "reasons": [{"code": "unknown_reference"}]}],
            }
        }
    }
    assert_stored_on_the_primary_only()


@BOTH
def test_reads_inside_a_write_transaction_stay_on_the_primary(
    two_databases: None, replica_on: None
) -> None:
    """The pipeline reads references inside its transaction: with replica reads allowed, it
    still sees the primary's departments and ids."""
    with replica_reads():
        assert Department.objects.count() == 2  # outside a transaction: the replica
        result = ingest_rows(table="hired_employees", rows=NEW_HIRES, source=Source.GRAPHQL)
        with transaction.atomic():
            assert Department.objects.count() == 1
    assert (result.inserted, result.rejected) == (1, 1)
    assert_stored_on_the_primary_only()


@BOTH
def test_rest_post_writes_and_checks_references_on_the_primary(
    client: Client, tokens: dict[str, str], two_databases: None, replica_on: None
) -> None:
    response = client.post(
        "/api/employees/",
        data=json.dumps({"destination_table": "hired_employees", "data": NEW_HIRES}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {tokens['write']}"},
    )
    assert (response.json()["inserted"], response.json()["rejected"]) == (1, 1)
    assert_stored_on_the_primary_only()


@BOTH
def test_the_rejection_log_reads_the_primary(
    gql: GraphQLCaller, two_databases: None, replica_on: None
) -> None:
    ingest_rows(table="jobs", rows=[{"id": 5, "job": " "}], source=Source.GRAPHQL)
    now = datetime(2021, 1, 1, tzinfo=UTC)
    lagging = Batch.objects.using(REPLICA).create(
        source=Source.REST, table="jobs", status=Batch.Status.COMPLETED,
        started_at=now, finished_at=now,
    )  # fmt: skip
    Rejection.objects.using(REPLICA).create(
        batch=lagging, source=Source.REST, table="jobs", position=0, row_id=9,
        raw={"id": 9}, reasons=[{"field": "job", "code": "required"}], row_key="replica",
    )  # fmt: skip
    answer = gql("{ rejections { totalCount nodes { rowId reasons { code } } } }", scope="read")
    assert answer.body == {
        "data": {
            "rejections": {
                "totalCount": "1",
                "nodes": [{"rowId": 5, "reasons": [{"code": "required"}]}],
            }
        }
    }


@BOTH
def test_a_token_on_the_primary_only_is_accepted(
    client: Client, two_databases: None, replica_on: None
) -> None:
    token = create_token(name="new", scope="read")
    assert ApiToken.objects.using(REPLICA).count() == 0
    answer = GraphQLCaller(client, {})("{ jobs { totalCount } }", token=token)
    assert (answer.status, answer.body) == (200, {"data": {"jobs": {"totalCount": 2}}})
    assert rest_get(client, token, "/api/employees/jobs").status_code == 200


@BOTH
def test_a_token_revoked_on_the_primary_is_refused_while_the_replica_still_has_it(
    client: Client, two_databases: None, replica_on: None
) -> None:
    token = create_token(name="revoked", scope="read")
    record = ApiToken.objects.get()
    ApiToken.objects.using(REPLICA).create(
        name=record.name, scope=record.scope, key_hash=record.key_hash
    )
    record.delete()
    answer = GraphQLCaller(client, {})("{ jobs { totalCount } }", token=token)
    assert (answer.status, answer.codes) == (401, ["UNAUTHENTICATED"])
    assert rest_get(client, token, "/api/employees/jobs").status_code == 401


# --- the router's rules, one by one ----------------------------------------------------------

# ``replica_reads`` connects to the replica to set its statement timeout; the primary stays out
# of any transaction, as in a request.
REPLICA_ONLY = pytest.mark.django_db(databases=[REPLICA])


@REPLICA_ONLY
@pytest.mark.parametrize(
    ("model", "allowed", "replica", "expected"),
    [
        (HiredEmployee, True, REPLICA, REPLICA),
        (Department, True, REPLICA, REPLICA),
        (Job, True, REPLICA, REPLICA),
        (HiredEmployee, False, REPLICA, DEFAULT_DB_ALIAS),  # no door allowed it
        (HiredEmployee, True, "", DEFAULT_DB_ALIAS),  # no DATABASE_REPLICA_URL
        (Rejection, True, REPLICA, DEFAULT_DB_ALIAS),
        (Batch, True, REPLICA, DEFAULT_DB_ALIAS),
        (ApiToken, True, REPLICA, DEFAULT_DB_ALIAS),
    ],
)
def test_the_router_reads_the_replica_only_for_allowed_data_reads(
    settings: Any, model: type, allowed: bool, replica: str, expected: str
) -> None:
    settings.READ_REPLICA = replica
    with replica_reads(allowed):
        assert ReplicaRouter().db_for_read(model) == expected
        assert ReplicaRouter().db_for_write(model) == DEFAULT_DB_ALIAS


@REPLICA_ONLY
def test_the_router_matches_the_hires_summary_by_its_label(settings: Any) -> None:
    """``backend.HireCount`` (the hires summary) is matched by its label, so the rule holds
    whether or not this tree has the model yet."""
    settings.READ_REPLICA = REPLICA
    summary = type("Meta", (), {"label": "backend.HireCount"})
    with replica_reads():
        assert ReplicaRouter().db_for_read(type("HireCount", (), {"_meta": summary})) == REPLICA


# --- settings --------------------------------------------------------------------------------

SHOW = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps([s.READ_REPLICA, s.DATABASE_ROUTERS, s.DATABASES]))"
)


def test_the_replica_is_configured_like_the_primary(tmp_path: Path) -> None:
    ran = manage(
        tmp_path, "shell", "-v", "0", "-c", SHOW,
        DATABASE_URL="postgres://roster@db:5432/roster",
        DATABASE_REPLICA_URL="postgres://reader@replica:5432/roster?sslmode=require",
        CONN_MAX_AGE="30",
    )  # fmt: skip
    assert ran.stderr == ""
    alias, routers, databases = json.loads(ran.stdout)
    assert (alias, routers) == ("replica", ["backend.replica.ReplicaRouter"])
    replica = databases["replica"]
    assert (replica["HOST"], replica["USER"], replica["NAME"]) == ("replica", "reader", "roster")
    assert (replica["CONN_MAX_AGE"], replica["CONN_HEALTH_CHECKS"]) == (30, True)
    assert (databases["default"]["OPTIONS"], replica["OPTIONS"]) == (
        {"connect_timeout": 5},
        {"sslmode": "require", "connect_timeout": 5},
    )


def test_an_embedded_replica_is_configured_like_the_embedded_primary(tmp_path: Path) -> None:
    ran = manage(
        tmp_path, "shell", "-v", "0", "-c", SHOW,
        DATABASE_URL=f"sqlite:///{tmp_path / 'roster.sqlite3'}",
        DATABASE_REPLICA_URL=f"sqlite:///{tmp_path / 'copy.sqlite3'}",
    )  # fmt: skip
    _, _, databases = json.loads(ran.stdout)
    default, replica = databases["default"], databases["replica"]
    assert replica["NAME"] == str(tmp_path / "copy.sqlite3")
    assert (replica["OPTIONS"], replica["CONN_MAX_AGE"]) == (default["OPTIONS"], 0)
    assert replica["TEST"]["NAME"] == str(tmp_path / "test_roster_replica.sqlite3")


def test_without_a_replica_url_there_is_no_replica(tmp_path: Path) -> None:
    ran = manage(tmp_path, "shell", "-v", "0", "-c", SHOW, DATABASE_REPLICA_URL="")
    alias, _, databases = json.loads(ran.stdout)
    assert (alias, list(databases)) == ("", ["default"])


def test_a_replica_of_another_engine_is_refused(tmp_path: Path) -> None:
    ran = manage(
        tmp_path, "check",
        DATABASE_URL="postgres://roster@db:5432/roster",
        DATABASE_REPLICA_URL=f"sqlite:///{tmp_path / 'replica.sqlite3'}",
    )  # fmt: skip
    assert (ran.returncode, ran.stderr.strip()) == (
        1,
        "error: DATABASE_REPLICA_URL must name a database of the same engine as DATABASE_URL "
        "(a replica of it)",
    )
