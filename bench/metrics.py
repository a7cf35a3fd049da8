"""Benchmark: the two metrics for year 2021 over 1,000,000 hired employees, over HTTP.

Run: ``.venv/bin/python bench/metrics.py``

For ``hiresByQuarter`` and ``departmentsAboveMean``, the median (and p90) latency of the REST
JSON route (``GET /api/metrics/...?year=2021``) and of the GraphQL query, served by gunicorn.

Baseline, measured in the same run and interleaved round by round: the exact SQL the ORM runs
for year 2021 (captured with ``CaptureQueriesContext`` around ``backend.metrics``), run in one
long-lived ``psql`` session with ``\\timing on`` and its output sent to ``/dev/null``; the
figures are psql's own ``Time: X ms`` lines, so psql's start-up is not counted. Target: median
HTTP latency <= 1.2x the psql median, for each metric and each API.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg2
import requests
from _common import (
    ROOT,
    app_env,
    create_token,
    drop_database,
    gunicorn,
    manage,
    median,
    ms,
    p90,
    pg_dsn,
    print_header,
    print_load,
    recreate_database,
    verdict,
)

DB_NAME = "roster_bench_metrics"
EMPLOYEES = 1_000_000
YEAR = 2021
WARMUPS = 5
ROUNDS = 30
TARGET_RATIO = 1.2
OTHER_BENCHMARKS = "bench/load_csv.py"  # wait until it is gone before measuring
QUIET_POLL_SECONDS = 20
QUIET_MAX_SECONDS = 30 * 60

METRICS = {  # name in backend.metrics: (REST path, GraphQL query, GraphQL field)
    "hires_by_quarter": (
        "/api/metrics/hires-by-quarter",
        f"{{ hiresByQuarter(year: {YEAR}) {{ department job q1 q2 q3 q4 }} }}",
        "hiresByQuarter",
    ),
    "departments_above_mean": (
        "/api/metrics/departments-above-mean",
        f"{{ departmentsAboveMean(year: {YEAR}) {{ id department hired }} }}",
        "departmentsAboveMean",
    ),
}

# 1,000,000 hires spread uniformly over 2020-2022 (UTC, whole seconds; 1096 days), departments
# skewed towards low ids (1 + floor(12 * u^1.5): about 19% for 1, 6% for 12) so that "above the
# mean" is a real cut, jobs uniform. Department 12 hires nobody in 2021: those rows move to
# 1..11. MATERIALIZED keeps each random() evaluated once per row.
_FILL = """
SELECT setseed(0.2021);
INSERT INTO hired_employees (id, name, datetime, department_id, job_id)
WITH t AS MATERIALIZED (
    SELECT i,
           timestamptz '2020-01-01 00:00:00+00'
               + floor(random() * 94694400) * interval '1 second' AS hired,
           1 + floor(power(random(), 1.5) * 12)::int AS department_id,
           1 + floor(random() * 183)::int AS job_id,
           1 + floor(random() * 11)::int AS other_department_id
    FROM generate_series(1, %(rows)s) AS i
)
SELECT i, 'Bench Employee ' || i, hired,
       CASE WHEN department_id = 12
                 AND hired >= timestamptz '2021-01-01 00:00:00+00'
                 AND hired < timestamptz '2022-01-01 00:00:00+00'
            THEN other_department_id ELSE department_id END,
       job_id
FROM t;
"""

# Run in the app's own settings: the SQL each metric sends for the year, exactly as sent.
_CAPTURE_SQL = """
import json
from django.db import connection
from django.test.utils import CaptureQueriesContext
from backend import metrics
captured = {}
for name in %(names)r:
    connection.ensure_connection()
    with CaptureQueriesContext(connection) as queries:
        getattr(metrics, name)(year=%(year)d)
    captured[name] = [query["sql"] for query in queries.captured_queries]
print("CAPTURED " + json.dumps(captured))
"""


def log(message: str) -> None:
    print(message)
    sys.stdout.flush()


# --- setup -----------------------------------------------------------------------------------


def prepare(rows: int) -> None:
    """Fresh database, migrated; departments and jobs through ``load_csv``; ``rows`` hires."""
    recreate_database(DB_NAME)
    env = app_env(DB_NAME)
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "load_csv", "data/sample/departments.csv", "data/sample/jobs.csv")
    started = time.perf_counter()
    conn = psycopg2.connect(pg_dsn(DB_NAME))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT (SELECT count(*) FROM departments), (SELECT count(*) FROM jobs)")
            counts = cur.fetchone()
            if counts != (12, 183):
                raise RuntimeError(f"expected 12 departments and 183 jobs, got {counts}")
            cur.execute(_FILL, {"rows": rows})
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE hired_employees")  # stats, visibility map, hint bits
            cur.execute("ANALYZE")
    finally:
        conn.close()
    log(f"   filled hired_employees with {rows:,} rows in {time.perf_counter() - started:.1f} s")


def captured_sql() -> dict[str, list[str]]:
    """The SQL statements each metric runs for ``YEAR``, captured in-process by Django."""
    code = _CAPTURE_SQL % {"names": tuple(METRICS), "year": YEAR}
    out = manage(app_env(DB_NAME), "shell", "-c", code)
    line = next(line for line in out.splitlines() if line.startswith("CAPTURED "))
    captured: dict[str, list[str]] = json.loads(line.removeprefix("CAPTURED "))
    for name, statements in captured.items():
        if not statements:
            raise RuntimeError(f"{name} ran no SQL")
    return captured


def wait_until_quiet() -> None:
    """Wait (up to 30 min) until no other benchmark named ``OTHER_BENCHMARKS`` is running."""
    deadline = time.monotonic() + QUIET_MAX_SECONDS
    waited = False
    while True:
        found = subprocess.run(["pgrep", "-f", OTHER_BENCHMARKS], capture_output=True, text=True)
        pids = [int(pid) for pid in found.stdout.split() if int(pid) != os.getpid()]
        if not pids:
            if waited:
                log(f"   {OTHER_BENCHMARKS} has finished")
            return
        if time.monotonic() >= deadline:
            log(f"   WARNING: {OTHER_BENCHMARKS} still running after 30 min; measuring anyway")
            return
        if not waited:
            log(f"   waiting for {OTHER_BENCHMARKS} (pid {pids}) to finish, polling every 20 s")
            waited = True
        time.sleep(QUIET_POLL_SECONDS)


# --- baseline: the same SQL in one long-lived psql session -----------------------------------


class Psql:
    """One ``psql`` session with ``\\timing on`` and query output to ``/dev/null``."""

    _TIME = re.compile(r"^Time: ([0-9.]+) ms")
    _DONE = "__bench_metrics_done__"

    def __init__(self, db_name: str) -> None:
        connect = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", db_name]
        self.proc = subprocess.Popen(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *connect],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._send("SET TIME ZONE 'UTC';\n\\timing on\n\\o /dev/null\n")

    def _send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def run(self, statements: list[str]) -> float:
        """Seconds psql reports for ``statements``, summed (each is one round trip)."""
        self._send("".join(f"{sql};\n" for sql in statements) + f"\\echo {self._DONE}\n")
        assert self.proc.stdout is not None
        timings: list[float] = []
        other: list[str] = []
        for line in self.proc.stdout:
            if line.strip() == self._DONE:
                break
            if match := self._TIME.match(line):
                timings.append(float(match.group(1)) / 1000)
            else:
                other.append(line)
        else:
            raise RuntimeError(f"psql exited:\n{''.join(other)}")
        if len(timings) != len(statements):
            raise RuntimeError(f"expected {len(statements)} timings from psql:\n{''.join(other)}")
        return sum(timings)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- HTTP ------------------------------------------------------------------------------------


def fetch_rest(session: requests.Session, url: str) -> tuple[float, list[dict[str, Any]]]:
    """One GET of the JSON route: seconds until the whole response arrived, and its rows."""
    started = time.perf_counter()
    response = session.get(url, params={"year": YEAR})
    elapsed = time.perf_counter() - started
    answer = response.json()
    if response.status_code != 200 or answer.get("year") != YEAR:
        raise RuntimeError(f"unexpected answer ({response.status_code}): {str(answer)[:500]}")
    return elapsed, answer["data"]


def fetch_graphql(
    session: requests.Session, url: str, query: str, field: str
) -> tuple[float, list[dict[str, Any]]]:
    """One GraphQL POST: seconds until the whole response arrived, and the field's rows."""
    body = json.dumps({"query": query}).encode()
    started = time.perf_counter()
    response = session.post(url, data=body, headers={"Content-Type": "application/json"})
    elapsed = time.perf_counter() - started
    answer = response.json()
    data = (answer.get("data") or {}).get(field)
    if response.status_code != 200 or answer.get("errors") or data is None:
        raise RuntimeError(f"unexpected answer ({response.status_code}): {str(answer)[:500]}")
    return elapsed, data


# --- checks ----------------------------------------------------------------------------------


def expected_answers() -> tuple[int, list[dict[str, Any]], int]:
    """Straight from SQL: 2021's hire count, the departments above the mean, dept 12's hires."""
    start, end = f"{YEAR}-01-01 00:00:00+00", f"{YEAR + 1}-01-01 00:00:00+00"
    conn = psycopg2.connect(pg_dsn(DB_NAME))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM hired_employees WHERE datetime >= %s AND datetime < %s",
                (start, end),
            )
            total = cur.fetchone()[0]
            cur.execute(
                "SELECT d.id, d.department, count(h.id) FROM departments d "
                "LEFT JOIN hired_employees h ON h.department_id = d.id "
                "AND h.datetime >= %s AND h.datetime < %s GROUP BY d.id ORDER BY d.id",
                (start, end),
            )
            per_department = cur.fetchall()
    finally:
        conn.close()
    mean = sum(row[2] for row in per_department) / len(per_department)
    above = sorted((row for row in per_department if row[2] > mean), key=lambda r: (-r[2], r[0]))
    last = next(row[2] for row in per_department if row[0] == 12)
    return total, [{"id": i, "department": d, "hired": n} for i, d, n in above], last


def check(answers: dict[str, dict[str, list[dict[str, Any]]]]) -> list[str]:
    """Compare the HTTP answers with plain SQL; one line per check."""
    total, above, department_12 = expected_answers()
    lines = []
    for api in ("rest", "graphql"):
        rows = answers["hires_by_quarter"][api]
        got = sum(row[q] for row in rows for q in ("q1", "q2", "q3", "q4"))
        lines.append(
            f"hiresByQuarter ({api}): {len(rows)} department/job rows, {got:,} hires; "
            f"SQL count(*) for {YEAR}: {total:,}  {'OK' if got == total else 'WRONG'}"
        )
        got_above = answers["departments_above_mean"][api]
        lines.append(
            f"departmentsAboveMean ({api}): ids {[row['id'] for row in got_above]}  "
            f"{'OK' if got_above == above else 'WRONG, expected ' + str(above)}"
        )
    same = all(answers[name]["rest"] == answers[name]["graphql"] for name in METRICS)
    lines.append(f"REST and GraphQL answers identical: {'yes' if same else 'NO'}")
    lines.append(f"department 12 hires in {YEAR}: {department_12} (the '0 hires' case)")
    return lines


def explain(captured: dict[str, list[str]]) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of each captured statement, for the record."""
    conn = psycopg2.connect(pg_dsn(DB_NAME))
    try:
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            for name, statements in captured.items():
                for sql in statements:
                    cur.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
                    log(f"\nEXPLAIN ANALYZE, {name}:")
                    for (line,) in cur.fetchall():
                        log(f"  {line}")
    finally:
        conn.close()


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=EMPLOYEES, help="hired employees to create")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--warmups", type=int, default=WARMUPS)
    parser.add_argument(
        "--no-wait", action="store_true", help=f"do not wait for {OTHER_BENCHMARKS} (trials only)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    args = parser.parse_args()

    os.chdir(ROOT)
    if not args.no_wait:
        wait_until_quiet()
    print_header(f"metrics for {YEAR} over {args.rows:,} hired employees, HTTP vs psql")
    try:
        run(args)
    finally:
        if not args.keep:
            drop_database(DB_NAME)
    print_load()


def run(args: argparse.Namespace) -> None:
    prepare(args.rows)
    captured = captured_sql()
    for name, statements in captured.items():
        log(f"   SQL of {name} ({len(statements)} statement(s)):")
        for sql in statements:
            log(f"     {sql}")
    token = create_token(DB_NAME, "bench-metrics", "read")

    samples: dict[tuple[str, str], list[float]] = {
        (name, kind): [] for name in METRICS for kind in ("psql", "rest", "graphql")
    }
    answers: dict[str, dict[str, list[dict[str, Any]]]] = {name: {} for name in METRICS}
    if not args.no_wait:
        wait_until_quiet()
    log(f"   load average before measuring: {Path('/proc/loadavg').read_text().split()[0]}")
    psql = Psql(DB_NAME)
    try:
        with gunicorn(DB_NAME, workers=2) as url, requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            base = url.removesuffix("/graphql")
            for round_ in range(args.warmups + args.rounds):  # interleaved, round by round
                for name, (path, query, field) in METRICS.items():
                    figures = {"psql": psql.run(captured[name])}
                    figures["rest"], answers[name]["rest"] = fetch_rest(session, base + path)
                    figures["graphql"], answers[name]["graphql"] = fetch_graphql(
                        session, url, query, field
                    )
                    if round_ >= args.warmups:
                        for kind, seconds in figures.items():
                            samples[(name, kind)].append(seconds)
    finally:
        psql.close()

    print()
    print(
        f"{args.rounds} interleaved rounds after {args.warmups} warm-ups, year {YEAR}, "
        f"{args.rows:,} rows in hired_employees:"
    )
    for name, (path, _, field) in METRICS.items():
        base_ms = median(samples[(name, "psql")])
        print(f"  {field}:")
        print(
            f"    psql (same SQL, \\timing): median {ms(base_ms)}, "
            f"p90 {ms(p90(samples[(name, 'psql')]))}"
        )
        for kind, label in (("rest", f"REST GET {path}"), ("graphql", "GraphQL POST /graphql")):
            got = samples[(name, kind)]
            ratio = median(got) / base_ms
            print(
                f"    {label}: median {ms(median(got))}, p90 {ms(p90(got))}, "
                f"{ratio:.2f}x psql (target <= {TARGET_RATIO}x)  {verdict(ratio <= TARGET_RATIO)}"
            )
    print()
    print("Checks against plain SQL:")
    for line in check(answers):
        print(f"  {line}")
    sys.stdout.flush()
    explain(captured)
    print()


if __name__ == "__main__":
    main()
