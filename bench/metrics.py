"""Benchmark: reads over 1,000,000 hired employees, over HTTP, against their own SQL in psql.

For ``hiresByQuarter`` and ``departmentsAboveMean`` (year 2021), the median (and p90) latency
of the REST route (``GET /api/metrics/...?year=2021``) and of the GraphQL query; for the
traversal ``departments(first: 12) { nodes { hiredEmployees(first: 100) { ... } } }``, of the
GraphQL query. Served by gunicorn. Baseline, interleaved round by round: the exact SQL the app
runs (captured with ``CaptureQueriesContext``) in one long-lived ``psql`` session, output to
``/dev/null``, timed by psql's own ``\\timing`` lines (its start-up is not counted). Targets:
median HTTP latency <= 1.2x the psql median for each metric and API, <= 1.5x for the traversal.
The answers are checked against plain SQL.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import _common as bench
import requests

YEAR, WARMUPS, TARGET_RATIO, TRAVERSAL_RATIO = 2021, 5, 1.2, 1.5
TRAVERSAL = (
    "{ departments(first: 12) { nodes { id hiredEmployees(first: 100) "
    "{ nodes { id name job { job } } } } } }"
)
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

# Hires spread uniformly over 2020-2022 (UTC, whole seconds; 1096 days), departments skewed
# towards low ids (1 + floor(12 * u^1.5): about 19% for 1, 6% for 12) so that "above the mean"
# is a real cut, jobs uniform. Department 12 hires nobody in 2021: those rows move to 1..11.
# MATERIALIZED keeps each random() evaluated once per row.
FILL = """
SELECT setseed(0.2021);
INSERT INTO hired_employees (id, name, datetime, department_id, job_id)
WITH t AS MATERIALIZED (
    SELECT i,
           timestamptz '2020-01-01 00:00:00+00'
               + floor(random() * 94694400) * interval '1 second' AS hired,
           1 + floor(power(random(), 1.5) * 12)::int AS department_id,
           1 + floor(random() * 183)::int AS job_id,
           1 + floor(random() * 11)::int AS other_department_id
    FROM generate_series(1, {rows}) AS i
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
CAPTURE_SQL = """
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
from backend.models import Department
from graph import pagination, selectors
with CaptureQueriesContext(connection) as queries:  # what the traversal's resolvers run
    page = pagination.paginate(
        Department.objects.all(), first=12, after=None, build=selectors.department_nodes
    )
    for node in page.nodes:
        node._children.hired_employees(node.id, first=100, after=None, where=None, order=None)
captured["traversal"] = [query["sql"] for query in queries.captured_queries]
with CaptureQueriesContext(connection) as queries:  # the window function, as on SQLite
    ids = [node.id for node in page.nodes]
    rows = pagination.page_rows(selectors.hired_employees(None), pagination.BY_ID, None)
    selectors.rows_by_window("department_id", ids, rows, pagination.BY_ID, 101)
captured["window"] = [*captured["traversal"][:1], queries.captured_queries[0]["sql"]]
print("CAPTURED " + json.dumps(captured))
"""

# Straight from SQL: the year's hires per department (0 for none), to check the answers by.
PER_DEPARTMENT = """
SELECT d.id, d.department, count(h.id) FROM departments d
LEFT JOIN hired_employees h ON h.department_id = d.id
    AND h.datetime >= %(start)s AND h.datetime < %(end)s
GROUP BY d.id ORDER BY d.id
"""
FIRST_HIRES = """
SELECT department_id, array_agg(id ORDER BY id) FROM (
    SELECT department_id, id, row_number() OVER (PARTITION BY department_id ORDER BY id) AS n
    FROM hired_employees
) AS ranked WHERE n <= 100 GROUP BY department_id ORDER BY department_id
"""


@contextlib.contextmanager
def psql_session(db: str) -> Iterator[Callable[[list[str]], float]]:
    """One ``psql`` session with ``\\timing on`` and query output to ``/dev/null``: a function
    giving the seconds psql reports for some statements, summed (each is one round trip)."""
    pipe = subprocess.PIPE
    proc = subprocess.Popen(
        bench.psql(db), stdin=pipe, stdout=pipe, stderr=subprocess.STDOUT, text=True, bufsize=1
    )

    def run(statements: list[str], done: str = "__bench_metrics_done__") -> float:
        proc.stdin.write("".join(f"{sql};\n" for sql in statements) + f"\\echo {done}\n")
        proc.stdin.flush()
        timings, other = [], []
        for line in proc.stdout:
            if line.strip() == done:
                break
            if match := re.match(r"Time: ([0-9.]+) ms", line):
                timings.append(float(match[1]) / 1000)
            else:
                other.append(line)
        if len(timings) != len(statements):
            raise RuntimeError(f"expected {len(statements)} timings from psql:\n{''.join(other)}")
        return sum(timings)

    proc.stdin.write("SET TIME ZONE 'UTC';\n\\timing on\n\\o /dev/null\n")
    try:
        yield run
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def rest(http: requests.Session, url: str) -> tuple[float, list[dict[str, Any]]]:
    """One GET of the JSON route: seconds until the whole response arrived, and its rows."""
    elapsed, response = bench.clock(http.get, url, params={"year": YEAR})
    answer = response.json()
    if response.status_code != 200 or answer.get("year") != YEAR:
        raise RuntimeError(f"unexpected answer ({response.status_code}): {str(answer)[:500]}")
    return elapsed, answer["data"]


def check(db: str, answers: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    """Compare the HTTP answers with plain SQL, one line per check."""
    bounds = {"start": f"{YEAR}-01-01 00:00:00+00", "end": f"{YEAR + 1}-01-01 00:00:00+00"}
    per_department = bench.sql(db, PER_DEPARTMENT, bounds)
    total = sum(row[2] for row in per_department)
    mean = total / len(per_department)
    above = sorted((row for row in per_department if row[2] > mean), key=lambda r: (-r[2], r[0]))
    above = [{"id": i, "department": d, "hired": n} for i, d, n in above]
    for api in ("rest", "graphql"):
        rows = answers[("hires_by_quarter", api)]
        got = sum(row[q] for row in rows for q in ("q1", "q2", "q3", "q4"))
        print(
            f"  hiresByQuarter ({api}): {len(rows)} department/job rows, {got:,} hires; "
            f"SQL: {total:,}  {'OK' if got == total else 'WRONG'}"
        )
        got_above = answers[("departments_above_mean", api)]
        print(
            f"  departmentsAboveMean ({api}): ids {[row['id'] for row in got_above]}  "
            f"{'OK' if got_above == above else f'WRONG, expected {above}'}"
        )
    same = all(answers[(name, "rest")] == answers[(name, "graphql")] for name in METRICS)
    print(f"  REST and GraphQL answers identical: {'yes' if same else 'NO'}")
    last = next(n for i, _, n in per_department if i == 12)
    print(f"  department 12 hires in {YEAR}: {last} (the '0 hires' case)")
    first_hires = [[i, ids] for i, ids in bench.sql(db, FIRST_HIRES)]
    got_hires = [
        [d["id"], [h["id"] for h in d["hiredEmployees"]["nodes"]]]
        for d in answers[("traversal", "graphql")]["nodes"]
    ]
    print(
        f"  traversal: {sum(len(ids) for _, ids in got_hires):,} hires in "
        f"{len(got_hires)} departments  {'OK' if got_hires == first_hires else 'WRONG'}"
    )


def main() -> None:
    args = bench.options(__doc__, rows=1_000_000, rounds=30)
    db = bench.database("metrics")
    with bench.run(f"metrics for {YEAR} over {args.rows:,} hired employees, HTTP vs psql", db):
        bench.prepare_database(db)
        bench.fill(db, FILL, args.rows)
        code = CAPTURE_SQL % {"names": tuple(METRICS), "year": YEAR}  # and the traversal
        out = bench.manage(bench.app_env(db), "shell", "-c", code).split("CAPTURED ", 1)[1]
        captured: dict[str, list[str]] = json.loads(out)
        for name, statements in captured.items():
            if not statements:
                raise RuntimeError(f"{name} ran no SQL")
            print(f"SQL of {name}: {' ; '.join(statements)}")
        token = bench.create_token(db, "bench-metrics", "read")

        answers: dict[tuple[str, str], list[dict[str, Any]]] = {}  # the last round's
        with bench.gunicorn(db) as url, bench.session(token) as http, psql_session(db) as psql:

            def one_round(_: int) -> dict[tuple[str, str], float]:
                """Each metric in psql, then over REST, then over GraphQL."""
                seconds = {}
                for name, (path, query, field) in METRICS.items():
                    body = json.dumps({"query": query}).encode()
                    seconds[(name, "psql")] = psql(captured[name])
                    figures = {"rest": rest(http, url.removesuffix("/graphql") + path)}
                    figures["graphql"] = bench.post(http, url, body, field)
                    for kind, (figure, answer) in figures.items():
                        seconds[(name, kind)], answers[(name, kind)] = figure, answer
                seconds[("traversal", "psql")] = psql(captured["traversal"])
                seconds[("traversal", "window")] = psql(captured["window"])
                body = json.dumps({"query": TRAVERSAL}).encode()
                figure, answers[("traversal", "graphql")] = bench.post(
                    http, url, body, "departments"
                )
                seconds[("traversal", "graphql")] = figure
                return seconds

            samples = bench.interleave(args.rounds, WARMUPS, one_round)

        print(
            f"\n{args.rounds} interleaved rounds after {WARMUPS} warm-ups, year {YEAR}, "
            f"{args.rows:,} rows; baseline: the same SQL in psql (\\timing)"
        )
        for name, (path, _, field) in METRICS.items():
            base = samples[(name, "psql")]
            for kind, label in (("rest", f"GET {path}"), ("graphql", "POST /graphql")):
                got = samples[(name, kind)]
                note = f"; p90 {bench.ms(bench.p90(got))} | baseline {bench.ms(bench.p90(base))}"
                figure, baseline = bench.median(got), bench.median(base)
                bench.compare(
                    f"{field}, {label}, median", figure, baseline, "ms", TARGET_RATIO, note=note
                )
        got = samples[("traversal", "graphql")]
        label = "departments(first: 12) x hiredEmployees(first: 100), POST /graphql, median"
        for sql, target, what in (("window", TRAVERSAL_RATIO, "a window function, as SQLite runs"),
                                  ("psql", None, "Roster's own LATERAL SQL")):  # fmt: skip
            base = samples[("traversal", sql)]
            note = f"; p90 {bench.ms(bench.p90(got))} | baseline {bench.ms(bench.p90(base))}"
            note += f"; baseline: {what}, in psql"
            figure, baseline = bench.median(got), bench.median(base)
            bench.compare(label, figure, baseline, "ms", target, note=note)
        print("checks against plain SQL:")
        check(db, answers)


if __name__ == "__main__":
    main()
