"""Benchmark: one ``hiredEmployees(first: 1000)`` page with its department and job, over HTTP.

Run: ``.venv/bin/python bench/read_page.py`` (``--rows N --rounds N`` for a shorter run)

Baseline, interleaved round by round: a bare in-process Strawberry schema (plain types with the
same fields) executing the same selection over 1000 rows built in memory. Target: median HTTP
latency <= 1.5x the baseline median, with the same data.
"""

from __future__ import annotations

import csv
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import _common as bench
import psycopg2.extras
import strawberry

PAGE = 1000
WARMUPS = 6
TARGET_RATIO = 1.5
QUERY = (
    "{ hiredEmployees(first: 1000) { nodes { id name datetime departmentId jobId "
    "department { id department } job { id job } } } }"
)
_EPOCH = datetime(2021, 1, 1, tzinfo=UTC)


def employee(i: int) -> tuple[int, str, datetime, int, int]:
    """The i-th hired employee, the same in the database and in the baseline."""
    return i, f"Bench Employee {i}", _EPOCH + timedelta(minutes=i), 1 + i % 12, 1 + i % 183


def seed(db: str, count: int) -> None:
    """Insert ``count`` hired employees straight into the database."""
    with psycopg2.connect(bench.pg_dsn(db)) as conn, conn.cursor() as cur:
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO hired_employees (id, name, datetime, department_id, job_id) VALUES %s",
            [employee(i) for i in range(1, count + 1)],
            page_size=1000,
        )
        cur.execute("ANALYZE")
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


def reference(name: str) -> dict[int, str]:
    """data/sample's departments or jobs, by id."""
    with (bench.ROOT / "data" / "sample" / f"{name}.csv").open(newline="") as f:
        return {int(row[0]): row[1] for row in csv.reader(f) if row}


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


def main() -> None:
    args = bench.options(__doc__, rows=5000, rounds=30)
    db = bench.database("read")
    with bench.run(f"hiredEmployees(first: {PAGE}) with department and job, HTTP", db):
        bench.prepare_database(db)
        seed(db, args.rows)
        token = bench.create_token(db, "bench-read", "read")
        base, http = [], []
        body = json.dumps({"query": QUERY}).encode()
        with bench.gunicorn(db) as url, bench.session(token) as session:
            for round_ in range(WARMUPS + args.rounds):  # interleaved: background load hits both
                base_seconds, base_data = baseline()
                http_seconds, page = bench.post(session, url, body, "hiredEmployees")
                if len(page["nodes"]) != PAGE:
                    raise RuntimeError(f"{len(page['nodes'])} nodes, not {PAGE}")
                if round_ >= WARMUPS:
                    base.append(base_seconds)
                    http.append(http_seconds)
        same = json.loads(json.dumps(base_data["hiredEmployees"], default=str)) == page

        print(
            f"\n{args.rounds} interleaved rounds after {WARMUPS} warm-ups, {args.rows:,} rows "
            f"in the table; baseline: bare Strawberry execute_sync over in-memory rows"
        )
        note = f"; p90 {bench.ms(bench.p90(http))}; same data: {'yes' if same else 'NO'}"
        bench.compare(
            "latency, median", bench.median(http), bench.median(base), "ms", TARGET_RATIO, note=note
        )


if __name__ == "__main__":
    main()
