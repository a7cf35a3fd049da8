"""Stakeholder metrics: exact answers on a fixture worked out by hand, and on the samples."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.models import Department, HireCount, HiredEmployee, Job

# id, department, job, hire datetime (as written), and where it lands in UTC
HIRES = [
    (1, 1, 1, "2021-01-01T00:00:00Z"),  # first instant of Q1
    (2, 1, 1, "2021-03-31T23:59:59Z"),  # last second of Q1
    (3, 1, 1, "2021-04-01T00:00:00Z"),  # first instant of Q2
    (4, 1, 2, "2021-09-30T23:59:59Z"),  # last second of Q3
    (5, 2, 2, "2021-10-01T00:00:00Z"),  # first instant of Q4
    (6, 2, 2, "2021-12-31T23:30:00-05:00"),  # 2022-01-01T04:30Z: 2022 Q1
    (7, 2, 1, "2020-12-31T23:59:59Z"),  # 2020
    (8, 1, 2, "2021-07-01T00:00:00+02:00"),  # 2021-06-30T22:00Z: Q2, not Q3
]


@pytest.fixture
def hires(db: None) -> None:
    from jobs.ingest import ingest_rows

    for i, name in enumerate(("Alpha", "Beta", "Gamma"), start=1):  # Gamma never hires
        Department.objects.create(id=i, department=name)
    Job.objects.create(id=1, job="Analyst")
    Job.objects.create(id=2, job="Builder")
    rows = [
        {"id": i, "name": f"E{i}", "datetime": when, "department_id": d, "job_id": j}
        for i, d, j, when in HIRES
    ]
    assert ingest_rows(table="hired_employees", rows=rows, source="rest").inserted == 8


QUARTERS_2021 = [
    {"department": "Alpha", "job": "Analyst", "q1": 2, "q2": 1, "q3": 0, "q4": 0},
    {"department": "Alpha", "job": "Builder", "q1": 0, "q2": 1, "q3": 1, "q4": 0},
    {"department": "Beta", "job": "Builder", "q1": 0, "q2": 0, "q3": 0, "q4": 1},
]
QUERY = "query($y: Int!) { hiresByQuarter(year: $y) { department job q1 q2 q3 q4 } departmentsAboveMean(year: $y) { id department hired } }"  # noqa: E501


def test_hand_worked_year_with_quarter_boundaries_and_offsets(gql, hires: None) -> None:
    answer = gql(QUERY, {"y": 2021}, scope="read")

    assert answer.data["hiresByQuarter"] == QUARTERS_2021
    # Alpha 5, Beta 1, Gamma 0: the mean is 6 / 3 = 2, Gamma counting as 0.
    assert answer.data["departmentsAboveMean"] == [{"id": 1, "department": "Alpha", "hired": 5}]


def test_a_late_new_years_eve_hire_with_an_offset_counts_in_the_next_utc_year(
    gql, hires: None
) -> None:
    answer = gql(QUERY, {"y": 2022}, scope="read")

    assert answer.data["hiresByQuarter"] == [
        {"department": "Beta", "job": "Builder", "q1": 1, "q2": 0, "q3": 0, "q4": 0}
    ]
    # Alpha 0, Beta 1, Gamma 0: the mean is 1/3.
    assert answer.data["departmentsAboveMean"] == [{"id": 2, "department": "Beta", "hired": 1}]


def test_a_year_without_hires_gives_empty_lists(gql, hires: None) -> None:
    answer = gql(QUERY, {"y": 1999}, scope="read")
    assert answer.data == {"hiresByQuarter": [], "departmentsAboveMean": []}


def test_ties_are_ordered_by_id_and_equal_to_the_mean_is_not_above(gql, db: None) -> None:
    for i in (1, 2, 3):
        Department.objects.create(id=i, department=f"D{i}")
    Job.objects.create(id=1, job="J")
    for n, department in enumerate((3, 3, 1, 1, 2), start=1):
        HiredEmployee.objects.create(
            id=n, name="x", datetime=datetime(2021, 5, 1, tzinfo=UTC), department_id=department,
            job_id=1,
        )  # fmt: skip
    # D1 2, D2 1, D3 2: mean 5/3; D1 and D3 are above it, tied, so by id.
    answer = gql(QUERY, {"y": 2021}, scope="read")
    assert [row["id"] for row in answer.data["departmentsAboveMean"]] == [1, 3]


def test_pairs_are_ordered_by_names_by_code_point_then_ids_and_stripes_are_summed(
    gql, db: None
) -> None:
    """Names compared by code point on every database ('Zoe' before 'ada', 'É' after both);
    two departments with one name by id; a pair's rows in several stripes summed, and a pair
    whose hires all went left out."""
    for i, name in enumerate(("ada", "Zoe", "Émile", "Zoe"), start=1):
        Department.objects.create(id=i, department=name)
    Job.objects.create(id=1, job="b")
    Job.objects.create(id=2, job="B")
    for n, (department, job) in enumerate(((1, 1), (2, 1), (3, 2), (4, 1), (2, 2)), start=1):
        HiredEmployee.objects.create(
            id=n, name="x", datetime=datetime(2021, 5, 1, tzinfo=UTC), department_id=department,
            job_id=job,
        )  # fmt: skip
    # Stripes 1 and 2 of department 2's job 1, as two writers at once leave them; and a pair
    # whose rows sum to 0 in every quarter (department 1's job 2: +1 in one stripe, -1 in one).
    HireCount.objects.create(year=2021, department_id=2, job_id=1, stripe=1, q1=3, q4=1)
    HireCount.objects.create(year=2021, department_id=2, job_id=1, stripe=2, q2=-1, q3=2)
    HireCount.objects.create(year=2021, department_id=1, job_id=2, stripe=1, q3=1)
    HireCount.objects.create(year=2021, department_id=1, job_id=2, stripe=2, q3=-1)
    answer = gql(QUERY, {"y": 2021}, scope="read")
    rows = [tuple(row.values()) for row in answer.data["hiresByQuarter"]]
    assert rows == [
        ("Zoe", "B", 0, 1, 0, 0),
        ("Zoe", "b", 3, 0, 2, 1),  # department 2: 1 hire in Q2, then the two stripes
        ("Zoe", "b", 0, 1, 0, 0),  # department 4
        ("ada", "b", 0, 1, 0, 0),
        ("Émile", "B", 0, 1, 0, 0),
    ]


def test_metrics_need_a_token_and_a_sane_year(gql, hires: None) -> None:
    assert gql(QUERY, {"y": 2021}, scope=None).status == 401
    answer = gql(QUERY, {"y": 0}, scope="read")
    assert answer.codes == ["BAD_USER_INPUT"]
    assert answer.data is None


def test_samples_2021_totals_match_the_valid_2021_hires(gql, sample_data: None) -> None:
    answer = gql(QUERY, {"y": 2021}, scope="read")
    in_2021 = HiredEmployee.objects.filter(
        datetime__gte=datetime(2021, 1, 1, tzinfo=UTC),
        datetime__lt=datetime(2022, 1, 1, tzinfo=UTC),
    )
    rows = answer.data["hiresByQuarter"]
    assert sum(r["q1"] + r["q2"] + r["q3"] + r["q4"] for r in rows) == in_2021.count() > 0
    assert rows == sorted(rows, key=lambda r: (r["department"], r["job"]))

    per_department = {d.id: in_2021.filter(department=d).count() for d in Department.objects.all()}
    mean = sum(per_department.values()) / len(per_department)
    expected = sorted(
        ((i, n) for i, n in per_department.items() if n > mean), key=lambda x: (-x[1], x[0])
    )
    assert [(r["id"], r["hired"]) for r in answer.data["departmentsAboveMean"]] == expected


# --- the spreadsheet endpoints ---------------------------------------------------------------


def _get(client: Client, path: str, token: str | None, **headers: str):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return client.get(path, headers=headers)


def test_endpoints_answer_json_by_default(client: Client, tokens, hires: None) -> None:
    response = _get(client, "/api/metrics/hires-by-quarter?year=2021", tokens["read"])
    assert response.status_code == 200
    assert response.json() == {"year": 2021, "data": QUARTERS_2021}
    above = _get(client, "/api/metrics/departments-above-mean?year=2021", tokens["read"])
    assert above.json()["data"] == [{"id": 1, "department": "Alpha", "hired": 5}]


@pytest.mark.parametrize("how", ["query", "accept"])
def test_endpoints_answer_csv_with_a_header_row(
    client: Client, tokens, hires: None, how: str
) -> None:
    path = "/api/metrics/hires-by-quarter?year=2021"
    if how == "query":
        response = _get(client, path + "&format=csv", tokens["read"])
    else:
        response = _get(client, path, tokens["read"], Accept="text/csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["department", "job", "q1", "q2", "q3", "q4"]
    assert rows[1:] == [[r[k] if k in ("department", "job") else str(r[k]) for k in rows[0]]
                        for r in QUARTERS_2021]  # fmt: skip


def test_an_empty_csv_still_has_its_header(client: Client, tokens, hires: None) -> None:
    response = _get(
        client, "/api/metrics/departments-above-mean?year=1999&format=csv", tokens["read"]
    )
    assert response.content.decode().splitlines() == ["id,department,hired"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "'year' is required"),
        ("?year=abc", "'year' must be a whole number"),
        ("?year=0", "'year' must be between"),
        ("?year=2021&format=xml", "'format' must be json or csv"),
    ],
)
def test_endpoints_refuse_a_bad_year_with_400(
    client: Client, tokens, hires: None, query: str, message: str
) -> None:
    response = _get(client, "/api/metrics/hires-by-quarter" + query, tokens["read"])
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_endpoints_need_a_token(client: Client, hires: None) -> None:
    response = _get(client, "/api/metrics/hires-by-quarter?year=2021", None)
    assert response.status_code == 401


# --- the dashboard ---------------------------------------------------------------------------


def test_dashboard_with_a_token_shows_the_api_numbers(client: Client, tokens, hires: None) -> None:
    response = _get(client, "/dashboard/?year=2021", tokens["read"])
    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('<rect class="bar" data-department=') == 2 * 4 + 3  # 2 hiring depts x 4 + 3
    assert 'class="mean" data-value="2.0"' in page
    assert 'data-department="Alpha" data-quarter="Q2" data-value="2"' in page
    assert "<td>Alpha</td><td>Analyst</td>" in page


def test_dashboard_sends_a_browser_without_credentials_to_the_admin_login(client: Client) -> None:
    response = client.get("/dashboard/?year=2021")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/dashboard/")


def test_dashboard_works_for_an_admin_session_and_refuses_a_bad_year(
    client: Client, hires: None
) -> None:
    client.force_login(User.objects.create_superuser("boss", "b@example.com", "pw"))
    assert client.get("/dashboard/?year=2021").status_code == 200
    bad = client.get("/dashboard/?year=nope")
    assert bad.status_code == 400
    assert "&#x27;year&#x27; must be a whole number" in bad.content.decode()


# --- every year a hire can have: 1 to 9999 ----------------------------------------------------

EDGE_HIRES = [
    (101, 1, 1, "9999-12-31T23:59:59.999999Z"),  # the last instant a datetime can hold: 9999 Q4
    (102, 1, 2, "9999-10-01T00:00:00Z"),  # first instant of 9999 Q4
    (103, 2, 2, "9999-09-30T23:59:59Z"),  # 9999 Q3
    (104, 2, 1, "9998-12-31T23:59:59Z"),  # 9998, not 9999
    (105, 1, 1, "0001-01-01T00:00:00Z"),  # the first instant: year 1 Q1
]
QUARTERS_9999 = [
    {"department": "Alpha", "job": "Analyst", "q1": 0, "q2": 0, "q3": 0, "q4": 1},
    {"department": "Alpha", "job": "Builder", "q1": 0, "q2": 0, "q3": 0, "q4": 1},
    {"department": "Beta", "job": "Builder", "q1": 0, "q2": 0, "q3": 1, "q4": 0},
]


@pytest.fixture
def edge_hires(hires: None) -> None:
    """The hand-worked hires, plus hires in the first and the last years a datetime can have,
    all through the real pipeline: they pass the rules."""
    from jobs.ingest import ingest_rows

    rows = [
        {"id": i, "name": f"E{i}", "datetime": when, "department_id": d, "job_id": j}
        for i, d, j, when in EDGE_HIRES
    ]
    assert ingest_rows(table="hired_employees", rows=rows, source="rest").inserted == 5


def test_graphql_answers_for_year_9999_and_year_1(gql, edge_hires: None) -> None:
    last = gql(QUERY, {"y": 9999}, scope="read")
    assert last.errors == []
    assert last.data["hiresByQuarter"] == QUARTERS_9999
    # Alpha 2, Beta 1, Gamma 0: the mean is 1.
    assert last.data["departmentsAboveMean"] == [{"id": 1, "department": "Alpha", "hired": 2}]

    assert gql(QUERY, {"y": 9998}, scope="read").data["hiresByQuarter"] == [
        {"department": "Beta", "job": "Analyst", "q1": 0, "q2": 0, "q3": 0, "q4": 1}
    ]
    assert gql(QUERY, {"y": 1}, scope="read").data["hiresByQuarter"] == [
        {"department": "Alpha", "job": "Analyst", "q1": 1, "q2": 0, "q3": 0, "q4": 0}
    ]


@pytest.mark.parametrize("year", [0, 10000, -1])
def test_graphql_refuses_a_year_no_hire_can_have(gql, edge_hires: None, year: int) -> None:
    answer = gql(QUERY, {"y": year}, scope="read")
    assert answer.data is None
    assert answer.codes == ["BAD_USER_INPUT"]
    assert answer.errors[0]["message"] == f"'year' must be between 1 and 9999, got {year}"


def test_rest_answers_for_year_9999(client: Client, tokens, edge_hires: None) -> None:
    response = _get(client, "/api/metrics/hires-by-quarter?year=9999", tokens["read"])
    assert response.status_code == 200
    assert response.json() == {"year": 9999, "data": QUARTERS_9999}
    above = _get(client, "/api/metrics/departments-above-mean?year=9999&format=csv", tokens["read"])
    assert above.status_code == 200
    assert above.content.decode().splitlines() == ["id,department,hired", "1,Alpha,2"]
    too_late = _get(client, "/api/metrics/hires-by-quarter?year=10000", tokens["read"])
    assert too_late.status_code == 400
    assert too_late.json()["message"] == "'year' must be between 1 and 9999, got 10000"


def test_dashboard_without_a_year_survives_a_hire_dated_9999(
    client: Client, tokens, edge_hires: None
) -> None:
    """The default is the latest year with hires up to this one (2022 here), not 9999."""
    response = _get(client, "/dashboard/", tokens["read"])
    page = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Hires in 2022</h1>" in page
    assert 'min="1" max="9999"' in page
    assert '<a href="?year=9999">9999</a>' in page and '<a href="?year=1">1</a>' in page

    last = _get(client, "/dashboard/?year=9999", tokens["read"])
    assert last.status_code == 200
    assert "<h1>Hires in 9999</h1>" in last.content.decode()
    assert 'data-department="Alpha" data-quarter="Q4" data-value="2"' in last.content.decode()


def test_dashboard_defaults_to_9999_when_every_hire_is_that_late(client: Client, tokens) -> None:
    from jobs.ingest import ingest_rows

    Department.objects.create(id=1, department="Alpha")
    Job.objects.create(id=1, job="Analyst")
    row = {"id": 1, "name": "Late", "datetime": "9999-12-31T23:59:59Z", "department_id": 1,
           "job_id": 1}  # fmt: skip
    assert ingest_rows(table="hired_employees", rows=[row], source="rest").inserted == 1
    response = _get(client, "/dashboard/", tokens["read"])
    assert response.status_code == 200
    assert "<h1>Hires in 9999</h1>" in response.content.decode()
    assert "<td>Alpha</td><td>Analyst</td>" in response.content.decode()


@pytest.mark.parametrize(
    ("years", "expected"),
    [
        ([], "this year"),
        ([2020, 2021, 9999], 2021),
        ([1, 9999], 1),
        ([9998, 9999], 9998),
        (["this year", 9999], "this year"),
    ],
)
def test_the_default_year_is_the_latest_up_to_this_one(years: list, expected) -> None:
    from django.utils import timezone

    from backend.dashboard import default_year

    this_year = timezone.now().year
    years = [this_year if y == "this year" else y for y in years]
    assert default_year(years) == (this_year if expected == "this year" else expected)
