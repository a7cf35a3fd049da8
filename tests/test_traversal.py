"""Walking the graph (issue 13): lookups by id, each department's and job's hires as their own
connection, orderings with keyset cursors, name filters, and the indexes behind them."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backend.models import Department, HiredEmployee, Job
from graph import selectors
from graph.pagination import OrderDirection, Ordering, encode_cursor, page_rows
from graph.types import HiredEmployeeFilter, TextFilter

NESTED = """
query Nested($first: Int!, $departments: Int!) {
  departments(first: $departments) {
    nodes {
      id
      hiredEmployees(first: $first) { totalCount nodes { id departmentId job { job } } }
    }
  }
}
"""

ORDERED = """
query Ordered($first: Int!, $after: String, $orderBy: HiredEmployeeOrder,
              $filter: HiredEmployeeFilter) {
  hiredEmployees(first: $first, after: $after, orderBy: $orderBy, filter: $filter) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id name datetime }
  }
}
"""

DEPARTMENT_HIRES = """
query OneDepartment($id: Int!, $first: Int!, $after: String, $orderBy: HiredEmployeeOrder) {
  department(id: $id) {
    department
    hiredEmployees(first: $first, after: $after, orderBy: $orderBy) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes { id departmentId }
    }
  }
}
"""

START = datetime(2021, 1, 1, tzinfo=UTC)


@pytest.fixture
def hires(db: None) -> list[HiredEmployee]:
    """40 hires over 3 departments and 2 jobs, with tied times and tied names, ids shuffled
    against both, so that every ordering needs its id tie-break."""
    Department.objects.bulk_create(Department(id=i, department=f"Dept {i}") for i in (1, 2, 3))
    Job.objects.bulk_create(Job(id=i, job=f"Job {i}") for i in (1, 2))
    names = ["Ana", "bob", "Bob", "Cleo", "ana", "Zed", "100% Sure", "A_B"]
    rows = [
        HiredEmployee(
            id=(row * 7) % 41,  # 7, 14, ... : ids unrelated to the other columns
            name=names[row % len(names)],
            datetime=START + timedelta(hours=row % 5),
            department_id=1 + row % 3,
            job_id=1 + row % 2,
        )
        for row in range(1, 41)
    ]
    return HiredEmployee.objects.bulk_create(rows)


def expected(rows: list[HiredEmployee], column: str, descending: bool) -> list[int]:
    """Ids in (column, id) order, as the databases here compare (code points: C and binary)."""
    return [
        row.id
        for row in sorted(rows, key=lambda row: (getattr(row, column), row.id), reverse=descending)
    ]


def walk(gql, query: str, variables: dict[str, Any], path: list[str]) -> list[dict[str, Any]]:
    """Every node of a connection, page by page, following endCursor."""
    nodes: list[dict[str, Any]] = []
    after = variables.get("after")
    for _ in range(100):
        answer = gql(query, {**variables, "after": after}, scope="read")
        assert answer.errors == []
        page = answer.data
        for key in path:
            page = page[key]
        nodes += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]
    raise AssertionError("more than 100 pages")


# --- lookups by id ---------------------------------------------------------------------------


def test_lookups_by_id_answer_the_row_or_null(gql, hires) -> None:
    answer = gql(
        "{ department(id: 2) { id department } job(id: 1) { job } "
        "hiredEmployee(id: 14) { id name department { department } job { job } } "
        "noDepartment: department(id: 99) { id } noJob: job(id: -1) { id } "
        "noHire: hiredEmployee(id: 2147483647) { id } }",
        scope="read",
    )
    hire = HiredEmployee.objects.select_related("department", "job").get(id=14)
    assert answer.errors == []
    assert answer.data == {
        "department": {"id": 2, "department": "Dept 2"},
        "job": {"job": "Job 1"},
        "hiredEmployee": {
            "id": 14,
            "name": hire.name,
            "department": {"department": hire.department.department},
            "job": {"job": hire.job.job},
        },
        "noDepartment": None,
        "noJob": None,
        "noHire": None,
    }


def test_lookups_need_a_token(gql, hires) -> None:
    answer = gql("{ department(id: 1) { id } }", scope=None)
    assert answer.status == 401
    assert answer.codes == ["UNAUTHENTICATED"]


# --- nested connections ----------------------------------------------------------------------


def test_each_department_pages_its_own_hires_with_its_own_count(gql, sample_data) -> None:
    answer = gql(NESTED, {"first": 3, "departments": 100}, scope="read")
    assert answer.errors == []
    departments = answer.data["departments"]["nodes"]
    assert [d["id"] for d in departments] == list(range(1, 13))
    for department in departments:
        rows = HiredEmployee.objects.filter(department_id=department["id"]).order_by("id")
        first = list(rows.select_related("job")[:3])
        assert department["hiredEmployees"] == {
            "totalCount": rows.count(),
            "nodes": [{"id": r.id, "departmentId": department["id"], "job": {"job": r.job.job}}
                      for r in first],
        }  # fmt: skip


def test_a_departments_hires_walk_to_the_end_in_every_order(gql, hires) -> None:
    for field, column in (("ID", "id"), ("DATETIME", "datetime"), ("NAME", "name")):
        for direction in ("ASC", "DESC"):
            nodes = walk(
                gql,
                DEPARTMENT_HIRES,
                {"id": 2, "first": 4, "orderBy": {"field": field, "direction": direction}},
                ["department", "hiredEmployees"],
            )
            mine = [row for row in hires if row.department_id == 2]
            assert [n["id"] for n in nodes] == expected(mine, column, direction == "DESC")
            assert {n["departmentId"] for n in nodes} == {2}


def test_jobs_list_their_hires_and_aliases_keep_their_own_arguments(gql, hires) -> None:
    answer = gql(
        "{ jobs { nodes { id "
        "byId: hiredEmployees(first: 2) { totalCount nodes { id } } "
        "byName: hiredEmployees(first: 2, orderBy: {field: NAME, direction: DESC}) { nodes { id } }"
        ' named: hiredEmployees(filter: {name: {startsWith: "b"}}) { totalCount } } } }',
        scope="read",
    )
    assert answer.errors == []
    for job in answer.data["jobs"]["nodes"]:
        mine = [row for row in hires if row.job_id == job["id"]]
        assert job["byId"] == {
            "totalCount": len(mine),
            "nodes": [{"id": i} for i in expected(mine, "id", False)[:2]],
        }
        assert job["byName"]["nodes"] == [{"id": i} for i in expected(mine, "name", True)[:2]]
        assert job["named"]["totalCount"] == sum(r.name.lower().startswith("b") for r in mine)


def test_nested_queries_cost_the_same_whatever_the_number_of_departments(gql, sample_data) -> None:
    # the token's first use looks it up and records it; the next ones find it in the process
    gql("{ departments { totalCount } }", scope="read")
    counts = {}
    for departments in (1, 2, 12):
        with CaptureQueriesContext(connection) as queries:
            answer = gql(NESTED, {"first": 10, "departments": departments}, scope="read")
        assert len(answer.data["departments"]["nodes"]) == departments
        assert all(d["hiredEmployees"]["nodes"] for d in answer.data["departments"]["nodes"])
        counts[departments] = len(queries.captured_queries)
    # the departments' page, every department's first hires (with their jobs joined), and
    # every department's count
    assert counts == {1: 3, 2: 3, 12: 3}


def test_two_levels_down_still_cost_one_query_per_level(gql, sample_data) -> None:
    query = """
    query($departments: Int!) {
      departments(first: $departments) { nodes { hiredEmployees(first: 5) { nodes {
        job { hiredEmployees(first: 2, orderBy: {field: DATETIME}) { totalCount nodes { id } } }
      } } } }
    }
    """
    gql("{ departments { totalCount } }", scope="read")
    counts = {}
    for departments in (1, 12):
        with CaptureQueriesContext(connection) as queries:
            answer = gql(query, {"departments": departments}, scope="read")
        assert answer.errors == []
        counts[departments] = len(queries.captured_queries)
    job = answer.data["departments"]["nodes"][0]["hiredEmployees"]["nodes"][0]["job"]
    one_job = job["hiredEmployees"]
    job_id = HiredEmployee.objects.filter(department_id=1).order_by("id").first().job_id
    rows = HiredEmployee.objects.filter(job_id=job_id).order_by("datetime", "id")
    assert one_job == {"totalCount": rows.count(), "nodes": [{"id": r.id} for r in rows[:2]]}
    # departments, their hires, the hires' jobs' hires, and those jobs' counts (the token was
    # looked up by the first request)
    assert counts == {1: 4, 12: 4}


# --- orderings and cursors -------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["ASC", "DESC"])
@pytest.mark.parametrize(("field", "column"), [("ID", "id"), ("DATETIME", "datetime"),
                                                ("NAME", "name")])  # fmt: skip
def test_every_order_pages_through_every_row_once(gql, hires, field, column, direction) -> None:
    nodes = walk(
        gql, ORDERED, {"first": 3, "orderBy": {"field": field, "direction": direction}},
        ["hiredEmployees"],
    )  # fmt: skip
    assert [n["id"] for n in nodes] == expected(hires, column, direction == "DESC")


def test_order_defaults_to_id_ascending_and_its_cursors_are_the_old_ones(gql, hires) -> None:
    answer = gql(ORDERED, {"first": 2, "orderBy": {}}, scope="read")
    page = answer.data["hiredEmployees"]
    assert [n["id"] for n in page["nodes"]] == expected(hires, "id", False)[:2]
    cursor = base64.urlsafe_b64decode(page["pageInfo"]["endCursor"]).decode()
    assert cursor == f"roster:v1:{page['nodes'][-1]['id']}"


def test_a_keyset_page_neither_skips_nor_repeats_a_row_inserted_before_it(gql, hires) -> None:
    order = {"field": "DATETIME", "direction": "DESC"}
    first = gql(ORDERED, {"first": 10, "orderBy": order}, scope="read").data["hiredEmployees"]
    seen = [n["id"] for n in first["nodes"]]
    HiredEmployee.objects.create(  # latest of all: it sorts before the cursor
        id=100, name="Late", datetime=START + timedelta(days=9), department_id=1, job_id=1
    )
    after = first["pageInfo"]["endCursor"]
    rest = walk(gql, ORDERED, {"first": 10, "orderBy": order, "after": after}, ["hiredEmployees"])
    assert seen + [n["id"] for n in rest] == expected(hires, "datetime", True)


def test_a_cursor_works_only_with_the_order_that_made_it(gql, hires) -> None:
    by_name = {"field": "NAME", "direction": "ASC"}
    named = gql(ORDERED, {"first": 2, "orderBy": by_name}, scope="read").data["hiredEmployees"]
    by_id = gql(ORDERED, {"first": 2}, scope="read").data["hiredEmployees"]
    for cursor, order in (
        (named["pageInfo"]["endCursor"], None),
        (named["pageInfo"]["endCursor"], {"field": "NAME", "direction": "DESC"}),
        (by_id["pageInfo"]["endCursor"], by_name),
    ):
        answer = gql(ORDERED, {"first": 2, "after": cursor, "orderBy": order}, scope="read")
        assert answer.codes == ["BAD_USER_INPUT"]
        assert "is a cursor of the order" in answer.errors[0]["message"]


@pytest.mark.parametrize(
    "payload",
    [
        ["datetime asc", "not a time", 3],
        ["name asc", 5, 3],
        ["name asc", "Ana", "3"],
        ["id asc", "x", 3],
        {"name asc": 1},
    ],
)
def test_a_forged_ordered_cursor_is_bad_input(gql, hires, payload) -> None:
    cursor = base64.urlsafe_b64encode(f"roster:v2:{json.dumps(payload)}".encode()).decode()
    answer = gql(ORDERED, {"first": 2, "after": cursor}, scope="read")
    assert answer.codes == ["BAD_USER_INPUT"]
    assert "is not a cursor this API returned" in answer.errors[0]["message"]


# --- name filters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "matches"),
    [
        ({"startsWith": "b"}, {"bob", "Bob"}),
        ({"startsWith": "ANA"}, {"Ana", "ana"}),
        ({"contains": "O"}, {"bob", "Bob", "Cleo"}),
        ({"contains": "0%"}, {"100% Sure"}),  # % and _ are the letters themselves
        ({"contains": "_"}, {"A_B"}),
        ({"startsWith": "a", "contains": "b"}, {"A_B"}),
        ({"contains": "nobody"}, set()),
    ],
)
def test_name_filters_fold_case_and_take_wildcards_literally(gql, hires, name, matches) -> None:
    answer = gql(ORDERED, {"first": 100, "filter": {"name": name}}, scope="read")
    page = answer.data["hiredEmployees"]
    wanted = [row for row in hires if row.name in matches]
    assert [n["id"] for n in page["nodes"]] == expected(wanted, "id", False)
    assert page["totalCount"] == len(wanted)


# --- the plans: each ordering is an index range scan -----------------------------------------


def _index_scans_only() -> None:
    """On 40 rows PostgreSQL would rather read the table and sort it: with a million, the
    plan below is its choice (docs/benchmarks.md). SET LOCAL ends with the test's transaction."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_bitmapscan = off")


def _plan(rows: Any) -> str:
    _index_scans_only()
    return rows.explain()


@pytest.mark.parametrize("direction", list(OrderDirection))
@pytest.mark.parametrize("column", ["id", "datetime", "name"])
def test_each_ordering_after_a_cursor_is_an_index_scan_with_no_sort(
    hires, column, direction
) -> None:
    ordering = Ordering(column=column, direction=direction)
    cursor_row = sorted(hires, key=lambda row: row.id)[20]
    after = encode_cursor(ordering, ordering.position(cursor_row))
    plan = _plan(page_rows(selectors.hired_employees(None), ordering, after)[:101])
    index = "hired_employees_pkey" if column == "id" else f"hires_by_{column}"
    if connection.vendor == "postgresql":
        assert f"Index Scan{' Backward' if ordering.descending else ''} using {index}" in plan
        assert "Sort" not in plan
    else:
        assert "TEMP B-TREE" not in plan  # SQLite sorts nothing: the index gives the order
        assert "PRIMARY KEY" in plan if column == "id" else f"INDEX {index}" in plan


@pytest.mark.parametrize("nodes", ["id", "id __typename"])  # JSON written by PostgreSQL; objects
def test_a_departments_hires_are_one_index_scan_per_department(gql, hires, nodes: str) -> None:
    query = (
        f"{{ departments {{ nodes {{ hiredEmployees(first: 2) {{ nodes {{ {nodes} }} }} }} }} }}"
    )
    with CaptureQueriesContext(connection) as queries:
        assert gql(query, scope="read").errors == []
    marker = "LATERAL" if connection.vendor == "postgresql" else "ROW_NUMBER"
    (nested,) = [q["sql"] for q in queries.captured_queries if marker in q["sql"]]
    _index_scans_only()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN {nested}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            # an index-only scan when the selection reads nothing but the ids
            assert re.search(r"Index (Only )?Scan using hires_by_department", plan), plan
            sorts = [line.strip() for line in plan.splitlines() if "Sort Key" in line]
            if nodes == "id":  # each parent's JSON aggregates its scan as it comes: no sort
                assert sorts == []
            else:  # the answer's order, not a page's
                assert len(sorts) == 1 and sorts[0].startswith("Sort Key: roster_parent.n,")
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {nested}")
            plan = "\n".join(str(row) for row in cursor.fetchall())
            assert "hires_by_department" in plan


def test_name_filters_use_the_trigram_index_on_postgresql(hires) -> None:
    where = HiredEmployeeFilter(name=TextFilter(contains="ob"))
    rows = selectors.hired_employees(where).order_by()  # as totalCount counts them
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
    plan = rows.explain()
    if connection.vendor == "postgresql":
        assert "Bitmap Index Scan on hires_name_trigrams" in plan
    else:  # SQLite has no trigram index: a name filter scans (the README says so)
        assert "SCAN hired_employees" in plan


def test_the_row_past_a_pages_end_loads_no_hires(gql, hires) -> None:
    """departments(first: 2) fetches a third row to tell that more follow: its hires are not
    loaded, at this level or the next."""
    query = """{ departments(first: 2) { nodes { hiredEmployees(first: 1) { nodes {
        job { hiredEmployees(first: 1) { nodes { id } } } } } } } }"""
    with CaptureQueriesContext(connection) as queries:
        answer = gql(query, scope="read")
    assert answer.errors == []
    marker = "LATERAL" if connection.vendor == "postgresql" else "ROW_NUMBER"
    nested = [q["sql"] for q in queries.captured_queries if marker in q["sql"]]
    assert len(nested) == 2
    # the first level: departments 1 and 2 only; the next: the jobs of the two hires shown
    shown = [d["hiredEmployees"]["nodes"][0] for d in answer.data["departments"]["nodes"]]
    first_hires = [HiredEmployee.objects.filter(department_id=i).order_by("id")[0] for i in (1, 2)]
    jobs = sorted({hire.job_id for hire in first_hires})
    for sql, parents in zip(nested, ([1, 2], jobs), strict=True):
        in_array, in_list = ",".join(map(str, parents)), ", ".join(map(str, parents))
        assert f"ARRAY[{in_array}]" in sql or f"IN ({in_list})" in sql, sql
    assert len(shown) == 2


def test_aliases_with_the_same_arguments_answer_the_same_page(gql, hires) -> None:
    answer = gql(
        "{ department(id: 1) { a: hiredEmployees(first: 2) { pageInfo { hasNextPage } "
        "nodes { id } } b: hiredEmployees(first: 2) { pageInfo { hasNextPage } nodes { id } } } }",
        scope="read",
    )
    department = answer.data["department"]
    mine = expected([row for row in hires if row.department_id == 1], "id", False)
    assert (
        department["a"]
        == department["b"]
        == {
            "pageInfo": {"hasNextPage": True},
            "nodes": [{"id": i} for i in mine[:2]],
        }
    )


# --- only the columns a selection reads --------------------------------------------------------

FULL_NODE = (
    "__typename id name datetime departmentId jobId department { id department } job { id job }"
)


def _page_sql(queries: CaptureQueriesContext) -> str:
    """The one statement that reads hires (the page, or every parent's pages)."""
    reads = [q["sql"] for q in queries.captured_queries if "hired_employees" in q["sql"]]
    assert len(reads) == 1, reads
    return reads[0]


@pytest.mark.parametrize(
    "nodes",
    ["id name", "id datetime", "id department { department }", "__typename id jobId", FULL_NODE],
)
def test_a_page_fetches_only_the_columns_its_selection_reads(gql, sample_data, nodes) -> None:
    """The same answers as a full selection, from a query that joins departments or jobs, or
    reads the datetime, only when the selection does: top level and nested."""
    gql("{ __typename }", scope="read")
    top = "query { hiredEmployees(first: 30, orderBy: {field: NAME}) { nodes { %s } } }"
    nested = (
        "query { departments(first: 3) { nodes { hiredEmployees(first: 4) { nodes { %s } } } } }"
    )
    for query, path in ((top, ("hiredEmployees",)), (nested, ("departments",))):
        with CaptureQueriesContext(connection) as queries:
            answer = gql(query % nodes, scope="read")
        sql = _page_sql(queries)  # before the next request empties the log
        full = gql(query % FULL_NODE, scope="read")
        assert answer.errors == [] and full.errors == []

        def trimmed(value: Any, like: Any) -> Any:
            """``value`` (the full answer) cut to the keys of ``like`` (the narrow answer)."""
            if isinstance(like, dict):
                return {k: trimmed(value[k], like[k]) for k in like}
            if isinstance(like, list):
                return [trimmed(v, w) for v, w in zip(value, like, strict=True)]
            return value

        assert answer.data[path[0]] and answer.data == trimmed(full.data, answer.data)
        joined = ('"departments"' in sql or "departments AS d" in sql, '"jobs"' in sql
                  or "jobs AS j" in sql)  # fmt: skip
        assert joined == ("department {" in nodes, "job {" in nodes), sql
        assert ('"hired_employees"."datetime"' in sql) == ("datetime" in nodes), sql


def test_a_cursor_still_works_when_its_column_is_not_selected(gql, sample_data) -> None:
    """Ordered by name while selecting only ids: the cursor needs the name, which is fetched."""
    query = """query($after: String) { hiredEmployees(first: 7, after: $after,
      orderBy: {field: NAME}) { pageInfo { endCursor hasNextPage } nodes { id } } }"""
    seen: list[int] = []
    after = None
    for _ in range(4):
        page = gql(query, {"after": after}, scope="read").data["hiredEmployees"]
        seen += [node["id"] for node in page["nodes"]]
        after = page["pageInfo"]["endCursor"]
    expected = list(HiredEmployee.objects.order_by("name", "id").values_list("id", flat=True)[:28])
    assert seen == expected


def test_a_fragment_reads_every_column(gql, sample_data) -> None:
    query = """{ hiredEmployees(first: 3) { nodes { ...F } } }
    fragment F on HiredEmployee { id department { department } }"""
    with CaptureQueriesContext(connection) as queries:
        answer = gql(query, scope="read")
    sql = _page_sql(queries)
    first = HiredEmployee.objects.order_by("id").select_related("department")[0]
    assert answer.data["hiredEmployees"]["nodes"][0] == {
        "id": first.id, "department": {"department": first.department.department},
    }  # fmt: skip
    assert '"hired_employees"."datetime"' in sql


def test_a_nested_page_is_compiled_once_per_shape_and_answers_each_filter(
    gql, sample_data, monkeypatch
) -> None:
    """The LATERAL statement (PostgreSQL) is kept per shape (filter, cursor, order, size,
    columns): the same query again compiles nothing, another filter compiles its own; and on
    both databases each filter answers its own rows."""
    compiled: list[str] = []
    for name in ("_lateral_sql", "_rendered_sql"):  # objects, or JSON written by PostgreSQL
        real = getattr(selectors, name)

        def spy(*args: Any, real: Any = real, **kwargs: Any) -> Any:
            compiled.append(repr(args[1].query))
            return real(*args, **kwargs)

        monkeypatch.setattr(selectors, name, spy)
    selectors._LATERAL_SQL.clear()
    selectors._RENDERED_SQL.clear()
    query = """query($name: String!) { departments(first: 3) { nodes { id
      hiredEmployees(first: 2, filter: {name: {startsWith: $name}}) { nodes { id name } } } } }"""
    answers = {}
    for name in ("A", "A", "B", "A"):
        data = gql(query, {"name": name}, scope="read").data["departments"]["nodes"]
        answers[name] = {d["id"]: [h["id"] for h in d["hiredEmployees"]["nodes"]] for d in data}
        for department, ids in answers[name].items():
            rows = HiredEmployee.objects.filter(department_id=department, name__istartswith=name)
            assert ids == list(rows.order_by("id").values_list("id", flat=True)[:2])
    assert answers["A"] != answers["B"]
    # "A" once and "B" once; SQLite's window query is Django's own, compiled each time
    assert len(compiled) == (2 if connection.vendor == "postgresql" else 0)


def test_a_nested_field_works_out_what_it_asks_once_for_all_its_parents(
    gql, hires, monkeypatch
) -> None:
    """The selection a nested page reads (its columns, or the fields PostgreSQL writes) is
    worked out when the first parent asks and kept for the others: once for 3 departments,
    and once more for the same field in the next request."""
    calls: list[str] = []
    for name in ("read_columns", "rendered_fields"):
        real = getattr(selectors, name)

        def spy(*args: Any, real: Any = real, name: str = name, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(selectors, name, spy)
    for _ in range(2):
        data = gql(NESTED, {"first": 2, "departments": 3}, scope="read").data
        assert [len(d["hiredEmployees"]["nodes"]) for d in data["departments"]["nodes"]] == [
            2, 2, 2,
        ]  # fmt: skip
    # job { job } is not a plain field: the objects' path, after PostgreSQL's was ruled out
    per_request = ["rendered_fields", "read_columns"] if connection.vendor == "postgresql" else [
        "read_columns"
    ]  # fmt: skip
    assert calls == per_request * 2


# --- a plain nested page, written as JSON by PostgreSQL -----------------------------------------

ODD_NAMES = ['Zoë "Q" O\'Brien', "back\\slash", "tab\tand\nnewline", "😀 emoji", 'a},{"b']
PLAIN_PAGE = """query($after: String) { departments { nodes { id
  hiredEmployees(first: 3, after: $after, orderBy: {field: ID, direction: %s}) {
    __typename totalCount pageInfo { hasNextPage endCursor } nodes { %s } } } } }"""


def _rendered(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "array_agg" in q["sql"]]


@pytest.mark.parametrize("direction", ["ASC", "DESC"])
def test_a_plain_nested_page_is_written_by_postgresql_as_the_objects_would_answer(
    gql, hires, direction
) -> None:
    """Nodes of Ints and Strings only, in id order: on PostgreSQL one statement writes each
    department's JSON (names with quotes, backslashes, control characters and emoji escaped as
    JSON does), and the answer, cursors and all, is the one the objects give (a fragment over the
    same fields, which takes the objects' path)."""
    HiredEmployee.objects.bulk_create(
        HiredEmployee(id=100 + n, name=name, datetime=START, department_id=1, job_id=2)
        for n, name in enumerate(ODD_NAMES)
    )
    fields = "i: id name jobId departmentId"
    rendered = PLAIN_PAGE % (direction, fields)
    objects = PLAIN_PAGE % (direction, "...F") + f" fragment F on HiredEmployee {{ {fields} }}"
    after: str | None = None
    pages = 0
    while True:
        with CaptureQueriesContext(connection) as queries:
            ours = gql(rendered, {"after": after}, scope="read")
        statements = _rendered(queries)  # the next request empties the log
        theirs = gql(objects, {"after": after}, scope="read")
        assert ours.errors == theirs.errors == []
        assert ours.data == theirs.data
        assert len(statements) == (1 if connection.vendor == "postgresql" else 0)
        first = ours.data["departments"]["nodes"][0]["hiredEmployees"]
        pages += 1
        if not first["pageInfo"]["hasNextPage"]:
            break
        after = first["pageInfo"]["endCursor"]
    assert pages == 6  # department 1: 13 hires and the 5 odd names, 3 a page: every cut
    everyone = gql((PLAIN_PAGE % (direction, "name")).replace("first: 3", "first: 100"),
                   {"after": None}, scope="read")  # fmt: skip
    names = [n["name"] for n in everyone.data["departments"]["nodes"][0]["hiredEmployees"]["nodes"]]
    ours_in_order = ODD_NAMES if direction == "ASC" else ODD_NAMES[::-1]
    assert [name for name in names if name in ODD_NAMES] == ours_in_order


@pytest.mark.parametrize(
    "nodes",
    [
        "id datetime",  # Python writes a datetime's text
        "id __typename",
        "id department { id }",
        "id name @include(if: true)",
        "... on HiredEmployee { id }",
        "id id2: id name2: name id",
    ],
)
def test_any_other_nested_selection_builds_objects(gql, hires, nodes: str) -> None:
    query = PLAIN_PAGE % ("ASC", nodes)
    with CaptureQueriesContext(connection) as queries:
        answer = gql(query, {"after": None}, scope="read")
    assert answer.errors == []
    assert _rendered(queries) == []
    marker = "LATERAL" if connection.vendor == "postgresql" else "ROW_NUMBER"
    assert len([q for q in queries.captured_queries if marker in q["sql"]]) == 1
    pages = [d["hiredEmployees"] for d in answer.data["departments"]["nodes"]]
    assert [len(page["nodes"]) for page in pages] == [3, 3, 3]
    for department, page in zip((1, 2, 3), pages, strict=True):
        mine = sorted(hire.id for hire in hires if hire.department_id == department)
        assert [node["id"] for node in page["nodes"]] == mine[:3]


def test_a_nested_page_in_another_order_builds_objects(gql, hires) -> None:
    query = """{ departments { nodes { hiredEmployees(first: 2, orderBy: {field: NAME}) {
        nodes { id name } } } } }"""
    with CaptureQueriesContext(connection) as queries:
        answer = gql(query, scope="read")
    assert answer.errors == []
    assert _rendered(queries) == []
    first = answer.data["departments"]["nodes"][0]["hiredEmployees"]["nodes"]
    mine = expected([row for row in hires if row.department_id == 1], "name", False)
    assert [node["id"] for node in first] == mine[:2]
