"""The REST compatibility routes: GET /api/employees/<table> and POST /api/employees/."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client, override_settings

from backend.models import Batch, Department, HiredEmployee, Job, Rejection
from tests.conftest import employee


@pytest.fixture
def refs(db: None) -> None:
    """Two departments and two jobs, enough for hired employees to point at."""
    Department.objects.bulk_create(Department(id=i, department=f"Dept {i}") for i in (1, 2))
    Job.objects.bulk_create(Job(id=i, job=f"Job {i}") for i in (1, 2))


def auth(tokens: dict[str, str], scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[scope]}"}


def get(client: Client, tokens: dict[str, str], url: str, scope: str = "read") -> Any:
    return client.get(url, headers=auth(tokens, scope))


def post(client: Client, tokens: dict[str, str], body: Any, scope: str = "write") -> Any:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(
        "/api/employees/", data=data, content_type="application/json", headers=auth(tokens, scope)
    )


def nothing_stored() -> bool:
    return (
        Batch.objects.count() == 0
        and Rejection.objects.count() == 0
        and HiredEmployee.objects.count() == 0
    )


# --- GET -------------------------------------------------------------------------------------


def test_list_departments(client, tokens, sample_data) -> None:
    response = get(client, tokens, "/api/employees/departments?limit=3")
    assert response.status_code == 200
    assert response.json() == {
        "message": "Success",
        "data": [
            {"id": 1, "department": "Product Management"},
            {"id": 2, "department": "Sales"},
            {"id": 3, "department": "Research and Development"},
        ],
        "next_after": 3,
    }


def test_list_hired_employees_rows_carry_every_column(client, tokens, sample_data) -> None:
    body = get(client, tokens, "/api/employees/hired_employees?limit=1").json()
    assert body["data"] == [
        {
            "id": 1,
            "name": "Harold Vogt",
            "datetime": "2021-11-07T02:48:42Z",
            "department_id": 2,
            "job_id": 96,
        }
    ]
    assert body["next_after"] == 1


def test_default_limit_is_1000(client, tokens, sample_data) -> None:
    body = get(client, tokens, "/api/employees/hired_employees").json()
    expected = list(HiredEmployee.objects.order_by("id").values_list("id", flat=True)[:1000])
    assert [row["id"] for row in body["data"]] == expected
    assert body["next_after"] == expected[-1]


@pytest.mark.parametrize(("table", "limit"), [("hired_employees", 1000), ("jobs", 7)])
def test_walking_with_after_covers_every_row_once(
    client, tokens, sample_data, table: str, limit: int
) -> None:
    model = {"hired_employees": HiredEmployee, "jobs": Job}[table]
    expected = list(model.objects.order_by("id").values_list("id", flat=True))
    seen: list[int] = []
    after = 0
    pages = 0
    while after is not None:
        body = get(client, tokens, f"/api/employees/{table}?limit={limit}&after={after}").json()
        assert body["message"] == "Success"
        assert len(body["data"]) <= limit
        seen.extend(row["id"] for row in body["data"])
        after = body["next_after"]
        pages += 1
    assert seen == expected
    assert pages == -(-len(expected) // limit)


def test_exact_last_page_has_no_next_after(client, tokens, sample_data) -> None:
    body = get(client, tokens, "/api/employees/departments?limit=12").json()
    assert len(body["data"]) == 12
    assert body["next_after"] is None
    empty = get(client, tokens, "/api/employees/departments?after=12").json()
    assert empty == {"message": "Success", "data": [], "next_after": None}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "'limit' must be between 1 and 1000"),
        ("limit=1001", "'limit' must be between 1 and 1000"),
        ("limit=-5", "'limit' must be between 1 and 1000"),
        ("limit=abc", "'limit' and 'after' must be integers"),
        ("limit=1.5", "'limit' and 'after' must be integers"),
        ("after=abc", "'limit' and 'after' must be integers"),
    ],
)
def test_bad_limit_or_after_is_400(client, tokens, db, query: str, message: str) -> None:
    response = get(client, tokens, f"/api/employees/jobs?{query}")
    assert response.status_code == 400
    assert response.json() == {"message": message}


def test_after_beyond_the_id_range_gives_an_empty_page(client, tokens, refs) -> None:
    response = get(client, tokens, f"/api/employees/jobs?after={10**30}")
    assert response.status_code == 200
    assert response.json()["data"] == []


def test_unknown_table_is_404_with_a_message(client, tokens, db) -> None:
    response = get(client, tokens, "/api/employees/salaries")
    assert response.status_code == 404
    assert response.json() == {
        "message": "unknown table 'salaries'; expected one of: departments, jobs, hired_employees"
    }


def test_listing_needs_a_token(client, db) -> None:
    response = client.get("/api/employees/jobs")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="roster"'
    assert response.json()["message"].startswith("authentication required")


def test_listing_with_a_bad_token_is_401(client, db) -> None:
    response = client.get("/api/employees/jobs", headers={"Authorization": "Bearer rst_nope"})
    assert response.status_code == 401
    assert response.json()["message"].startswith("the token is not valid")


def test_listing_refuses_post(client, tokens, db) -> None:
    response = client.post("/api/employees/jobs", headers=auth(tokens, "admin"))
    assert response.status_code == 405


# --- POST ------------------------------------------------------------------------------------


def test_insert_valid_rows(client, tokens, refs) -> None:
    rows = [employee(1), employee(2, department_id=2, job_id=2)]
    response = post(client, tokens, {"destination_table": "hired_employees", "data": rows})
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Success. Inserted 2 items out of 2"
    assert (body["inserted"], body["rejected"], body["rejections"]) == (2, 0, [])
    assert body["batch_id"] == str(Batch.objects.get().id)
    assert list(HiredEmployee.objects.values_list("id", "department_id", "job_id")) == [
        (1, 1, 1),
        (2, 2, 2),
    ]


def test_insert_accepts_digit_strings_as_integers(client, tokens, refs) -> None:
    body = post(
        client, tokens, {"destination_table": "jobs", "data": [{"id": "7", "job": "Seven"}]}
    ).json()
    assert body["inserted"] == 1
    assert Job.objects.get(id=7).job == "Seven"


def test_wrong_json_types_are_rejected_and_logged(client, tokens, refs) -> None:
    rows = [
        employee("abc"),
        employee(2, name=5),
        employee(True),
        employee(4),
        employee(5, department_id=1.5),
        "not a row",
    ]
    response = post(client, tokens, {"destination_table": "hired_employees", "data": rows})
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Success. Inserted 1 items out of 6"
    assert (body["inserted"], body["rejected"]) == (1, 5)
    assert body["rejections"] == [
        {
            "index": 0,
            "id": None,
            "reasons": [
                {"field": "id", "code": "invalid_type", "message": "must be an integer, got 'abc'"}
            ],
        },
        {
            "index": 1,
            "id": 2,
            "reasons": [
                {
                    "field": "name",
                    "code": "invalid_type",
                    "message": "must be a string, got integer",
                }
            ],
        },
        {
            "index": 2,
            "id": None,
            "reasons": [
                {
                    "field": "id",
                    "code": "invalid_type",
                    "message": "must be an integer, got boolean",
                }
            ],
        },
        {
            "index": 4,
            "id": 5,
            "reasons": [
                {
                    "field": "department_id",
                    "code": "invalid_type",
                    "message": "must be an integer, got number",
                }
            ],
        },
        {
            "index": 5,
            "id": None,
            "reasons": [
                {"field": None, "code": "invalid_row", "message": "must be an object, got string"}
            ],
        },
    ]
    assert list(HiredEmployee.objects.values_list("id", flat=True)) == [4]
    logged = list(Rejection.objects.order_by("position"))
    assert [(r.source, r.table, r.position, r.row_id) for r in logged] == [
        ("rest", "hired_employees", 0, None),
        ("rest", "hired_employees", 1, 2),
        ("rest", "hired_employees", 2, None),
        ("rest", "hired_employees", 4, 5),
        ("rest", "hired_employees", 5, None),
    ]
    assert logged[0].raw == rows[0]
    assert logged[2].raw["id"] is True
    assert logged[4].raw == "not a row"
    batch = Batch.objects.get()
    assert (batch.source, batch.received, batch.inserted, batch.rejected) == ("rest", 6, 1, 5)


def test_unknown_fields_and_references_are_rejected(client, tokens, refs) -> None:
    rows = [employee(1, salary=10), employee(2, job_id=9)]
    body = post(client, tokens, {"destination_table": "hired_employees", "data": rows}).json()
    assert body["inserted"] == 0
    assert [r["reasons"] for r in body["rejections"]] == [
        [
            {
                "field": "salary",
                "code": "unknown_field",
                "message": "is not a column of hired_employees",
            }
        ],
        [{"field": "job_id", "code": "unknown_reference", "message": "job 9 does not exist"}],
    ]
    assert Rejection.objects.filter(source="rest").count() == 2


def test_existing_id_is_rejected_as_duplicate(client, tokens, refs) -> None:
    body = post(
        client, tokens, {"destination_table": "departments", "data": [{"id": 1, "department": "X"}]}
    ).json()
    assert body["message"] == "Success. Inserted 0 items out of 1"
    assert body["rejections"][0]["reasons"] == [
        {"field": "id", "code": "duplicate", "message": "id 1 already exists in departments"}
    ]
    assert Department.objects.get(id=1).department == "Dept 1"


@pytest.mark.parametrize("count", [1, 1000])
def test_insert_1_or_1000_rows(client, tokens, refs, count: int) -> None:
    rows = [employee(i) for i in range(1, count + 1)]
    body = post(client, tokens, {"destination_table": "hired_employees", "data": rows}).json()
    assert body["message"] == f"Success. Inserted {count} items out of {count}"
    assert HiredEmployee.objects.count() == count


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"destination_table": "salaries", "data": [{"id": 1}]},
            "'destination_table' must be one of: departments, jobs, hired_employees;"
            " got 'salaries'",
        ),
        (
            {"data": [{"id": 1}]},
            "'destination_table' must be one of: departments, jobs, hired_employees; got None",
        ),
        (
            {"destination_table": ["jobs"], "data": [{"id": 1, "job": "x"}]},
            "'destination_table' must be one of: departments, jobs, hired_employees; got ['jobs']",
        ),
        ({"destination_table": "jobs", "data": {"id": 1}}, "'data' must be a list of row objects"),
        ({"destination_table": "jobs"}, "'data' must be a list of row objects"),
        (
            {"destination_table": "jobs", "data": []},
            "a batch must hold 1 to 1000 rows, got 0; nothing was stored",
        ),
        (
            {"destination_table": "jobs", "data": [{"id": i, "job": "x"} for i in range(1, 1002)]},
            "a batch must hold 1 to 1000 rows, got 1001; nothing was stored",
        ),
        (
            [{"destination_table": "jobs", "data": [{"id": 1, "job": "x"}]}],
            "the body must be a JSON object with 'destination_table' and 'data'",
        ),
        ("null", "the body must be a JSON object with 'destination_table' and 'data'"),
    ],
    ids=[
        "unknown-table",
        "no-table",
        "table-not-a-string",
        "data-object",
        "no-data",
        "zero-rows",
        "1001-rows",
        "body-list",
        "body-null",
    ],
)
def test_bad_request_is_400_and_stores_nothing(
    client, tokens, refs, body: Any, message: str
) -> None:
    response = post(client, tokens, body)
    assert response.status_code == 400
    assert response.json() == {"message": message}
    assert nothing_stored()
    assert Job.objects.count() == 2


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"",
        b'{"destination_table": "jobs", "data": [{"id": NaN, "job": "x"}]}',
        b'{"destination_table": "jobs", "data": [{"id": 1, "job": "x", "n": Infinity}]}',
        b"\xff\xfe{}",
        b"[" * 100_000,
    ],
    ids=["malformed", "empty", "nan", "infinity", "not-utf8", "too-deep"],
)
def test_malformed_json_is_400_and_stores_nothing(client, tokens, refs, raw: bytes) -> None:
    response = post(client, tokens, raw)
    assert response.status_code == 400
    assert response.json()["message"].startswith("the body is not valid JSON")
    assert nothing_stored()
    assert Job.objects.count() == 2


def test_insert_with_a_read_token_is_403(client, tokens, refs) -> None:
    response = post(
        client, tokens, {"destination_table": "jobs", "data": [{"id": 5, "job": "x"}]}, "read"
    )
    assert response.status_code == 403
    assert response.json() == {"message": "this operation needs the 'write' scope"}
    assert nothing_stored()
    assert Job.objects.count() == 2


def test_insert_without_a_token_is_401(client, refs) -> None:
    response = client.post(
        "/api/employees/",
        data=json.dumps({"destination_table": "jobs", "data": [{"id": 5, "job": "x"}]}),
        content_type="application/json",
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="roster"'
    assert nothing_stored()


@pytest.mark.parametrize("scope", ["write", "admin"])
def test_insert_with_write_or_admin_token(client, tokens, refs, scope: str) -> None:
    response = post(
        client, tokens, {"destination_table": "jobs", "data": [{"id": 5, "job": "Five"}]}, scope
    )
    assert response.status_code == 200
    assert Job.objects.get(id=5).job == "Five"


def test_insert_refuses_get(client, tokens, db) -> None:
    assert get(client, tokens, "/api/employees/", "admin").status_code == 405


@override_settings(MAX_REQUEST_BYTES=1000)
def test_body_larger_than_the_limit_is_413(client, tokens, refs) -> None:
    rows = [{"id": i, "job": f"Job number {i}"} for i in range(10, 60)]
    response = post(client, tokens, {"destination_table": "jobs", "data": rows})
    assert response.status_code == 413
    assert response.json()["message"] == "the request body must be at most 1000 bytes"
    assert nothing_stored()
    assert Job.objects.count() == 2
