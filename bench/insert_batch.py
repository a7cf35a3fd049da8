"""Benchmark: ``insertBatch`` of 1000 hired_employees rows over HTTP (gunicorn, PostgreSQL).

Run: ``.venv/bin/python bench/insert_batch.py`` (``--rounds N --requests N`` for a shorter run)

Baseline, interleaved round by round with the HTTP requests: (a) the same query and variables
executed in-process by a bare Strawberry schema with a no-op resolver, plus (b) a psycopg2
``execute_values`` insert of 1000 rows into the same table, committed. Targets: median latency
<= 1.5x the baseline, and at least 25,000 rows/s with 2 concurrent clients, printed beside the
database's own ceiling (2 clients doing only (b)).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import _common as bench
import psycopg2
import psycopg2.extras
import requests
import strawberry

ROWS = 1000
WARMUPS = 6
CLIENTS = 2
TARGET_RATIO = 1.5
TARGET_ROWS_PER_S = 25_000
MUTATION = (
    "mutation($rows: [HiredEmployeeInput!]!) "
    "{ insertBatch(input: {hiredEmployees: $rows}) { received inserted rejected } }"
)
_EPOCH = datetime(2021, 1, 1, tzinfo=UTC)
_ids = itertools.count(1)  # fresh hired_employees ids, never reused (next() is atomic)


def body() -> bytes:
    """One request with 1000 fresh valid rows, encoded ahead of the clock."""
    rows = [
        {
            "id": i,
            "name": f"Bench Employee {i}",
            "datetime": (_EPOCH + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "departmentId": 1 + i % 12,
            "jobId": 1 + i % 183,
        }
        for i in itertools.islice(_ids, ROWS)
    ]
    return json.dumps({"query": MUTATION, "variables": {"rows": rows}}).encode()


def send(http: requests.Session, url: str, data: bytes) -> float:
    """One batch over HTTP: its seconds; all 1000 rows must go in."""
    seconds, result = bench.post(http, url, data, "insertBatch")
    if result["inserted"] != ROWS:
        raise RuntimeError(f"unexpected result: {result}")
    return seconds


# --- baseline (a): a bare Strawberry schema with a no-op resolver ----------------------------


@strawberry.input
class HiredEmployeeInput:
    id: int | None = None
    name: str | None = None
    datetime: str | None = None
    department_id: int | None = None
    job_id: int | None = None


@strawberry.input
class BatchInput:
    hired_employees: list[HiredEmployeeInput] | None = None


@strawberry.type
class BatchResult:
    received: int
    inserted: int
    rejected: int


@strawberry.type
class Query:
    @strawberry.field
    def ok(self) -> bool:
        return True


@strawberry.type
class Mutation:
    @strawberry.mutation
    def insert_batch(self, input: BatchInput) -> BatchResult:
        return BatchResult(received=ROWS, inserted=ROWS, rejected=0)


BARE_SCHEMA = strawberry.Schema(query=Query, mutation=Mutation)


def bare_graphql(data: bytes) -> float:
    """Seconds for an in-process ``execute_sync`` of the same query and variables."""
    request = json.loads(data)
    started = time.perf_counter()
    result = BARE_SCHEMA.execute_sync(request["query"], variable_values=request["variables"])
    elapsed = time.perf_counter() - started
    if result.errors or result.data["insertBatch"]["inserted"] != ROWS:
        raise RuntimeError(f"baseline schema failed: {result.errors}")
    return elapsed


# --- baseline (b): psycopg2 execute_values into the same table -------------------------------


def bare_insert(conn: Any) -> float:
    """Seconds for a committed ``execute_values`` insert of 1000 fresh rows."""
    rows = [
        (i, f"Bench Employee {i}", _EPOCH + timedelta(minutes=i), 1 + i % 12, 1 + i % 183)
        for i in itertools.islice(_ids, ROWS)
    ]
    started = time.perf_counter()
    with conn.cursor() as cur:
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO hired_employees (id, name, datetime, department_id, job_id) VALUES %s",
            rows,
            page_size=ROWS,
        )
    conn.commit()
    return time.perf_counter() - started


# --- concurrency -----------------------------------------------------------------------------


def at_once(works: list[Callable[[], Any]]) -> float:
    """Run ``works`` in as many threads at once: the wall seconds until the last one ends."""
    with ThreadPoolExecutor(len(works)) as pool:
        started = time.perf_counter()
        for future in [pool.submit(work) for work in works]:
            future.result()
        return time.perf_counter() - started


def clients(url: str, token: str, count: int, each: int) -> tuple[float, list[float]]:
    """``count`` clients (one session each) send ``each`` batches at once: the wall seconds
    from the common start to the last answer, and every latency."""
    latencies: list[float] = []

    def client(bodies: list[bytes]) -> None:
        with bench.session(token) as http:
            latencies.extend([send(http, url, data) for data in bodies])

    bodies = [[body() for _ in range(each)] for _ in range(count)]
    return at_once([lambda b=b: client(b) for b in bodies]), latencies


def ceiling(db: str, count: int, each: int) -> float:
    """Rows/s of ``count`` clients doing only baseline (b) at once: the most the database
    itself takes on this machine, whatever the server in front of it does."""
    with contextlib.ExitStack() as stack:
        conns = [
            stack.enter_context(contextlib.closing(psycopg2.connect(bench.pg_dsn(db))))
            for _ in range(count)
        ]
        wall = at_once([lambda c=c: [bare_insert(c) for _ in range(each)] for c in conns])
    return count * each * ROWS / wall


def main() -> None:
    args = bench.options(__doc__, rounds=30, requests=20)
    db = bench.database("insert")
    with bench.run("insertBatch: 1000 hired_employees rows per request, HTTP, PostgreSQL", db):
        bench.prepare_database(db)
        token = bench.create_token(db, "bench", "write")
        samples: dict[str, list[float]] = {"a": [], "b": [], "http": []}
        with (
            bench.gunicorn(db) as url,
            bench.session(token) as http,
            contextlib.closing(psycopg2.connect(bench.pg_dsn(db))) as conn,
        ):
            for round_ in range(WARMUPS + args.rounds):  # background load hits all three alike
                if round_ == WARMUPS:
                    clients(url, token, CLIENTS, 2)  # each worker's first requests are slow
                data = body()
                figures = (bare_graphql(data), bare_insert(conn), send(http, url, data))
                if round_ >= WARMUPS:
                    for key, seconds in zip(samples, figures, strict=True):
                        samples[key].append(seconds)
            wall_1, _ = clients(url, token, 1, args.requests)
            wall_2, latencies_2 = clients(url, token, CLIENTS, args.requests)
        most = ceiling(db, CLIENTS, args.requests)

        a, b, latency = (bench.median(samples[key]) for key in ("a", "b", "http"))
        print(
            f"\n{args.rounds} interleaved rounds after {WARMUPS} warm-ups; baseline = (a) bare "
            f"Strawberry execute_sync {bench.ms(a)} + (b) execute_values + commit {bench.ms(b)}"
        )
        p90 = f"; p90 {bench.ms(bench.p90(samples['http']))}"
        bench.compare("latency, median", latency, a + b, "ms", TARGET_RATIO, note=p90)
        base_rows, rows_2 = ROWS / (a + b), CLIENTS * args.requests * ROWS / wall_2
        bench.compare("1 client", args.requests * ROWS / wall_1, base_rows, "rows/s")
        bench.compare(f"{CLIENTS} clients", rows_2, base_rows, "rows/s", at_least=TARGET_ROWS_PER_S)
        print(f"median latency with {CLIENTS} clients: {bench.ms(bench.median(latencies_2))}")
        bench.compare(f"{CLIENTS} clients vs the database ceiling", rows_2, most, "rows/s")


if __name__ == "__main__":
    main()
