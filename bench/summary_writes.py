"""Benchmark: what the hires summary costs the writers: 2 clients sending ``insertBatch`` of
1000 rows at once, with and without the summary's triggers.

Two databases, migrated alike; the baseline's has the four ``hire_counts_on_*`` triggers
dropped, so the only difference is the summary's upkeep. Each served by gunicorn ``-w 2``,
measured in interleaved rounds (``--rounds``, each ``--requests`` batches per client). Both
clients' batches fall in the same quarter and share their ~730 summary keys: the worst case
for row locks. Target: rows/s with the summary >= 0.9x without (a drop of at most 10%).
The summary must equal a scan of the rows at the end.
"""

from __future__ import annotations

import _common as bench
from insert_batch import CLIENTS, ROWS, clients

TARGET = 0.9
QUARTERLY = """SELECT year, department_id, job_id, q.quarter, sum(q.hires) AS hires
    FROM hire_counts, LATERAL (VALUES (1, q1), (2, q2), (3, q3), (4, q4)) AS q(quarter, hires)
    GROUP BY 1, 2, 3, 4 HAVING sum(q.hires) <> 0"""
EXACT = f"""
SELECT (SELECT count(*) FROM (
    SELECT extract(year FROM datetime AT TIME ZONE 'UTC')::int AS year, department_id, job_id,
           extract(quarter FROM datetime AT TIME ZONE 'UTC')::int AS quarter, count(*) AS hires
    FROM hired_employees GROUP BY 1, 2, 3, 4
    EXCEPT {QUARTERLY}
) AS missing), (SELECT count(*) FROM ({QUARTERLY}) AS keys),
(SELECT count(*) FROM hire_counts WHERE stripe > 0)
"""


def main() -> None:
    args = bench.options(__doc__, rounds=5, requests=20)
    kept, bare = bench.database("summary_kept"), bench.database("summary_bare")
    with bench.run(f"insertBatch, {CLIENTS} clients, with and without the hires summary", kept):
        for db in (kept, bare):
            bench.prepare_database(db)
        for event in ("insert", "update", "delete", "truncate"):
            bench.sql(bare, f"DROP TRIGGER hire_counts_on_{event} ON hired_employees")
        tokens = {db: bench.create_token(db, "bench", "write") for db in (kept, bare)}
        with bench.gunicorn(kept) as kept_url, bench.gunicorn(bare) as bare_url:

            def one_round(_: int) -> dict[str, float]:
                seconds = {}
                for db, url in ((kept, kept_url), (bare, bare_url)):
                    seconds[db], _ = clients(url, tokens[db], CLIENTS, args.requests)
                return seconds

            samples = bench.interleave(args.rounds, 1, one_round)
        rows = CLIENTS * args.requests * ROWS
        with_summary, without = (rows / bench.median(samples[db]) for db in (kept, bare))
        print(
            f"\n{args.rounds} interleaved rounds after 1 warm-up; {CLIENTS} clients x "
            f"{args.requests} batches of {ROWS} rows each, per round; medians"
        )
        bench.compare(
            f"{CLIENTS} clients with the summary, baseline: without its triggers",
            with_summary, without, "rows/s", at_least=TARGET * without,
        )  # fmt: skip
        missing, keys, striped = bench.sql(kept, EXACT)[0]
        print(f"summary against a scan: {keys:,} keys ({striped:,} rows in stripes 1-3), "
              f"{missing} differ  {'OK' if missing == 0 else 'WRONG'}")  # fmt: skip
        bench.remove_database(bare)


if __name__ == "__main__":
    main()
