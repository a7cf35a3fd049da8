"""Benchmark: one ``hiredEmployees(first: 1000)`` page with its department and job, over HTTP.

Baseline, interleaved round by round: a bare in-process Strawberry schema (plain types with the
same fields) running the same query over 1000 rows built in memory. Target: median HTTP latency
<= 1.5x the baseline median, with the same data.
"""

from __future__ import annotations

import contextlib
import csv
import json
from datetime import datetime

import _common as bench
import psycopg2
import requests
import strawberry

PAGE, WARMUPS, TARGET_RATIO = 1000, 6, 1.5
QUERY = (
    "{ hiredEmployees(first: 1000) { nodes { id name datetime departmentId jobId "
    "department { id department } job { id job } } } }"
)


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


def sample(name: str) -> list[list[str]]:
    with (bench.ROOT / "data" / "sample" / f"{name}.csv").open(newline="") as f:
        return [row for row in csv.reader(f) if row]


def build_page() -> list[HiredEmployee]:
    """The first 1000 employees as plain objects, sharing their departments and jobs."""
    departments = {int(i): Department(id=int(i), department=n) for i, n in sample("departments")}
    jobs = {int(i): Job(id=int(i), job=n) for i, n in sample("jobs")}
    page = []
    for row in map(bench.employee, range(1, PAGE + 1)):
        fields = dict(zip(bench.COLUMNS.split(","), row, strict=True))
        page.append(HiredEmployee(**fields, department=departments[row[3]], job=jobs[row[4]]))
    return page


ROWS_IN_MEMORY = build_page()


@strawberry.type
class Query:
    @strawberry.field
    def hired_employees(self, first: int = 100) -> HiredEmployeeConnection:
        return HiredEmployeeConnection(nodes=ROWS_IN_MEMORY[:first])


BARE_SCHEMA = strawberry.Schema(query=Query)


def one_round(_: int, url: str, http: requests.Session, body: bytes) -> dict[str, float]:
    """The baseline's seconds, then the same page's over HTTP."""
    base, result = bench.clock(BARE_SCHEMA.execute_sync, QUERY)
    if result.errors:
        raise RuntimeError(f"baseline schema failed: {result.errors}")
    seconds, page = bench.post(http, url, body, "hiredEmployees")
    if len(page["nodes"]) != PAGE:
        raise RuntimeError(f"{len(page['nodes'])} nodes, not {PAGE}")
    return {"base": base, "http": seconds}


def main() -> None:
    args = bench.options(__doc__, rows=5000, rounds=30)
    db = bench.database("read")
    with bench.run(f"hiredEmployees(first: {PAGE}) with department and job, HTTP", db):
        bench.prepare_database(db)
        with contextlib.closing(psycopg2.connect(bench.pg_dsn(db))) as conn:
            bench.insert_rows(conn, [bench.employee(i) for i in range(1, args.rows + 1)])
            conn.commit()
        bench.sql(db, "ANALYZE")
        token = bench.create_token(db, "bench-read", "read")
        body = json.dumps({"query": QUERY}).encode()
        with bench.gunicorn(db) as url, bench.session(token) as http:
            samples = bench.interleave(args.rounds, WARMUPS, one_round, url, http, body)
            page = bench.post(http, url, body, "hiredEmployees")[1]  # untimed: the same data?
        in_memory = BARE_SCHEMA.execute_sync(QUERY).data["hiredEmployees"]
        same = json.loads(json.dumps(in_memory, default=str)) == page

        print(
            f"\n{args.rounds} interleaved rounds after {WARMUPS} warm-ups, {args.rows:,} rows "
            f"in the table; baseline: bare Strawberry execute_sync over in-memory rows"
        )
        latency, base = bench.median(samples["http"]), bench.median(samples["base"])
        note = f"; p90 {bench.ms(bench.p90(samples['http']))}; same data: {'yes' if same else 'NO'}"
        bench.compare("latency, median", latency, base, "ms", TARGET_RATIO, note=note)


if __name__ == "__main__":
    main()
