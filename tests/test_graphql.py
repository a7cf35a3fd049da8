"""The GraphQL API: paging, filters, query counts, insertBatch, the rejection log and limits."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from backend.models import Batch, Department, HiredEmployee, Job, Rejection

PAGE = """
query Page($first: Int!, $after: String) {
  %s(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id }
  }
}
"""

HIRED_PAGE = """
query Hired($first: Int, $after: String, $filter: HiredEmployeeFilter) {
  hiredEmployees(first: $first, after: $after, filter: $filter) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id }
  }
}
"""

INSERT = """
mutation Insert($input: BatchInput!, $atomic: Boolean) {
  insertBatch(input: $input, atomic: $atomic) {
    table received inserted rejected batchId
    rejections { index id reasons { field code message } }
  }
}
"""

REJECTIONS = """
query Log($table: Table, $batchId: ID, $first: Int, $after: String) {
  rejections(table: $table, batchId: $batchId, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id source table batchId index rowId raw reasons { field code message } }
  }
}
"""

MODELS = {"departments": Department, "jobs": Job, "hiredEmployees": HiredEmployee}


@pytest.fixture
def refs(db: None) -> None:
    """Three departments and three jobs, enough for hired employees to point at."""
    Department.objects.bulk_create(Department(id=i, department=f"Dept {i}") for i in (1, 2, 3))
    Job.objects.bulk_create(Job(id=i, job=f"Job {i}") for i in (1, 2, 3))


def employee(row_id: int, **changes: Any) -> dict[str, Any]:
    """A valid hiredEmployees row input (GraphQL field names), with ``changes`` applied."""
    row = {
        "id": row_id,
        "name": f"Employee {row_id}",
        "datetime": "2021-07-27T16:02:08Z",
        "departmentId": 1,
        "jobId": 1,
    }
    row.update(changes)
    return row


def walk(gql, field: str, first: int) -> tuple[list[int], int, int]:
    """Follow endCursor until hasNextPage is false: (ids seen, pages fetched, totalCount)."""
    ids: list[int] = []
    after = None
    pages = 0
    total = -1
    while True:
        answer = gql(PAGE % field, {"first": first, "after": after}, scope="read")
        assert answer.errors == []
        page = answer.data[field]
        pages += 1
        total = page["totalCount"]
        ids.extend(node["id"] for node in page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            return ids, pages, total
        assert page["pageInfo"]["endCursor"] is not None
        after = page["pageInfo"]["endCursor"]


def hired_ids(gql, filter: dict[str, Any]) -> tuple[list[int], int]:
    answer = gql(HIRED_PAGE, {"first": 1000, "filter": filter}, scope="read")
    assert answer.errors == []
    page = answer.data["hiredEmployees"]
    assert page["pageInfo"]["hasNextPage"] is False
    return [node["id"] for node in page["nodes"]], page["totalCount"]


# --- reading: paging -------------------------------------------------------------------------


@pytest.mark.parametrize("first", [7, 1000])
@pytest.mark.parametrize("field", ["departments", "jobs", "hiredEmployees"])
def test_paging_walks_every_row_once_in_id_order(gql, sample_data, field: str, first: int) -> None:
    expected = list(MODELS[field].objects.order_by("id").values_list("id", flat=True))
    assert len(expected) == {"departments": 12, "jobs": 183, "hiredEmployees": 1929}[field]

    ids, pages, total = walk(gql, field, first)

    assert ids == expected
    assert total == len(expected)
    assert pages == -(-len(expected) // first)


def test_last_page_reports_no_next_page_and_keeps_the_cursor(gql, sample_data) -> None:
    answer = gql(PAGE % "departments", {"first": 12, "after": None}, scope="read")
    page = answer.data["departments"]
    assert [n["id"] for n in page["nodes"]] == list(range(1, 13))
    assert page["pageInfo"]["hasNextPage"] is False

    after_last = gql(PAGE % "departments", {"first": 5, "after": page["pageInfo"]["endCursor"]})
    assert after_last.data["departments"] == {
        "totalCount": 12,
        "pageInfo": {"hasNextPage": False, "endCursor": page["pageInfo"]["endCursor"]},
        "nodes": [],
    }


def test_first_zero_returns_no_nodes_but_the_total(gql, sample_data) -> None:
    answer = gql(PAGE % "jobs", {"first": 0}, scope="read")
    assert answer.data["jobs"] == {
        "totalCount": 183,
        "pageInfo": {"hasNextPage": True, "endCursor": None},
        "nodes": [],
    }


def test_hired_employee_nodes_carry_their_department_and_job(gql, sample_data) -> None:
    answer = gql(
        "{ hiredEmployees(first: 1) { nodes { id name datetime departmentId jobId"
        " department { id department } job { id job } } } }",
        scope="read",
    )
    row = HiredEmployee.objects.select_related("department", "job").get(id=1)
    assert answer.data["hiredEmployees"]["nodes"] == [
        {
            "id": 1,
            "name": "Harold Vogt",
            "datetime": "2021-11-07T02:48:42+00:00",
            "departmentId": 2,
            "jobId": 96,
            "department": {"id": 2, "department": row.department.department},
            "job": {"id": 96, "job": row.job.job},
        }
    ]


@pytest.mark.parametrize("first", [1001, -1, 100000])
def test_first_out_of_range_is_bad_user_input(gql, db, first: int) -> None:
    answer = gql(PAGE % "hiredEmployees", {"first": first}, scope="read")
    assert answer.status == 200
    assert answer.data is None
    assert answer.codes == ["BAD_USER_INPUT"]
    assert "'first' must be between 0 and 1000" in answer.errors[0]["message"]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!",
        base64.urlsafe_b64encode(b"roster:v1:abc").decode(),
        base64.urlsafe_b64encode(b"other:v1:5").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_garbage_cursor_is_bad_user_input(gql, db, cursor: str) -> None:
    answer = gql(PAGE % "jobs", {"first": 5, "after": cursor}, scope="read")
    assert answer.data is None
    assert answer.codes == ["BAD_USER_INPUT"]
    assert "'after' is not a cursor" in answer.errors[0]["message"]


@pytest.mark.parametrize("row_id", [10**30, -(10**30), 2**31])
def test_cursor_beyond_the_id_range_gives_an_empty_page_not_a_crash(gql, refs, row_id: int) -> None:
    cursor = base64.urlsafe_b64encode(f"roster:v1:{row_id}".encode()).decode()
    answer = gql(PAGE % "jobs", {"first": 5, "after": cursor}, scope="read")
    nodes = answer.data["jobs"]["nodes"]
    assert answer.errors == []
    assert [n["id"] for n in nodes] == ([1, 2, 3] if row_id < 0 else [])


# --- reading: filters ------------------------------------------------------------------------


def test_filter_by_id_range(gql, sample_data) -> None:
    ids, total = hired_ids(gql, {"id": {"gte": 100, "lte": 150}})
    expected = list(
        HiredEmployee.objects.filter(id__gte=100, id__lte=150).values_list("id", flat=True)
    )
    assert ids == expected
    assert total == len(expected)
    assert ids[0] >= 100 and ids[-1] <= 150


def test_filter_departments_and_jobs_by_id_range(gql, sample_data) -> None:
    answer = gql(
        "{ departments(filter: {id: {gte: 3, lte: 5}}) { totalCount nodes { id } }"
        "  jobs(filter: {id: {lte: 4}}) { totalCount nodes { id } } }",
        scope="read",
    )
    assert answer.data == {
        "departments": {"totalCount": 3, "nodes": [{"id": 3}, {"id": 4}, {"id": 5}]},
        "jobs": {"totalCount": 4, "nodes": [{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}]},
    }


def test_filter_by_department(gql, sample_data) -> None:
    ids, total = hired_ids(gql, {"departmentId": 5})
    expected = list(HiredEmployee.objects.filter(department_id=5).values_list("id", flat=True))
    assert 0 < len(expected) < 1000
    assert (ids, total) == (expected, len(expected))


def test_filter_by_job(gql, sample_data) -> None:
    ids, total = hired_ids(gql, {"jobId": 96})
    expected = list(HiredEmployee.objects.filter(job_id=96).values_list("id", flat=True))
    assert 1 in expected
    assert (ids, total) == (expected, len(expected))


def test_filter_by_hire_date_range(gql, sample_data) -> None:
    filter = {"hiredBetween": {"gte": "2021-03-01T00:00:00Z", "lt": "2021-04-01T00:00:00Z"}}
    ids, total = hired_ids(gql, filter)
    expected = list(
        HiredEmployee.objects.filter(
            datetime__gte=datetime(2021, 3, 1, tzinfo=UTC),
            datetime__lt=datetime(2021, 4, 1, tzinfo=UTC),
        ).values_list("id", flat=True)
    )
    assert 0 < len(expected) < 1000
    assert (ids, total) == (expected, len(expected))


def test_combined_filters_page_with_first_7(gql, sample_data) -> None:
    filter = {"departmentId": 5, "hiredBetween": {"gte": "2021-06-01T00:00:00Z"}}
    expected = list(
        HiredEmployee.objects.filter(
            department_id=5, datetime__gte=datetime(2021, 6, 1, tzinfo=UTC)
        ).values_list("id", flat=True)
    )
    seen: list[int] = []
    after = None
    while True:
        page = gql(HIRED_PAGE, {"first": 7, "after": after, "filter": filter}).data
        page = page["hiredEmployees"]
        assert page["totalCount"] == len(expected)
        seen.extend(node["id"] for node in page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(expected) > 7
    assert seen == expected


def test_filter_matching_nothing(gql, sample_data) -> None:
    assert hired_ids(gql, {"departmentId": 999}) == ([], 0)


# --- reading: SQL queries --------------------------------------------------------------------


def test_query_count_does_not_grow_with_the_page_size(gql, sample_data) -> None:
    query = """
    query($n: Int!) {
      hiredEmployees(first: $n) {
        totalCount
        nodes { id name department { id department } job { id job } }
      }
    }
    """
    # the token's first use looks it up and records it; the next ones find it in the process
    gql(query, {"n": 1}, scope="read")
    counts = {}
    for n in (10, 1000):
        with CaptureQueriesContext(connection) as queries:
            answer = gql(query, {"n": n}, scope="read")
        assert len(answer.data["hiredEmployees"]["nodes"]) == n
        counts[n] = len(queries.captured_queries)
    # the page (with departments and jobs joined), and the count
    assert counts == {10: 2, 1000: 2}


def test_a_count_alone_fetches_no_page(gql, sample_data) -> None:
    """``{ totalCount }`` reads no page: the count, nothing else (the token is cached after its
    first use). Any other selection (nodes, pageInfo, a fragment) still fetches the page, and a
    bad cursor is the same error either way."""
    gql("{ __typename }", scope="read")  # the token's first use also records last_used_at
    rows = HiredEmployee.objects.count()
    for selection, expected in (
        ("totalCount", 1),
        ("__typename totalCount", 1),
        ("totalCount pageInfo { hasNextPage }", 2),
        ("...F", 2),
    ):
        fragment = " fragment F on HiredEmployeeConnection { totalCount }" * ("F" in selection)
        with CaptureQueriesContext(connection) as queries:
            answer = gql(f"{{ hiredEmployees(first: 5) {{ {selection} }} }}{fragment}",
                         scope="read")  # fmt: skip
        assert answer.errors == [], answer.errors
        assert answer.data["hiredEmployees"]["totalCount"] == rows
        assert len(queries.captured_queries) == expected, selection
    for selection in ("totalCount", "nodes { id }"):
        answer = gql(f'{{ hiredEmployees(after: "nope") {{ {selection} }} }}', scope="read")
        assert answer.data is None
        assert "cursor" in answer.errors[0]["message"]


# --- insertBatch -----------------------------------------------------------------------------


def test_insert_batch_with_two_tables_is_an_error_and_stores_nothing(gql, refs) -> None:
    answer = gql(
        'mutation { insertBatch(input: {departments: [{id: 9, department: "Nine"}],'
        ' jobs: [{id: 9, job: "Nine"}]}) { inserted } }'
    )
    assert answer.data is None
    assert "must specify exactly one key" in answer.errors[0]["message"]
    assert not Department.objects.filter(id=9).exists()
    assert not Job.objects.filter(id=9).exists()
    assert Batch.objects.count() == 0


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (
            {"departments": [{"id": 9, "department": "N"}], "jobs": [{"id": 9, "job": "N"}]},
            "must specify exactly one key",
        ),
        ({}, "must specify exactly one key"),
        ({"jobs": None}, "Value for member field 'jobs' must be non-null"),
    ],
)
def test_insert_batch_input_needs_exactly_one_table_in_variables(
    gql, refs, batch: dict[str, Any], message: str
) -> None:
    answer = gql(INSERT, {"input": batch})
    assert answer.data is None
    assert len(answer.errors) == 1
    assert message in answer.errors[0]["message"]
    assert Batch.objects.count() == 0
    assert Job.objects.count() == 3


def test_mixed_batch_stores_valid_rows_and_reports_each_bad_one(gql, refs) -> None:
    HiredEmployee.objects.create(
        id=50,
        name="Already Here",
        datetime=datetime(2020, 1, 1, tzinfo=UTC),
        department_id=1,
        job_id=1,
    )
    rows = [
        employee(1),
        employee(2, departmentId=99),
        employee(3, datetime="yesterday"),
        employee(4, jobId=2, departmentId=3),
        employee(1, name="Same Id"),
        employee(-5, name="   "),
        employee(50),
    ]
    answer = gql(INSERT, {"input": {"hiredEmployees": rows}})

    assert answer.errors == []
    result = answer.data["insertBatch"]
    assert result["table"] == "HIRED_EMPLOYEES"
    assert (result["received"], result["inserted"], result["rejected"]) == (7, 2, 5)
    assert result["rejections"] == [
        {
            "index": 1,
            "id": 2,
            "reasons": [
                {
                    "field": "department_id",
                    "code": "unknown_reference",
                    "message": "department 99 does not exist",
                }
            ],
        },
        {
            "index": 2,
            "id": 3,
            "reasons": [
                {
                    "field": "datetime",
                    "code": "invalid_datetime",
                    "message": "must be an ISO 8601 date and time such as 2021-07-27T16:02:08Z,"
                    " got 'yesterday'",
                }
            ],
        },
        {
            "index": 4,
            "id": 1,
            "reasons": [
                {
                    "field": "id",
                    "code": "duplicate_in_batch",
                    "message": "id 1 repeats row 0 of this batch",
                }
            ],
        },
        {
            "index": 5,
            "id": -5,
            "reasons": [
                {
                    "field": "id",
                    "code": "not_positive",
                    "message": "must be a positive integer, got -5",
                },
                {"field": "name", "code": "required", "message": "is required"},
            ],
        },
        {
            "index": 6,
            "id": 50,
            "reasons": [
                {
                    "field": "id",
                    "code": "duplicate",
                    "message": "id 50 already exists in hired_employees",
                }
            ],
        },
    ]
    stored = {e.id: e for e in HiredEmployee.objects.all()}
    assert sorted(stored) == [1, 4, 50]
    assert stored[1].name == "Employee 1"
    assert (stored[4].department_id, stored[4].job_id) == (3, 2)
    assert stored[50].name == "Already Here"

    batch = Batch.objects.get()
    assert str(batch.id) == result["batchId"]
    assert (batch.source, batch.table, batch.status) == ("graphql", "hired_employees", "completed")
    assert (batch.received, batch.inserted, batch.rejected, batch.atomic) == (7, 2, 5, False)
    logged = list(Rejection.objects.filter(batch=batch).order_by("position"))
    assert [(r.position, r.row_id, r.source) for r in logged] == [
        (1, 2, "graphql"),
        (2, 3, "graphql"),
        (4, 1, "graphql"),
        (5, -5, "graphql"),
        (6, 50, "graphql"),
    ]
    assert logged[0].raw == {
        "id": 2,
        "name": "Employee 2",
        "datetime": "2021-07-27T16:02:08Z",
        "department_id": 99,
        "job_id": 1,
    }


def test_atomic_batch_with_one_bad_row_inserts_nothing(gql, refs) -> None:
    rows = [employee(1), employee(2, jobId=77), employee(3)]
    answer = gql(INSERT, {"input": {"hiredEmployees": rows}, "atomic": True})

    result = answer.data["insertBatch"]
    assert (result["received"], result["inserted"], result["rejected"]) == (3, 0, 3)
    aborted = [
        {
            "field": None,
            "code": "batch_aborted",
            "message": "not inserted: the atomic batch has invalid rows",
        }
    ]
    assert result["rejections"] == [
        {"index": 0, "id": 1, "reasons": aborted},
        {
            "index": 1,
            "id": 2,
            "reasons": [
                {"field": "job_id", "code": "unknown_reference", "message": "job 77 does not exist"}
            ],
        },
        {"index": 2, "id": 3, "reasons": aborted},
    ]
    assert HiredEmployee.objects.count() == 0
    batch = Batch.objects.get()
    assert (batch.status, batch.atomic, batch.inserted, batch.rejected) == ("rejected", True, 0, 3)
    assert Rejection.objects.filter(batch=batch).count() == 3


def test_atomic_batch_of_valid_rows_inserts_them_all(gql, refs) -> None:
    answer = gql(INSERT, {"input": {"hiredEmployees": [employee(1), employee(2)]}, "atomic": True})
    result = answer.data["insertBatch"]
    assert (result["inserted"], result["rejected"], result["rejections"]) == (2, 0, [])
    assert list(HiredEmployee.objects.values_list("id", flat=True)) == [1, 2]
    assert Batch.objects.get().status == "completed"


def test_atomic_batch_with_an_existing_id_inserts_nothing(gql, refs) -> None:
    gql(INSERT, {"input": {"jobs": [{"id": 10, "job": "Ten"}]}})
    answer = gql(
        INSERT,
        {
            "input": {"jobs": [{"id": 11, "job": "Eleven"}, {"id": 10, "job": "Again"}]},
            "atomic": True,
        },
    )
    result = answer.data["insertBatch"]
    assert (result["inserted"], result["rejected"]) == (0, 2)
    assert [r["reasons"][0]["code"] for r in result["rejections"]] == ["batch_aborted", "duplicate"]
    assert sorted(Job.objects.values_list("id", flat=True)) == [1, 2, 3, 10]
    assert Job.objects.get(id=10).job == "Ten"


@pytest.mark.parametrize("count", [0, 1001])
def test_batch_size_out_of_range_is_bad_user_input_and_stores_nothing(
    gql, refs, count: int
) -> None:
    rows = [employee(i) for i in range(1, count + 1)]
    answer = gql(INSERT, {"input": {"hiredEmployees": rows}})
    assert answer.data is None
    assert answer.codes == ["BAD_USER_INPUT"]
    assert answer.errors[0]["message"] == (
        f"a batch must hold 1 to 1000 rows, got {count}; nothing was stored"
    )
    assert HiredEmployee.objects.count() == 0
    assert Batch.objects.count() == 0
    assert Rejection.objects.count() == 0


def test_empty_batch_written_inline_is_bad_user_input(gql, refs) -> None:
    answer = gql("mutation { insertBatch(input: {jobs: []}) { inserted } }")
    assert (answer.data, answer.codes) == (None, ["BAD_USER_INPUT"])
    assert Batch.objects.count() == 0


@pytest.mark.parametrize("count", [1, 1000])
def test_batch_of_1_or_1000_rows_in_variables_is_inserted(gql, refs, count: int) -> None:
    rows = [employee(i, departmentId=i % 3 + 1) for i in range(1, count + 1)]
    answer = gql(INSERT, {"input": {"hiredEmployees": rows}})
    result = answer.data["insertBatch"]
    assert (result["received"], result["inserted"], result["rejected"]) == (count, count, 0)
    assert HiredEmployee.objects.count() == count
    assert HiredEmployee.objects.filter(department_id=2).count() == (count + 2) // 3


@pytest.mark.parametrize("count", [1, 1000])
def test_batch_of_1_or_1000_rows_written_inline_is_inserted(gql, refs, count: int) -> None:
    rows = ", ".join(
        f'{{id: {i}, name: "Person {i}", datetime: "2021-07-27T16:02:08Z",'
        f" departmentId: 2, jobId: 3}}"
        for i in range(1, count + 1)
    )
    answer = gql(
        f"mutation {{ insertBatch(input: {{hiredEmployees: [{rows}]}}) {{ inserted rejected }} }}"
    )
    assert answer.errors == []
    assert answer.data == {"insertBatch": {"inserted": count, "rejected": 0}}
    assert HiredEmployee.objects.filter(department_id=2, job_id=3).count() == count
    assert HiredEmployee.objects.get(id=count).name == f"Person {count}"


def test_row_with_every_field_null_is_rejected_as_required(gql, refs) -> None:
    answer = gql(
        "mutation { insertBatch(input: {hiredEmployees: [{id: null, name: null, datetime: null,"
        " departmentId: null, jobId: null}, {}]}) {"
        " received inserted rejected rejections { index id reasons { field code message } } } }"
    )
    assert answer.status == 200
    assert answer.errors == []
    required = [
        {"field": name, "code": "required", "message": "is required"}
        for name in ("id", "name", "datetime", "department_id", "job_id")
    ]
    assert answer.data["insertBatch"] == {
        "received": 2,
        "inserted": 0,
        "rejected": 2,
        "rejections": [
            {"index": 0, "id": None, "reasons": required},
            {"index": 1, "id": None, "reasons": required},
        ],
    }
    assert HiredEmployee.objects.count() == 0
    (entry,) = Rejection.objects.all()  # the same row twice: logged once, received twice
    assert entry.attempts == 2


def test_departments_and_jobs_batches(gql, db) -> None:
    first = gql(INSERT, {"input": {"departments": [{"id": 1, "department": "  Sales  "}]}})
    second = gql(INSERT, {"input": {"jobs": [{"id": 1, "job": "Clerk"}, {"id": 2, "job": ""}]}})
    assert first.data["insertBatch"]["table"] == "DEPARTMENTS"
    assert first.data["insertBatch"]["inserted"] == 1
    assert Department.objects.get(id=1).department == "Sales"
    assert second.data["insertBatch"]["table"] == "JOBS"
    assert second.data["insertBatch"]["rejections"] == [
        {
            "index": 1,
            "id": 2,
            "reasons": [{"field": "job", "code": "required", "message": "is required"}],
        }
    ]
    assert list(Job.objects.values_list("id", "job")) == [(1, "Clerk")]


def test_wrong_graphql_types_fail_validation_and_store_nothing(gql, refs) -> None:
    answer = gql(INSERT, {"input": {"jobs": [{"id": "seven", "job": "Seven"}]}})
    assert answer.data is None
    assert "Int cannot represent non-integer value" in answer.errors[0]["message"]
    assert Batch.objects.count() == 0
    assert Job.objects.count() == 3


# --- the rejection log -----------------------------------------------------------------------


def test_rejections_filter_by_table_and_batch(gql, refs) -> None:
    jobs = gql(INSERT, {"input": {"jobs": [{"id": 0, "job": "Zero"}, {"id": 5, "job": ""}]}})
    hired = gql(INSERT, {"input": {"hiredEmployees": [employee(i, jobId=9) for i in (1, 2, 3)]}})
    jobs_batch = jobs.data["insertBatch"]["batchId"]
    hired_batch = hired.data["insertBatch"]["batchId"]

    everything = gql(REJECTIONS, {}, scope="read").data["rejections"]
    assert everything["totalCount"] == "5"  # a BigInt, as the log's index below
    assert [n["table"] for n in everything["nodes"]] == ["JOBS"] * 2 + ["HIRED_EMPLOYEES"] * 3

    only_jobs = gql(REJECTIONS, {"table": "JOBS"}, scope="read").data["rejections"]
    assert only_jobs["totalCount"] == "2"
    assert only_jobs["nodes"][0] == {
        "id": only_jobs["nodes"][0]["id"],
        "source": "graphql",
        "table": "JOBS",
        "batchId": jobs_batch,
        "index": "0",
        "rowId": 0,
        "raw": {"id": 0, "job": "Zero"},
        "reasons": [
            {"field": "id", "code": "not_positive", "message": "must be a positive integer, got 0"}
        ],
    }

    by_batch = gql(REJECTIONS, {"batchId": hired_batch}, scope="read").data["rejections"]
    assert by_batch["totalCount"] == "3"
    assert [(n["index"], n["rowId"], n["batchId"]) for n in by_batch["nodes"]] == [
        ("0", 1, hired_batch),
        ("1", 2, hired_batch),
        ("2", 3, hired_batch),
    ]

    mismatch = gql(REJECTIONS, {"table": "JOBS", "batchId": hired_batch}).data["rejections"]
    assert (mismatch["totalCount"], mismatch["nodes"]) == ("0", [])


def test_rejections_page_with_first_and_after(gql, refs) -> None:
    gql(INSERT, {"input": {"jobs": [{"id": i, "job": ""} for i in range(10, 15)]}})
    expected = list(Rejection.objects.order_by("id").values_list("position", flat=True))
    assert expected == [0, 1, 2, 3, 4]

    seen: list[int] = []
    after = None
    for _ in range(3):
        page = gql(REJECTIONS, {"first": 2, "after": after}).data["rejections"]
        assert page["totalCount"] == "5"
        seen.extend(int(n["index"]) for n in page["nodes"])
        after = page["pageInfo"]["endCursor"]
    assert page["pageInfo"]["hasNextPage"] is False
    assert seen == expected


@pytest.mark.parametrize("batch_id", ["nope", "1234", ""])
def test_rejections_with_a_bad_batch_id_is_bad_user_input(gql, db, batch_id: str) -> None:
    answer = gql(REJECTIONS, {"batchId": batch_id}, scope="read")
    assert answer.data is None
    assert answer.codes == ["BAD_USER_INPUT"]
    assert "'batchId' is not a batch id" in answer.errors[0]["message"]


def test_rejections_with_an_unknown_batch_id_is_empty(gql, db) -> None:
    answer = gql(REJECTIONS, {"batchId": "00000000-0000-4000-8000-000000000000"})
    assert answer.data["rejections"]["totalCount"] == "0"
    assert answer.data["rejections"]["nodes"] == []


def test_rejections_from_the_sample_files_are_readable(gql, sample_data) -> None:
    answer = gql(REJECTIONS, {"table": "HIRED_EMPLOYEES", "first": 1}, scope="read")
    page = answer.data["rejections"]
    assert page["totalCount"] == "70"
    first = page["nodes"][0]
    assert (first["source"], first["table"], first["index"], first["rowId"]) == (
        "csv",
        "HIRED_EMPLOYEES",
        "2",  # the line number, a BigInt: a file need not stop at 2**31 lines
        2,
    )
    assert page["nodes"][0]["reasons"] == [
        {"field": "job_id", "code": "required", "message": "is required"}
    ]


# --- GraphiQL and limits ---------------------------------------------------------------------


def test_graphiql_page_loads_in_a_browser(client: Client, db) -> None:
    response = client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "graphiql" in response.content.decode().lower()


@override_settings(GRAPHQL_MAX_DEPTH=2)
def test_query_deeper_than_the_limit_is_refused(gql, refs) -> None:
    answer = gql("{ hiredEmployees { nodes { department { id } } } }", scope="read")
    assert answer.data is None
    assert [e["message"] for e in answer.errors] == [
        "'anonymous' exceeds maximum operation depth of 2"
    ]


def test_deep_query_is_refused_at_the_default_limit(gql, db) -> None:
    query = "{ hiredEmployees { nodes { department { id { a { b { c { d { e { f } } } } } } } } } }"
    answer = gql(query, scope="read")
    assert answer.data is None
    assert "'anonymous' exceeds maximum operation depth of 8" in [
        e["message"] for e in answer.errors
    ]


def test_too_many_aliases_are_refused(gql, refs) -> None:
    query = "{ " + " ".join(f"a{i}: jobs(first: 1) {{ totalCount }}" for i in range(16)) + " }"
    answer = gql(query, scope="read")
    assert answer.data is None
    assert [e["message"] for e in answer.errors] == ["16 aliases found. Allowed: 15"]


def test_aliases_up_to_the_limit_are_allowed(gql, refs) -> None:
    query = "{ " + " ".join(f"a{i}: jobs(first: 1) {{ totalCount }}" for i in range(15)) + " }"
    answer = gql(query, scope="read")
    assert answer.errors == []
    assert answer.data == {f"a{i}": {"totalCount": 3} for i in range(15)}


@override_settings(GRAPHQL_MAX_TOKENS=50)
def test_too_many_tokens_are_refused(gql, refs) -> None:
    query = "{ " + " ".join(f"a{i}: jobs(first: 1) {{ totalCount }}" for i in range(10)) + " }"
    answer = gql(query, scope="read")
    assert answer.data is None
    assert answer.errors[0]["message"] == (
        "Syntax Error: Document contains more than 50 tokens. Parsing aborted."
    )
    assert gql("{ jobs { totalCount } }", scope="read").data == {"jobs": {"totalCount": 3}}


@override_settings(MAX_REQUEST_BYTES=1000)
def test_body_larger_than_the_limit_is_413_and_stores_nothing(gql, refs) -> None:
    rows = [{"id": i, "job": f"Job number {i}"} for i in range(10, 60)]
    assert len(json.dumps({"query": INSERT, "variables": {"input": {"jobs": rows}}})) > 1000
    answer = gql(INSERT, {"input": {"jobs": rows}})
    assert answer.status == 413
    assert answer.codes == ["PAYLOAD_TOO_LARGE"]
    assert answer.errors[0]["message"] == "the request body must be at most 1000 bytes"
    assert Job.objects.count() == 3
    assert Batch.objects.count() == 0


def test_json_nested_too_deeply_is_a_bad_request(client: Client, tokens) -> None:
    response = client.post(
        "/graphql",
        data="[" * 100_000,
        content_type="application/json",
        headers={"Authorization": f"Bearer {tokens['read']}"},
    )
    assert response.status_code == 400
    assert b"Unable to parse request body as JSON" in response.content


def test_errors_carry_no_stacktrace(gql, db, settings) -> None:
    assert settings.DEBUG is False
    answers = [
        gql(PAGE % "jobs", {"first": 1001}),
        gql("{ jobs { nope } }"),
        gql(INSERT, {"input": {"jobs": []}}),
        gql("{ " + "a: jobs { totalCount } " * 16 + "}"),
    ]
    for answer in answers:
        assert answer.errors
        text = json.dumps(answer.body)
        assert "stacktrace" not in text.lower()
        assert "Traceback" not in text
        for error in answer.errors:
            assert set(error.get("extensions", {})) <= {"code"}


def test_unexpected_errors_are_masked(gql, refs, monkeypatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals at /srv/roster/db.py")

    monkeypatch.setattr("graph.schema.paginate", broken)
    answer = gql(PAGE % "jobs", {"first": 1})
    assert answer.status == 200
    assert answer.data is None
    assert answer.errors[0]["message"] == "Unexpected error."
    assert "secret" not in json.dumps(answer.body)
    assert "Traceback" not in json.dumps(answer.body)
