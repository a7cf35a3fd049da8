"""Benchmark: the historic CSV load, ``manage.py load_csv`` of a 1,000,000-row hired_employees
file (1% bad rows), from a local file and from an S3 API server, on PostgreSQL.

Run: ``.venv/bin/python bench/load_csv.py`` (``--rows N --small-rows N`` for a shorter run)

Baseline, measured in the same run: ``psql -c "\\copy hired_employees ... csv"`` of the file's
valid rows into the same table, with the same constraints. Targets: load time <= 1.5x the
``\\copy`` time, and a peak RSS (``/usr/bin/time``'s, the loader's largest process) <= 150 MB
that stays flat from a 100,000-row file to the 1,000,000-row file. The S3 server (moto) runs in
this process, on the same CPUs: it is part of what is timed.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import _common as bench

TARGET_RATIO = 1.5
TARGET_RSS_MB = 150
BUCKET = "roster-bench"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def emptied(db: str) -> None:
    """Empty what a load writes, and checkpoint: each measurement starts from the same state."""
    bench.sql(db, "TRUNCATE hired_employees, rejections, parked_references, batches, load_runs")
    bench.sql(db, "CHECKPOINT")


def check(db: str, inserted: int, rejected: int) -> None:
    counts = "SELECT (SELECT count(*) FROM hired_employees), (SELECT count(*) FROM rejections)"
    if (found := bench.sql(db, counts)[0]) != (inserted, rejected):
        raise RuntimeError(f"expected {inserted} rows and {rejected} rejections, got {found}")


def load(db: str, source: str, rows: int, bad: int, **env: str) -> bench.Timed:
    """``manage.py load_csv source`` on emptied tables (only errors logged: every rejected row
    would be a WARNING line): its time and peak RSS. Every row must be stored or rejected."""
    emptied(db)
    run = bench.timed(
        [bench.PYTHON, "manage.py", "load_csv", source], bench.app_env(db, LOG_LEVEL="ERROR", **env)
    )
    check(db, rows - bad, bad)
    return run


def copy(db: str, valid: Path, rows: int) -> float:
    """Seconds of psql's ``\\copy`` of the valid rows into the emptied table."""
    emptied(db)
    command = f"\\copy hired_employees ({bench.COLUMNS}) from '{valid}' csv"  # no quote in tmp
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-q", "-c", command]
    seconds = bench.timed(psql, bench.app_env(db)).seconds
    check(db, rows, 0)
    return seconds


@contextlib.contextmanager
def s3_file(path: Path) -> Iterator[dict[str, str]]:
    """``path`` uploaded to moto's S3 server, run in a thread of this process: the loader's
    environment to read it."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {**S3_ENV, "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
        client = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket=BUCKET)
        client.upload_file(str(path), BUCKET, path.name)
        yield env
    finally:
        server.stop()


def main() -> None:
    args = bench.options(__doc__, rows=1_000_000, small_rows=100_000)
    db = bench.database("load")
    title = f"load_csv: {args.rows:,}-row hired_employees file, 1% bad rows"
    with bench.run(title, db), tempfile.TemporaryDirectory(prefix="bench-load-csv-") as tmp:
        bench.prepare_database(db)
        big, small = Path(tmp) / "hired_employees.csv", Path(tmp) / "hired_employees_small.csv"
        clock = time.perf_counter()
        valid, bad = bench.hired_employees_csv(big, args.rows)
        _, small_bad = bench.hired_employees_csv(small, args.small_rows)
        print(
            f"generated {big.stat().st_size / 1e6:.1f} MB ({args.rows:,} rows, {bad:,} bad) "
            f"and {args.small_rows:,} rows in {time.perf_counter() - clock:.1f} s",
            flush=True,
        )

        runs = {f"{args.small_rows:,} rows": load(db, str(small), args.small_rows, small_bad)}
        seconds = copy(db, valid, args.rows - bad)
        runs[f"{args.rows:,} rows"] = local = load(db, str(big), args.rows, bad)
        with s3_file(big) as s3_env:
            source = f"s3://{BUCKET}/{big.name}"
            runs[f"{args.rows:,} rows from S3"] = s3 = load(db, source, args.rows, bad, **s3_env)

        print(f"\ncounts checked after every load: {args.rows - bad:,} inserted, {bad:,} rejected")
        bench.compare(
            "load_csv vs \\copy",
            local.seconds,
            seconds,
            "s",
            TARGET_RATIO,
            note=f"; {args.rows / local.seconds:,.0f} rows/s",
        )
        bench.compare("load_csv from S3 vs \\copy", s3.seconds, seconds, "s")
        for label, run in runs.items():
            print(
                f"peak RSS, {label}: {run.rss_mb:.1f} MB  (target <= {TARGET_RSS_MB} MB)  "
                f"{bench.verdict(run.rss_mb <= TARGET_RSS_MB)}"
            )


if __name__ == "__main__":
    main()
