"""Hostile GraphQL documents: refused before they run, with QUERY_TOO_COMPLEX (graph/limits.py);
and a statement that still runs too long is cancelled with TIMEOUT, never taken for an outage.

The fragment attack's timing is measured by ``bench/fragment_attack.py``; here, its refusal.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg2
import pytest
from django.db import connection
from django.test import Client, override_settings

from backend.models import Batch, Department, HireCount, HiredEmployee, Job

TOO_COMPLEX = "QUERY_TOO_COMPLEX"


@pytest.fixture
def refs(db: None) -> None:
    Department.objects.bulk_create(Department(id=i, department=f"Dept {i}") for i in (1, 2, 3))
    Job.objects.bulk_create(Job(id=i, job=f"Job {i}") for i in (1, 2, 3))


def fragment_attack(levels: int, base: str = "jobs { totalCount }") -> str:
    """``levels`` fragments, each spreading the one before twice: 2**(levels-1) spreads."""
    parts = [f"query Attack {{ ...F{levels - 1} }}", f"fragment F0 on Query {{ {base} }}"]
    parts += [f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels)]
    return "\n".join(parts)


# --- the fragment attack and the limits -----------------------------------------------------


@pytest.mark.parametrize("levels", [21, 25])
def test_fragment_attack_is_refused_before_it_runs(gql, refs, levels: int) -> None:
    document = fragment_attack(levels)
    assert len(document) < 1000
    answer = gql(document, scope="read")
    assert answer.status == 200
    assert answer.data is None
    assert answer.codes == [TOO_COMPLEX]
    assert answer.errors[0]["message"] == (
        f"'Attack' may read about {2 ** (levels - 1)} rows; the limit is 50000. "
        "Ask for smaller pages (first) or fewer nested objects."
    )


def test_fragment_attack_made_of_aliases_is_refused_on_aliases(gql, refs) -> None:
    answer = gql(fragment_attack(25, base="a: __typename"), scope="read")
    assert answer.data is None
    assert answer.codes == [TOO_COMPLEX]
    assert answer.errors[0]["message"] == f"{2**24} aliases found. Allowed: 15"


def test_fragment_attack_of_plain_leaves_runs_once(gql, refs) -> None:
    """Nothing to refuse: graphql-core merges the spreads and runs the field once."""
    answer = gql(fragment_attack(25, base="__typename"), scope="read")
    assert answer.errors == []
    assert answer.data == {"__typename": "Query"}


def test_a_fragment_spread_many_times_is_counted_at_every_spread(gql, refs) -> None:
    query = (
        "query Q { ...P ...P a: jobs(first: 1) { ...N } }\n"
        "fragment P on Query { b: departments(first: 2) { ...N } }\n"
        "fragment N on DepartmentConnection { nodes { id } }"
    )
    with override_settings(GRAPHQL_MAX_ALIASES=2):
        answer = gql(query, scope="read")
    # b twice (through P) and a once
    assert "3 aliases found. Allowed: 2" in [e["message"] for e in answer.errors]


def test_fragment_cycles_are_graphql_cores_error_and_do_not_loop(gql, refs) -> None:
    query = (
        "query { ...A }\n"
        "fragment A on Query { jobs { totalCount } ...B }\n"
        "fragment B on Query { ...A }"
    )
    answer = gql(query, scope="read")
    assert answer.data is None
    assert answer.errors[0]["message"] == "Cannot spread fragment 'A' within itself via 'B'."
    assert answer.codes == ["GRAPHQL_VALIDATION_FAILED"]


def test_a_long_chain_of_fragments_is_refused_not_a_crash(gql, refs) -> None:
    count = 3000
    query = f"query {{ ...F{count - 1} }}\nfragment F0 on Query {{ jobs {{ totalCount }} }}\n"
    query += "\n".join(f"fragment F{i} on Query {{ ...F{i - 1} }}" for i in range(1, count))
    answer = gql(query, scope="read")
    assert answer.status == 200
    assert answer.data is None
    assert set(answer.codes) == {TOO_COMPLEX}


def test_a_document_nested_deeper_than_the_parser_follows_is_refused(gql, refs) -> None:
    query = "{" + "jobs { nodes {" * 3000 + "id" + "} }" * 3000 + "}"
    answer = gql(query, scope="read")
    assert answer.data is None
    assert answer.errors[0]["message"] == (
        "Syntax Error: Document is nested too deeply. Parsing aborted."
    )
    assert answer.codes == ["GRAPHQL_PARSE_FAILED"]


def test_depth_is_counted_through_fragments(gql, refs) -> None:
    query = (
        "query Deep { hiredEmployees { ...Page } }\n"
        "fragment Page on HiredEmployeeConnection { nodes { department { id } } }"
    )
    with override_settings(GRAPHQL_MAX_DEPTH=2):
        answer = gql(query, scope="read")
    assert answer.data is None
    assert answer.codes == [TOO_COMPLEX]
    assert [e["message"] for e in answer.errors] == ["'Deep' exceeds maximum operation depth of 2"]
    assert answer.errors[0]["locations"] == [{"line": 1, "column": 1}]


def test_introspection_is_not_held_to_the_depth_limit(gql, refs) -> None:
    query = "{ __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }"
    with override_settings(GRAPHQL_MAX_DEPTH=2):
        answer = gql(query, scope="read")
    assert answer.errors == []
    assert answer.data["__schema"]["types"]


def test_a_1000_row_page_with_department_and_job_passes_the_default_cost(gql, refs) -> None:
    HiredEmployee.objects.bulk_create(
        HiredEmployee(
            id=i,
            name=f"E{i}",
            datetime=datetime(2021, 1, 1, tzinfo=UTC),
            department_id=1 + i % 3,
            job_id=1,
        )
        for i in range(1, 1001)
    )
    query = "{ hiredEmployees(first: 1000) { nodes { department { department } job { job } } } }"
    answer = gql(query, scope="read")
    assert answer.errors == []
    nodes = answer.data["hiredEmployees"]["nodes"]
    assert len(nodes) == 1000
    assert nodes[0] == {"department": {"department": "Dept 2"}, "job": {"job": "Job 1"}}


def test_a_1000_row_insert_batch_passes_the_limits(gql, refs) -> None:
    rows = ", ".join(f'{{id: {i}, job: "Job {i}"}}' for i in range(10, 1010))
    query = f"mutation {{ insertBatch(input: {{jobs: [{rows}]}}) {{ inserted rejected }} }}"
    answer = gql(query)
    assert answer.errors == []
    assert answer.data == {"insertBatch": {"inserted": 1000, "rejected": 0}}


def test_the_cost_multiplies_down_the_nesting_and_adds_across_aliases(gql, refs) -> None:
    page = "hiredEmployees(first: 1000) { nodes { department { id } job { id } } }"
    # 1 + 1000 * (1 + 1 + 1) = 3001 rows each
    with override_settings(GRAPHQL_MAX_COST=6002):
        assert gql(f"{{ a: {page} b: {page} }}", scope="read").errors == []
    with override_settings(GRAPHQL_MAX_COST=6001):
        answer = gql(f"query Two {{ a: {page} b: {page} }}", scope="read")
    assert answer.data is None
    assert answer.codes == [TOO_COMPLEX]
    assert answer.errors[0]["message"].startswith("'Two' may read about 6002 rows;")


def test_a_page_size_in_a_variable_counts_its_value(gql, refs) -> None:
    query = "query P($n: Int!) { jobs(first: $n) { nodes { id } } }"
    with override_settings(GRAPHQL_MAX_COST=1000):
        answer = gql(query, {"n": 1000}, scope="read")
        assert answer.codes == [TOO_COMPLEX]
        assert answer.errors[0]["message"].startswith("'P' may read about 1001 rows;")
        nodes = gql(query, {"n": 999}, scope="read").data["jobs"]["nodes"]
        assert nodes == [{"id": 1}, {"id": 2}, {"id": 3}]


def test_a_page_size_in_a_variable_left_to_its_default_counts_as_the_largest_page(
    gql, refs
) -> None:
    query = "query P($n: Int = 1) { jobs(first: $n) { nodes { id } } }"
    with override_settings(GRAPHQL_MAX_COST=1000):
        answer = gql(query, {}, scope="read")
    assert answer.codes == [TOO_COMPLEX]
    assert answer.errors[0]["message"].startswith("'P' may read about 1001 rows;")


def test_nested_page_sizes_in_variables_multiply(gql, refs) -> None:
    query = """query N($d: Int!, $h: Int!) {
      departments(first: $d) { nodes { hiredEmployees(first: $h) { nodes { id } } } }
    }"""
    with override_settings(GRAPHQL_MAX_COST=50_000):
        assert gql(query, {"d": 100, "h": 100}, scope="read").errors == []
        answer = gql(query, {"d": 1000, "h": 100}, scope="read")
    assert answer.codes == [TOO_COMPLEX]
    assert answer.errors[0]["message"].startswith("'N' may read about 102001 rows;")


def test_a_page_size_left_out_counts_as_its_default(gql, refs) -> None:
    with override_settings(GRAPHQL_MAX_COST=100):
        answer = gql("query D { departments { nodes { id } } }", scope="read")
    assert answer.errors[0]["message"].startswith("'D' may read about 101 rows;")


# --- statement timeout ------------------------------------------------------------------------


@pytest.fixture
def fresh_timeout() -> Iterator[None]:
    """Leave the connection with the server's default statement timeout after the test."""
    yield
    if connection.vendor == "postgresql" and connection.connection is not None:
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")
    connection.roster_statement_timeout = None


@pytest.fixture
def slow_metrics(transactional_db: None, fresh_timeout: None) -> Iterator[int]:
    """A metric (``hiresByQuarter``, which reads the hires summary) that runs longer than the
    timeout this yields (ms).

    PostgreSQL: another session holds the summary's lock, so a read waits until cancelled.
    SQLite: 60,000 summary rows for 2021, so summing them by pair takes many times the 1 ms
    timeout (written straight into the summary: the test is about the timeout, not the sums).
    """
    Department.objects.create(id=1, department="Sales")
    Job.objects.create(id=1, job="Clerk")
    if connection.vendor == "postgresql":
        settings_dict = connection.settings_dict
        other = psycopg2.connect(
            dbname=settings_dict["NAME"],
            user=settings_dict["USER"],
            host=settings_dict["HOST"],
            port=settings_dict["PORT"] or 5432,
            password=settings_dict["PASSWORD"],
        )
        # Should the timeout fail to cancel the read, the lock goes after 5 s: the test then
        # fails on the answer instead of hanging.
        release = threading.Timer(5, other.rollback)
        try:
            with other.cursor() as cursor:
                cursor.execute("LOCK TABLE hire_counts IN ACCESS EXCLUSIVE MODE")
            release.start()
            yield 300
        finally:
            release.cancel()
            other.rollback()
            other.close()
    else:
        HireCount.objects.bulk_create(
            (
                HireCount(year=2021, department_id=1, job_id=job, q1=1, q2=1, q3=1, q4=1)
                for job in range(1, 60_001)
            ),
            batch_size=5000,
        )
        yield 1


def test_a_statement_past_the_timeout_answers_timeout_not_an_outage(
    client: Client, tokens, slow_metrics: int
) -> None:
    query = "{ hiresByQuarter(year: 2021) { department q1 } }"
    with override_settings(STATEMENT_TIMEOUT_MS=slow_metrics):
        response = client.post(
            "/graphql",
            data=json.dumps({"query": query}),
            content_type="application/json",
            headers={"Authorization": f"Bearer {tokens['read']}"},
        )
    assert response.status_code == 200
    assert "Retry-After" not in response
    seconds = slow_metrics / 1000
    assert response.json() == {
        "data": None,
        "errors": [
            {
                "message": f"the query ran longer than {seconds:g} s and was cancelled; "
                "ask for less (smaller pages, fewer nested objects)",
                "locations": [{"line": 1, "column": 3}],
                "path": ["hiresByQuarter"],
                "extensions": {"code": "TIMEOUT"},
            }
        ],
    }


def test_a_rest_statement_past_the_timeout_answers_timeout_not_an_outage(
    client: Client, tokens, slow_metrics: int
) -> None:
    with override_settings(STATEMENT_TIMEOUT_MS=slow_metrics):
        response = client.get(
            "/api/metrics/hires-by-quarter?year=2021",
            headers={"Authorization": f"Bearer {tokens['read']}"},
        )
    assert response.status_code == 503
    assert "Retry-After" not in response
    seconds = slow_metrics / 1000
    assert response.json() == {
        "message": f"the query ran longer than {seconds:g} s and was cancelled; "
        "ask for less (smaller pages, fewer nested objects)",
        "code": "TIMEOUT",
    }


def test_after_a_timeout_the_connection_serves_the_next_request(
    client: Client, tokens, slow_metrics: int
) -> None:
    headers = {"Authorization": f"Bearer {tokens['read']}"}
    query = json.dumps(
        {"query": "{ hiresByQuarter(year: 2021) { q1 } departments { totalCount } }"}
    )
    with override_settings(STATEMENT_TIMEOUT_MS=slow_metrics):
        first = client.post(
            "/graphql", data=query, content_type="application/json", headers=headers
        )
    assert [e["extensions"]["code"] for e in first.json()["errors"]] == ["TIMEOUT"]
    second = client.post(
        "/graphql",
        data=json.dumps({"query": "{ departments { totalCount } }"}),
        content_type="application/json",
        headers=headers,
    )
    assert second.json() == {"data": {"departments": {"totalCount": 1}}}
    assert Batch.objects.count() == 0
