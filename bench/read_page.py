"""Benchmark: one ``hiredEmployees(first: 1000)`` page with its department and job, over HTTP.

Run: ``.venv/bin/python bench/read_page.py``

Baseline, measured in the same run: a bare in-process Strawberry schema (plain types with the
same fields) executing the same selection over 1000 rows built in memory. Target: median HTTP
latency <= 1.5x the baseline median.
"""

from __future__ import annotations

import csv
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2
import psycopg2.extras
import requests
import strawberry
from _common import (
    ROOT,
    create_token,
    gunicorn,
    median,
    ms,
    p90,
    pg_dsn,
    prepare_database,
    print_header,
    print_load,
    verdict,
)

DB_NAME = "roster_bench_read"
EMPLOYEES = 5000
PAGE = 1000
WARMUPS = 6
ROUNDS = 30
TARGET_RATIO = 1.5

QUERY = (
    "{ hiredEmployees(first: 1000) { nodes { id name datetime departmentId jobId "
    "department { id department } job { id job } } } }"
)
_EPOCH = datetime(2021, 1, 1, tzinfo=UTC)


def employee(i: int) -> tuple[int, str, datetime, int, int]:
    """The i-th hired employee, the same in the database and in the baseline."""
    return i, f"Bench Employee {i}", _EPOCH + timedelta(minutes=i), 1 + i % 12, 1 + i % 183


def reference(name: str) -> dict[int, str]:
    """data/sample departments or jobs, by id."""
    with (ROOT / "data" / "sample" / f"{name}.csv").open(newline="") as f:
        return {int(row[0]): row[1] for row in csv.reader(f) if row}


def seed(count: int) -> None:
    """Insert ``count`` hired employees straight into the bench database."""
    conn = psycopg2.connect(pg_dsn(DB_NAME))
    try:
        with conn.cursor() as cur:
            psycopg2.extras.execute_values(
                cur,
                "INSERT INTO hired_employees (id, name, datetime, department_id, job_id) VALUES %s",
                [employee(i) for i in range(1, count + 1)],
                page_size=1000,
            )
            cur.execute("ANALYZE")
        conn.commit()
    finally:
        conn.close()


# --- baseline: a bare Strawberry schema over plain objects -----------------------------------


@strawberry.type
class Department:
    id: int
    department: str


@strawberry.type
class Job:
    id: int
    job: str


@strawberry.type
class HiredEmployee:
    id: int
    name: str
    datetime: datetime
    department_id: int
    job_id: int
    department: Department
    job: Job


@strawberry.type
class HiredEmployeeConnection:
    nodes: list[HiredEmployee]


def build_page() -> list[HiredEmployee]:
    """The first 1000 employees as plain objects, sharing their departments and jobs."""
    departments = {i: Department(id=i, department=n) for i, n in reference("departments").items()}
    jobs = {i: Job(id=i, job=n) for i, n in reference("jobs").items()}
    page = []
    for i in range(1, PAGE + 1):
        _, name, hired, department_id, job_id = employee(i)
        page.append(
            HiredEmployee(
                id=i,
                name=name,
                datetime=hired,
                department_id=department_id,
                job_id=job_id,
                department=departments[department_id],
                job=jobs[job_id],
            )
        )
    return page


ROWS_IN_MEMORY = build_page()


@strawberry.type
class Query:
    @strawberry.field
    def hired_employees(self, first: int = 100) -> HiredEmployeeConnection:
        return HiredEmployeeConnection(nodes=ROWS_IN_MEMORY[:first])


BARE_SCHEMA = strawberry.Schema(query=Query)


def baseline() -> tuple[float, dict[str, Any]]:
    """Seconds for an in-process ``execute_sync`` of the same query, and its data."""
    started = time.perf_counter()
    result = BARE_SCHEMA.execute_sync(QUERY)
    elapsed = time.perf_counter() - started
    if result.errors:
        raise RuntimeError(f"baseline schema failed: {result.errors}")
    return elapsed, result.data


# --- HTTP ------------------------------------------------------------------------------------


def fetch(session: requests.Session, url: str) -> tuple[float, dict[str, Any]]:
    """One page over HTTP: the seconds until the whole response arrived, and its data."""
    body = json.dumps({"query": QUERY}).encode()
    started = time.perf_counter()
    response = session.post(url, data=body, headers={"Content-Type": "application/json"})
    elapsed = time.perf_counter() - started  # the whole body is in: decoding is the client's
    answer = response.json()
    nodes = ((answer.get("data") or {}).get("hiredEmployees") or {}).get("nodes") or []
    if response.status_code != 200 or answer.get("errors") or len(nodes) != PAGE:
        raise RuntimeError(f"unexpected answer ({response.status_code}): {str(answer)[:500]}")
    return elapsed, answer["data"]


def main() -> None:
    print_header(f"hiredEmployees(first: {PAGE}) with department and job, HTTP, PostgreSQL")
    prepare_database(DB_NAME)
    seed(EMPLOYEES)
    token = create_token(DB_NAME, "bench-read", "read")

    base: list[float] = []
    http: list[float] = []
    with gunicorn(DB_NAME, workers=2) as url, requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        for round_ in range(WARMUPS + ROUNDS):  # interleaved: background load hits both alike
            base_seconds, base_data = baseline()
            http_seconds, http_data = fetch(session, url)
            if round_ >= WARMUPS:
                base.append(base_seconds)
                http.append(http_seconds)
        same = json.loads(json.dumps(base_data, default=str)) == http_data

    ratio = median(http) / median(base)
    print()
    print(f"{ROUNDS} interleaved rounds after {WARMUPS} warm-ups, {EMPLOYEES} rows in the table:")
    print(f"  baseline: bare Strawberry execute_sync, in-memory rows: median {ms(median(base))}")
    print(f"  HTTP (keep-alive session): median {ms(median(http))}, p90 {ms(p90(http))}")
    print(f"  same data as the baseline: {'yes' if same else 'NO'}")
    print(
        f"  latency: {ms(median(http))} vs baseline {ms(median(base))} = {ratio:.2f}x "
        f"(target <= {TARGET_RATIO}x)  {verdict(ratio <= TARGET_RATIO)}"
    )
    print_load()


if __name__ == "__main__":
    main()
