"""Benchmark: the historic CSV load, ``manage.py load_csv`` of a 1,000,000-row hired_employees
file (1% bad rows), from a local file and from an S3 API server, on PostgreSQL.

Baseline, in the same run: psql's ``\\copy`` of the file's valid rows into the same table, with
the same constraints and triggers. Targets (issue 14): load time <= 1.0x the ``\\copy`` time,
and a peak RSS (the loader's largest process) <= 150 MB that stays flat from a 100,000-row file
to the full one. The S3 server (moto) runs in this process, on the same CPUs: it is part of what
is timed; ``--s3 0`` leaves that run out (at 10M rows it doubles the benchmark's time).
``--chunk-size`` passes the loader's own option (0: its default).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import _common as bench

TARGET_RATIO, TARGET_RSS_MB = 1.0, 150
BUCKET = "roster-bench"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def measure(
    db: str, source: Path | str, rows: int, bad: int | None, chunk_size: int = 0, **env: str
) -> bench.Timed:
    """On emptied tables, checkpointed (each measurement starts from the same state): psql's
    ``\\copy`` of the valid rows file ``source`` if ``bad`` is None, else ``manage.py load_csv
    source`` (only errors logged: each rejected row is a WARNING). Every row must then be
    stored or rejected."""
    bench.sql(db, "TRUNCATE hired_employees, rejections, parked_references, batches, load_runs")
    bench.sql(db, "CHECKPOINT")
    if bad is None:
        run, expected = bench.copy_csv(db, Path(source)), (rows, 0)
    else:
        command = [bench.PYTHON, "manage.py", "load_csv", str(source)]
        command += [f"--chunk-size={chunk_size}"] if chunk_size else []
        run = bench.timed(command, bench.app_env(db, LOG_LEVEL="ERROR", **env))
        expected = (rows - bad, bad)
    counts = "SELECT (SELECT count(*) FROM hired_employees), (SELECT count(*) FROM rejections)"
    if (found := bench.sql(db, counts)[0]) != expected:
        raise RuntimeError(f"expected {expected} rows and rejections, got {found}")
    return run


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
    args = bench.options(__doc__, rows=1_000_000, small_rows=100_000, s3=1, chunk_size=0)
    db, rows, small_rows = bench.database("load"), args.rows, args.small_rows
    title = f"load_csv: {rows:,}-row hired_employees file, 1% bad rows"
    title += f", chunks of {args.chunk_size:,} rows" if args.chunk_size else ""
    with bench.run(title, db), tempfile.TemporaryDirectory(prefix="bench-load-csv-") as tmp:
        bench.prepare_database(db)
        big, small = Path(tmp) / "hired_employees.csv", Path(tmp) / "hired_employees_small.csv"
        clock = time.perf_counter()
        valid, bad = bench.hired_employees_csv(big, rows)
        _, small_bad = bench.hired_employees_csv(small, small_rows)
        print(
            f"generated {big.stat().st_size / 1e6:.1f} MB ({rows:,} rows, {bad:,} bad) "
            f"and {small_rows:,} rows in {time.perf_counter() - clock:.1f} s",
            flush=True,
        )

        chunk = args.chunk_size
        runs = {f"{small_rows:,} rows": measure(db, small, small_rows, small_bad, chunk)}
        copy = measure(db, valid, rows - bad, None).seconds
        runs[f"{rows:,} rows"] = local = measure(db, big, rows, bad, chunk)
        if args.s3:
            with s3_file(big) as s3_env:
                s3 = measure(db, f"s3://{BUCKET}/{big.name}", rows, bad, chunk, **s3_env)
                runs[f"{rows:,} rows from S3"] = s3

        print(f"\ncounts checked after every load: {rows - bad:,} inserted, {bad:,} rejected")
        rate = f"; {rows / local.seconds:,.0f} rows/s"
        bench.compare("load_csv vs \\copy", local.seconds, copy, "s", TARGET_RATIO, note=rate)
        if args.s3:
            bench.compare("load_csv from S3 vs \\copy", s3.seconds, copy, "s")
        for label, run in runs.items():
            print(
                f"peak RSS, {label}: {run.rss_mb:.1f} MB  (target <= {TARGET_RSS_MB} MB)  "
                f"{bench.verdict(run.rss_mb <= TARGET_RSS_MB)}"
            )


if __name__ == "__main__":
    main()
