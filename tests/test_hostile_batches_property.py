"""A property of both API doors: for any mixed batch of hired employees, the rows stored are
exactly the valid rows, and the rejections logged are exactly the invalid rows, each with its
reason.

Hypothesis generates the batches: each row is valid or carries one known defect, and the
expected outcome is computed from the defects alone, never from the code under test. A batch
goes through ``insertBatch`` (GraphQL variables) or ``POST /api/employees/`` (REST), which can
also carry what GraphQL's types refuse up front (an id wider than 32 bits, a name that is a
number). About 40 s in all for both doors, on either database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.models import Batch, Department, HiredEmployee, Job, Rejection

EXAMPLES = 500
"""Examples per door; each one is a whole batch (1 to 25 rows) through HTTP."""

DEFECTS = {
    "missing_name": "required",
    "blank_name": "required",
    "missing_job": "required",
    "long_name": "too_long",
    "zero_id": "not_positive",
    "unknown_department": "unknown_reference",
    "bad_datetime": "invalid_datetime",
    "impossible_date": "invalid_datetime",
    "duplicate": "duplicate_in_batch",
}
REST_DEFECTS = {
    "huge_id": "out_of_range",
    "id_not_integer": "invalid_type",
    "name_not_string": "invalid_type",
}

NAME_CHARACTERS = st.characters(
    codec="utf-8", categories=("L", "N", "P", "Zs"), exclude_characters="\x00"
)
NAMES = st.text(NAME_CHARACTERS, min_size=1, max_size=40).filter(lambda name: name.strip())
MOMENTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 12, 31))
OFFSETS = st.sampled_from([None, 0, -300, 330, 60])  # minutes east of UTC; None: no zone


@dataclass
class Planned:
    row: dict[str, Any]
    defect: str | None
    stored: tuple[int, str, datetime, int, int] | None


def written(moment: datetime, offset: int | None, spacer: str) -> tuple[str, datetime]:
    """The datetime as a caller writes it, and the UTC instant it means."""
    text = moment.replace(microsecond=0).isoformat(sep=spacer)
    if offset is None:
        return text, moment.replace(microsecond=0, tzinfo=UTC)
    zone = timezone(timedelta(minutes=offset))
    local = moment.replace(microsecond=0, tzinfo=zone)
    suffix = "Z" if offset == 0 else local.isoformat()[-6:]
    return text + suffix, local.astimezone(UTC)


@st.composite
def batches(draw: st.DrawFn, door: str) -> list[Planned]:
    count = draw(st.integers(1, 25))
    ids = draw(st.lists(st.integers(1, 2**31 - 1), min_size=count, max_size=count, unique=True))
    kinds = ["valid"] * 4 + list(DEFECTS) + (list(REST_DEFECTS) if door == "rest" else [])
    planned: list[Planned] = []
    for row_id in ids:
        defect = draw(st.sampled_from(kinds))
        valid_ids = [p.row["id"] for p in planned if p.defect is None]
        if defect == "duplicate" and not valid_ids:
            defect = "valid"
        name = draw(NAMES)
        text, instant = written(draw(MOMENTS), draw(OFFSETS), draw(st.sampled_from("T ")))
        row = {
            "id": row_id,
            "name": name,
            "datetime": text,
            "department_id": draw(st.sampled_from([1, 2, 3])),
            "job_id": draw(st.sampled_from([1, 2, 3])),
        }
        if defect == "missing_name":
            row["name"] = None
        elif defect == "blank_name":
            row["name"] = " " * draw(st.integers(0, 3))
        elif defect == "missing_job":
            del row["job_id"]
        elif defect == "long_name":
            row["name"] = "n" * draw(st.integers(256, 400))
        elif defect == "zero_id":
            row["id"] = draw(st.integers(-(2**31), 0))
        elif defect == "unknown_department":
            row["department_id"] = draw(st.integers(4, 1000))
        elif defect == "bad_datetime":
            row["datetime"] = draw(st.sampled_from(["2021-07-27", "27/07/2021 10:00", "soon", ""]))
            if not row["datetime"]:
                defect = "blank_datetime"
        elif defect == "impossible_date":
            row["datetime"] = "2021-02-30T10:00:00Z"
        elif defect == "duplicate":
            row["id"] = draw(st.sampled_from(valid_ids))
        elif defect == "huge_id":
            row["id"] = draw(st.integers(2**31, 10**30))
        elif defect == "id_not_integer":
            row["id"] = draw(st.sampled_from(["x", "1.5", 1.5, True, [1]]))
        elif defect == "name_not_string":
            row["name"] = draw(st.sampled_from([5, 1.5, True, ["a"], {"a": 1}]))
        if defect == "valid":
            stored = (row["id"], name.strip(), instant, row["department_id"], row["job_id"])
            planned.append(Planned(row, None, stored))
        else:
            planned.append(Planned(row, defect, None))
    return planned


def expected_code(defect: str) -> str:
    return "required" if defect == "blank_datetime" else {**DEFECTS, **REST_DEFECTS}[defect]


GRAPHQL_NAMES = {"department_id": "departmentId", "job_id": "jobId"}
INSERT = """
mutation($rows: [HiredEmployeeInput!]!) {
  insertBatch(input: {hiredEmployees: $rows}) { inserted rejected batchId }
}
"""


def send(client: Client, tokens: dict[str, str], door: str, rows: list[dict[str, Any]]) -> str:
    """Post the batch through ``door``; the batch id."""
    headers = {"Authorization": f"Bearer {tokens['write']}"}
    if door == "rest":
        body = {"destination_table": "hired_employees", "data": rows}
        response = client.post(
            "/api/employees/", json.dumps(body), content_type="application/json", headers=headers
        )
        assert response.status_code == 200, response.content
        return response.json()["batch_id"]
    variables = {"rows": [{GRAPHQL_NAMES.get(k, k): v for k, v in row.items()} for row in rows]}
    response = client.post(
        "/graphql",
        json.dumps({"query": INSERT, "variables": variables}),
        content_type="application/json",
        headers=headers,
    )
    answer = response.json()
    assert response.status_code == 200 and "errors" not in answer, answer
    return answer["data"]["insertBatch"]["batchId"]


@pytest.fixture
def references(db: None) -> None:
    Department.objects.bulk_create(Department(id=i, department=f"Dept {i}") for i in (1, 2, 3))
    Job.objects.bulk_create(Job(id=i, job=f"Job {i}") for i in (1, 2, 3))


@pytest.mark.parametrize("door", ["graphql", "rest"])
def test_stored_rows_are_the_valid_rows_and_rejections_the_invalid_ones(
    client: Client, tokens: dict[str, str], references: None, door: str
) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,  # no .hypothesis folder in the working tree
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(planned=batches(door))
    def check(planned: list[Planned]) -> None:
        HiredEmployee.objects.all().delete()
        Rejection.objects.all().delete()
        Batch.objects.all().delete()

        batch_id = send(client, tokens, door, [p.row for p in planned])

        stored = set(
            HiredEmployee.objects.values_list("id", "name", "datetime", "department_id", "job_id")
        )
        assert stored == {p.stored for p in planned if p.stored is not None}
        logged = {
            r.position: [reason["code"] for reason in r.reasons]
            for r in Rejection.objects.filter(batch_id=batch_id)
        }
        assert logged == {
            index: [expected_code(p.defect)]
            for index, p in enumerate(planned)
            if p.defect is not None
        }
        batch = Batch.objects.get(id=batch_id)
        assert (batch.received, batch.inserted, batch.rejected) == (
            len(planned),
            len(stored),
            len(logged),
        )

    check()
