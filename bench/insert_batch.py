"""Benchmark: ``insertBatch`` of 1000 hired_employees rows over HTTP (gunicorn, PostgreSQL).

Baseline, interleaved round by round: (a) the same query and variables run in process by a bare
Strawberry schema with a no-op resolver, plus (b) a committed psycopg2 ``execute_values`` insert
of 1000 rows into the same table. Targets: median latency <= 1.5x the baseline, and at least
25,000 rows/s with 2 concurrent clients, beside the database's ceiling (2 clients doing only (b)).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import _common as bench
import psycopg2
import requests
import strawberry

ROWS, WARMUPS, CLIENTS = 1000, 6, 2
TARGET_RATIO, TARGET_ROWS_PER_S = 1.5, 25_000
MUTATION = (
    "mutation($rows: [HiredEmployeeInput!]!) "
    "{ insertBatch(input: {hiredEmployees: $rows}) { received inserted rejected } }"
)
_ids = itertools.count(1)  # fresh hired_employees ids, never reused (next() is atomic)


def fresh_rows() -> list[tuple]:
    return [bench.employee(i) for i in itertools.islice(_ids, ROWS)]


def body() -> bytes:
    """One request with 1000 fresh valid rows, encoded ahead of the clock."""
    keys = ("id", "name", "datetime", "departmentId", "jobId")
    rows = [
        dict(zip(keys, (i, name, f"{at:%Y-%m-%dT%H:%M:%SZ}", department, job), strict=True))
        for i, name, at, department, job in fresh_rows()
    ]
    return json.dumps({"query": MUTATION, "variables": {"rows": rows}}).encode()


def send(http: requests.Session, url: str, data: bytes) -> float:
    """One batch over HTTP: its seconds; all 1000 rows must go in."""
    seconds, result = bench.post(http, url, data, "insertBatch")
    if result["inserted"] != ROWS:
        raise RuntimeError(f"unexpected result: {result}")
    return seconds


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
    """Baseline (a): seconds for the bare schema's ``execute_sync`` of the same request."""
    request = json.loads(data)
    execute = BARE_SCHEMA.execute_sync
    seconds, result = bench.clock(execute, request["query"], variable_values=request["variables"])
    if result.errors or result.data["insertBatch"]["inserted"] != ROWS:
        raise RuntimeError(f"baseline schema failed: {result.errors}")
    return seconds


def bare_insert(conn: Any) -> float:
    """Baseline (b): seconds for a committed ``execute_values`` insert of 1000 fresh rows."""
    rows = fresh_rows()
    started = time.perf_counter()
    bench.insert_rows(conn, rows)
    conn.commit()
    return time.perf_counter() - started


def one_round(round_: int, url: str, token: str, http: requests.Session, conn: Any) -> dict:
    """(a), (b) and the HTTP request, one after the other: background load hits all alike."""
    if round_ == WARMUPS:
        clients(url, token, CLIENTS, 2)  # each worker's first requests are slow
    data = body()
    return {"a": bare_graphql(data), "b": bare_insert(conn), "http": send(http, url, data)}


def at_once(works: list[Callable[[], Any]]) -> float:
    """Run ``works`` in as many threads at once: the wall seconds until the last one ends."""
    with ThreadPoolExecutor(len(works)) as pool:
        started = time.perf_counter()
        for future in [pool.submit(work) for work in works]:
            future.result()
        return time.perf_counter() - started


def clients(url: str, token: str, count: int, each: int) -> tuple[float, list[float]]:
    """``count`` clients (a session each) send ``each`` batches at once: the wall seconds from
    the common start to the last answer, and every latency."""
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
        with (
            bench.gunicorn(db) as url,
            bench.session(token) as http,
            contextlib.closing(psycopg2.connect(bench.pg_dsn(db))) as conn,
        ):
            samples = bench.interleave(args.rounds, WARMUPS, one_round, url, token, http, conn)
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
