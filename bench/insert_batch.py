"""Benchmark: ``insertBatch`` of 1000 hired_employees rows over HTTP (gunicorn, PostgreSQL).

Run: ``.venv/bin/python bench/insert_batch.py``

Baseline, measured in the same run: (a) the same query and variables executed in-process by a
bare Strawberry schema with a no-op resolver, plus (b) a psycopg2 ``execute_values`` insert of
1000 rows into the same table, committed. Targets: median latency <= 1.5x baseline, and at
least 25,000 rows/s with 2 concurrent clients.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2
import psycopg2.extras
import requests
import strawberry
from _common import (
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

DB_NAME = "roster_bench"
ROWS = 1000
WARMUPS = 6
LATENCY_REQUESTS = 30
CONCURRENT_CLIENTS = 2
REQUESTS_PER_CLIENT = 20
TARGET_RATIO = 1.5
TARGET_ROWS_PER_S = 25_000

MUTATION = (
    "mutation($rows: [HiredEmployeeInput!]!) "
    "{ insertBatch(input: {hiredEmployees: $rows}) { received inserted rejected } }"
)
_EPOCH = datetime(2021, 1, 1, tzinfo=UTC)


class Ids:
    """Fresh, never reused hired_employees ids, safe to take from several threads."""

    def __init__(self, start: int = 1) -> None:
        self._next = itertools.count(start)
        self._lock = threading.Lock()

    def take(self, count: int) -> list[int]:
        with self._lock:
            return [next(self._next) for _ in range(count)]


def make_rows(ids: list[int]) -> list[dict[str, Any]]:
    """Valid GraphQL rows: names, ISO datetimes, departments 1..12 and jobs 1..183."""
    return [
        {
            "id": i,
            "name": f"Bench Employee {i}",
            "datetime": (_EPOCH + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "departmentId": 1 + i % 12,
            "jobId": 1 + i % 183,
        }
        for i in ids
    ]


def make_body(ids: Ids) -> bytes:
    """One request body with 1000 fresh rows, encoded ahead of the clock."""
    variables = {"rows": make_rows(ids.take(ROWS))}
    return json.dumps({"query": MUTATION, "variables": variables}).encode()


def post(session: requests.Session, url: str, body: bytes) -> float:
    """Send one batch, check that all 1000 rows went in, and return the seconds it took."""
    started = time.perf_counter()
    response = session.post(url, data=body, headers={"Content-Type": "application/json"})
    elapsed = time.perf_counter() - started  # the whole body is in: decoding is the client's
    answer = response.json()
    result = (answer.get("data") or {}).get("insertBatch") or {}
    if response.status_code != 200 or answer.get("errors") or result.get("inserted") != ROWS:
        raise RuntimeError(f"unexpected answer ({response.status_code}): {str(answer)[:500]}")
    return elapsed


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


def baseline_graphql(body: bytes) -> float:
    """Seconds for an in-process ``execute_sync`` of the same query and variables."""
    request = json.loads(body)
    started = time.perf_counter()
    result = BARE_SCHEMA.execute_sync(request["query"], variable_values=request["variables"])
    elapsed = time.perf_counter() - started
    if result.errors or result.data["insertBatch"]["inserted"] != ROWS:
        raise RuntimeError(f"baseline schema failed: {result.errors}")
    return elapsed


# --- baseline (b): psycopg2 execute_values into the same table -------------------------------


def baseline_insert(conn: Any, ids: Ids) -> float:
    """Seconds for a committed ``execute_values`` insert of 1000 fresh rows."""
    rows = [
        (i, f"Bench Employee {i}", _EPOCH + timedelta(minutes=i), 1 + i % 12, 1 + i % 183)
        for i in ids.take(ROWS)
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


def _run_together(threads: list[threading.Thread], barrier: threading.Barrier) -> float:
    """Start ``threads``, release them at once through ``barrier`` (which counts this thread
    too), and return the wall-clock seconds until the last one is done."""
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def database_ceiling(ids: Ids, *, clients: int, batches_each: int) -> float:
    """Rows/s of ``clients`` threads doing nothing but baseline (b) at once: the most the
    database itself takes on this machine, whatever the server in front of it does."""
    conns = [psycopg2.connect(pg_dsn(DB_NAME)) for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def client(conn: Any) -> None:
        barrier.wait()
        for _ in range(batches_each):
            baseline_insert(conn, ids)

    wall = _run_together([threading.Thread(target=client, args=(conn,)) for conn in conns], barrier)
    for conn in conns:
        conn.close()
    return clients * batches_each * ROWS / wall


# --- HTTP ------------------------------------------------------------------------------------


def run_clients(
    url: str, token: str, ids: Ids, *, clients: int, requests_each: int
) -> tuple[float, list[float]]:
    """``clients`` threads, each with its own session, send ``requests_each`` batches at once.

    Returns the wall-clock seconds from the common start to the last answer, and every latency.
    """
    bodies = [[make_body(ids) for _ in range(requests_each)] for _ in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def client(n: int) -> None:
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            barrier.wait()
            try:
                for body in bodies[n]:
                    latencies[n].append(post(session, url, body))
            except BaseException as error:
                errors.append(error)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    wall = _run_together(threads, barrier)
    if errors:
        raise errors[0]
    return wall, [x for per_client in latencies for x in per_client]


def interleaved(url: str, token: str, ids: Ids, rounds: int) -> dict[str, list[float]]:
    """``rounds`` x (baseline a, baseline b, one HTTP batch), interleaved so that background
    load on the machine weighs on the figure and its baseline alike."""
    samples: dict[str, list[float]] = {"graphql": [], "insert": [], "http": []}
    conn = psycopg2.connect(pg_dsn(DB_NAME))
    try:
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            for _ in range(rounds):
                body = make_body(ids)
                samples["graphql"].append(baseline_graphql(body))
                samples["insert"].append(baseline_insert(conn, ids))
                samples["http"].append(post(session, url, body))
    finally:
        conn.close()
    return samples


def main() -> None:
    print_header("insertBatch: 1000 hired_employees rows per request, HTTP, PostgreSQL")
    prepare_database(DB_NAME)
    token = create_token(DB_NAME, "bench", "write")
    ids = Ids(start=1)

    with gunicorn(DB_NAME, workers=2) as url:
        interleaved(url, token, ids, rounds=WARMUPS)
        run_clients(url, token, ids, clients=CONCURRENT_CLIENTS, requests_each=2)  # warm both
        samples = interleaved(url, token, ids, rounds=LATENCY_REQUESTS)
        wall_1, _ = run_clients(url, token, ids, clients=1, requests_each=REQUESTS_PER_CLIENT)
        wall_2, latencies_2 = run_clients(
            url, token, ids, clients=CONCURRENT_CLIENTS, requests_each=REQUESTS_PER_CLIENT
        )
    ceiling = database_ceiling(ids, clients=CONCURRENT_CLIENTS, batches_each=REQUESTS_PER_CLIENT)

    graphql, insert, http = samples["graphql"], samples["insert"], samples["http"]
    baseline = median(graphql) + median(insert)
    ratio = median(http) / baseline
    baseline_rows = ROWS / baseline
    rows_1 = REQUESTS_PER_CLIENT * ROWS / wall_1
    rows_2 = CONCURRENT_CLIENTS * REQUESTS_PER_CLIENT * ROWS / wall_2

    print()
    print(f"{LATENCY_REQUESTS} interleaved rounds after {WARMUPS} warm-up rounds:")
    print(f"  (a) bare Strawberry execute_sync, no-op resolver: median {ms(median(graphql))}")
    print(f"  (b) psycopg2 execute_values 1000 rows + commit:   median {ms(median(insert))}")
    print(f"  baseline = median(a) + median(b):                 {ms(baseline)}")
    print(f"  insertBatch over HTTP, 1 client:  median {ms(median(http))}, p90 {ms(p90(http))}")
    print(
        f"  latency: {ms(median(http))} vs baseline {ms(baseline)} = {ratio:.2f}x "
        f"(target <= {TARGET_RATIO}x)  {verdict(ratio <= TARGET_RATIO)}"
    )
    print(f"throughput (baseline = 1000 rows / baseline latency = {baseline_rows:,.0f} rows/s):")
    print(
        f"  1 client x {REQUESTS_PER_CLIENT} requests:  {rows_1:,.0f} rows/s "
        f"= {rows_1 / baseline_rows:.2f}x baseline"
    )
    print(
        f"  {CONCURRENT_CLIENTS} clients x {REQUESTS_PER_CLIENT} requests: {rows_2:,.0f} rows/s "
        f"= {rows_2 / baseline_rows:.2f}x baseline, median latency {ms(median(latencies_2))} "
        f"(target >= {TARGET_ROWS_PER_S:,} rows/s)  {verdict(rows_2 >= TARGET_ROWS_PER_S)}"
    )
    print(
        f"  database ceiling: {CONCURRENT_CLIENTS} psycopg2 clients doing only (b): "
        f"{ceiling:,.0f} rows/s; insertBatch reaches {rows_2 / ceiling:.0%} of it"
    )
    print_load()


if __name__ == "__main__":
    main()
