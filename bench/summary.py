"""Benchmark: the metrics and totalCount at 10,000,000 hired employees, read from the summary.

Two databases filled alike (``metrics.FILL``: 2020-2022, skewed departments): a large one
(``--rows``) and a small one (``--small`` rows), each served by gunicorn ``-w 2``. Over
GraphQL, one client, interleaved rounds: ``hiresByQuarter(year: 2021)``,
``departmentsAboveMean(year: 2021)``, and ``hiredEmployees(first: 0) { totalCount }`` with no
filter, ``departmentId: 5`` and ``jobId: 5``.

Figures: the large database's median. Baselines, measured in the same rounds: the same query
on the small database (target <= 1.2x), and the scan the answers took before the summary (the
GROUP BY over ``hired_employees``, or ``count(*)``) in one ``psql`` session on the large
database. Absolute targets at 10M: hiresByQuarter <= 50 ms, departmentsAboveMean <= 20 ms,
each totalCount <= 10 ms. The answers are checked against the scans.
"""

from __future__ import annotations

import json
from typing import Any

import _common as bench
from metrics import FILL, YEAR, psql_session

WARMUPS = 5
SMALL_RATIO = 1.2
QUERIES = {  # label: (GraphQL query, field, absolute target in seconds, the scan it replaces)
    "hiresByQuarter": (
        f"{{ hiresByQuarter(year: {YEAR}) {{ department job q1 q2 q3 q4 }} }}",
        "hiresByQuarter",
        0.050,
        f"""SELECT d.department, j.job,
            count(*) FILTER (WHERE extract(quarter FROM h.datetime AT TIME ZONE 'UTC') = 1),
            count(*) FILTER (WHERE extract(quarter FROM h.datetime AT TIME ZONE 'UTC') = 2),
            count(*) FILTER (WHERE extract(quarter FROM h.datetime AT TIME ZONE 'UTC') = 3),
            count(*) FILTER (WHERE extract(quarter FROM h.datetime AT TIME ZONE 'UTC') = 4)
        FROM hired_employees h JOIN departments d ON d.id = h.department_id
        JOIN jobs j ON j.id = h.job_id
        WHERE h.datetime >= '{YEAR}-01-01T00:00:00Z' AND h.datetime < '{YEAR + 1}-01-01T00:00:00Z'
        GROUP BY d.id, j.id ORDER BY d.department, j.job, d.id, j.id""",
    ),
    "departmentsAboveMean": (
        f"{{ departmentsAboveMean(year: {YEAR}) {{ id department hired }} }}",
        "departmentsAboveMean",
        0.020,
        f"""SELECT d.id, d.department, count(h.id) FROM departments d
        LEFT JOIN hired_employees h ON h.department_id = d.id
            AND h.datetime >= '{YEAR}-01-01T00:00:00Z' AND h.datetime < '{YEAR + 1}-01-01T00:00:00Z'
        GROUP BY d.id ORDER BY d.id""",
    ),
    "totalCount": (
        "{ hiredEmployees(first: 0) { totalCount } }",
        "hiredEmployees",
        0.010,
        "SELECT count(*) FROM hired_employees",
    ),
    "totalCount, departmentId 5": (
        "{ hiredEmployees(first: 0, filter: {departmentId: 5}) { totalCount } }",
        "hiredEmployees",
        0.010,
        "SELECT count(*) FROM hired_employees WHERE department_id = 5",
    ),
    "totalCount, jobId 5": (
        "{ hiredEmployees(first: 0, filter: {jobId: 5}) { totalCount } }",
        "hiredEmployees",
        0.010,
        "SELECT count(*) FROM hired_employees WHERE job_id = 5",
    ),
}


def check(db: str, answers: dict[str, Any]) -> None:
    """The large database's GraphQL answers against the scans, one line each."""
    quarterly = bench.sql(db, QUERIES["hiresByQuarter"][3])
    expected = [
        {"department": d, "job": j, "q1": a, "q2": b, "q3": c, "q4": e}
        for d, j, a, b, c, e in quarterly
    ]
    ok = answers["hiresByQuarter"] == expected
    print(f"  hiresByQuarter: {len(expected)} rows  {'OK' if ok else 'WRONG'}")
    per_department = bench.sql(db, QUERIES["departmentsAboveMean"][3])
    mean = sum(n for _, _, n in per_department) / len(per_department)
    above = sorted((r for r in per_department if r[2] > mean), key=lambda r: (-r[2], r[0]))
    expected_above = [{"id": i, "department": d, "hired": n} for i, d, n in above]
    ok = answers["departmentsAboveMean"] == expected_above
    print(f"  departmentsAboveMean: ids {[r[0] for r in above]}  {'OK' if ok else 'WRONG'}")
    for label in ("totalCount", "totalCount, departmentId 5", "totalCount, jobId 5"):
        (count,) = bench.sql(db, QUERIES[label][3])[0]
        got = int(answers[label]["totalCount"])
        print(f"  {label}: {got:,}; count(*): {count:,}  {'OK' if got == count else 'WRONG'}")


def main() -> None:
    args = bench.options(__doc__, rows=10_000_000, small=10_000, rounds=20)
    large, small = bench.database("summary_large"), bench.database("summary_small")
    title = f"metrics and totalCount at {args.rows:,} vs {args.small:,} hires, GraphQL"
    with bench.run(title, large):
        for db, rows in ((small, args.small), (large, args.rows)):
            bench.prepare_database(db)
            bench.fill_unindexed(db, FILL, rows)
        summary_rows = bench.sql(large, "SELECT count(*) FROM hire_counts")[0][0]
        print(f"summary rows at {args.rows:,} hires: {summary_rows:,}")
        tokens = {db: bench.create_token(db, "bench-summary", "read") for db in (large, small)}
        answers: dict[str, Any] = {}
        with (
            bench.gunicorn(large) as large_url,
            bench.gunicorn(small) as small_url,
            bench.session(tokens[large]) as large_http,
            bench.session(tokens[small]) as small_http,
            psql_session(large) as psql,
        ):

            def one_round(_: int) -> dict[tuple[str, str], float]:
                seconds = {}
                for label, (query, field, _, scan) in QUERIES.items():
                    body = json.dumps({"query": query}).encode()
                    seconds[(label, "large")], answers[label] = bench.post(
                        large_http, large_url, body, field
                    )
                    seconds[(label, "small")], _ = bench.post(small_http, small_url, body, field)
                    seconds[(label, "scan")] = psql([scan])
                return seconds

            samples = bench.interleave(args.rounds, WARMUPS, one_round)

        print(
            f"\n{args.rounds} interleaved rounds after {WARMUPS} warm-ups, year {YEAR}, "
            "POST /graphql, medians"
        )
        for label, (_, _, target, _) in QUERIES.items():
            got, same = samples[(label, "large")], samples[(label, "small")]
            figure = bench.median(got)
            note = f"; p90 {bench.ms(bench.p90(got))}"
            bench.compare(
                f"{label} at {args.rows:,}, baseline: at {args.small:,}",
                figure, bench.median(same), "ms", SMALL_RATIO, note=note,
            )  # fmt: skip
            bench.compare(
                f"{label} at {args.rows:,}, baseline: the scan in psql",
                figure, bench.median(samples[(label, "scan")]), "ms", at_most=target,
            )  # fmt: skip
        print("checks against the scans:")
        check(large, answers)
        bench.remove_database(small)


if __name__ == "__main__":
    main()
