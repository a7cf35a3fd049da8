"""Benchmark: the historic CSV load, ``manage.py load_csv`` of a 1,000,000-row hired_employees
file (1% bad rows), from a local file and from an S3 API server, on PostgreSQL.

Run: ``.venv/bin/python bench/load_csv.py``

Baseline, measured in the same run: ``psql -c "\\copy hired_employees ... csv"`` of the file's
valid rows into the same table, with the same constraints. Targets: load time <= 1.5x the
``\\copy`` time, and a peak RSS (the loader and any process it starts) <= 150 MB that stays
flat from a 100,000-row file to the 1,000,000-row file.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
from _common import (
    PYTHON,
    ROOT,
    app_env,
    manage,
    pg_dsn,
    print_header,
    print_load,
    recreate_database,
    verdict,
)

DB_NAME = "roster_bench_load"
ROWS = 1_000_000
SMALL_ROWS = 100_000
BAD_EVERY = 100  # 1% of the rows are bad
TARGET_RATIO = 1.5
TARGET_RSS_MB = 150
BUCKET = "roster-bench"
COLUMNS = "id,name,datetime,department_id,job_id"
LOADER_TABLES = ("hired_employees", "rejections", "batches", "load_runs")

_EPOCH = datetime(2019, 1, 1, tzinfo=UTC)
_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Perlman"]


# --- the files -------------------------------------------------------------------------------


def _bad_row(i: int) -> str:
    """Three kinds of bad row, in turn: a bad datetime, a missing job, an unknown department."""
    kind = (i // BAD_EVERY) % 3
    if kind == 0:
        return f"{i},Bad Date {i},2021-13-45T99:00:00Z,{1 + i % 12},{1 + i % 183}\n"
    if kind == 1:
        return f"{i},No Job {i},2021-03-04T10:00:00Z,{1 + i % 12},\n"
    return f"{i},Nowhere {i},2021-03-04T10:00:00Z,99,{1 + i % 183}\n"


def generate(folder: Path, rows: int, name: str) -> tuple[Path, Path, int]:
    """``name`` with ``rows`` rows (every 100th one bad) and a copy with only the valid rows.

    Returns both paths and the number of bad rows.
    """
    rng = random.Random(rows)
    path, valid_path = folder / name, folder / f"valid_{name}"
    bad = 0
    with path.open("w", encoding="utf-8") as out, valid_path.open("w", encoding="utf-8") as ok:
        for i in range(1, rows + 1):
            if i % BAD_EVERY == 0:
                out.write(_bad_row(i))
                bad += 1
                continue
            moment = _EPOCH + timedelta(seconds=rng.randrange(3 * 365 * 86400))
            line = (
                f"{i},{rng.choice(_FIRST)} {rng.choice(_LAST)},"
                f"{moment.strftime('%Y-%m-%dT%H:%M:%SZ')},"
                f"{rng.randint(1, 12)},{rng.randint(1, 183)}\n"
            )
            out.write(line)
            ok.write(line)
    return path, valid_path, bad


# --- the database ----------------------------------------------------------------------------


def loader_env(db_name: str) -> dict[str, str]:
    """The loader's environment: production settings, the bench database, only errors logged
    (every rejected row would otherwise be a WARNING line on stderr)."""
    return {**app_env(db_name), "LOG_LEVEL": "ERROR"}


def prepare(db_name: str) -> None:
    """Fresh database, migrated, with the sample departments and jobs loaded by load_csv."""
    recreate_database(db_name)
    env = loader_env(db_name)
    manage(env, "migrate", "--noinput", "-v", "0")
    sample = ROOT / "data" / "sample"
    manage(env, "load_csv", str(sample / "departments.csv"), str(sample / "jobs.csv"))
    found = query(db_name, "SELECT (SELECT count(*) FROM departments), (SELECT count(*) FROM jobs)")
    if found != (12, 183):
        raise RuntimeError(f"expected 12 departments and 183 jobs, got {found}")


def query(db_name: str, sql: str) -> tuple:
    conn = psycopg2.connect(pg_dsn(db_name))
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()
    finally:
        conn.close()


def reset(db_name: str, tables: tuple[str, ...]) -> None:
    """Empty ``tables`` and checkpoint, so each measurement starts from the same state."""
    conn = psycopg2.connect(pg_dsn(db_name))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f"TRUNCATE {', '.join(tables)}")
            cur.execute("CHECKPOINT")
    finally:
        conn.close()


def counts(db_name: str) -> tuple[int, int]:
    return query(
        db_name, "SELECT (SELECT count(*) FROM hired_employees), (SELECT count(*) FROM rejections)"
    )


def check_counts(db_name: str, inserted: int, rejected: int) -> None:
    found = counts(db_name)
    if found != (inserted, rejected):
        raise RuntimeError(f"expected {inserted} rows and {rejected} rejections, got {found}")


# --- measurements ----------------------------------------------------------------------------


def copy_baseline(db_name: str, valid_path: Path, expected: int) -> float:
    """Wall-clock seconds of psql's ``\\copy`` of the valid rows into an empty table."""
    reset(db_name, LOADER_TABLES)
    command = (
        f"\\copy hired_employees ({COLUMNS}) from '{valid_path}' csv"  # no quote in temp paths
    )
    started = time.perf_counter()
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db_name, "-q", "-c", command],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    check_counts(db_name, expected, 0)
    return elapsed


@dataclass
class Run:
    seconds: float
    tree_mb: float  # the largest sum of RSS over the loader and the processes it started
    maxrss_mb: float  # the kernel's peak RSS of the loader's largest single process

    @property
    def peak_mb(self) -> float:
        return max(self.tree_mb, self.maxrss_mb)


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError, IndexError, ValueError):
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_KB
    return 0


def _sample_tree(root: int, done: threading.Event, peak: list[int]) -> None:
    """Sum the RSS of the processes below ``root`` (``/usr/bin/time``) every 50 ms; keep the
    largest sum. The process list is refreshed every 0.5 s only: scanning /proc costs CPU."""
    pids, refreshed = [], 0.0
    while not done.is_set():
        if time.monotonic() - refreshed > 0.5:
            pids, refreshed = _descendants(root)[1:], time.monotonic()
        peak[0] = max(peak[0], sum(_rss_kb(p) for p in pids))
        done.wait(0.05)


def run_loader(db_name: str, source: str, env: dict[str, str]) -> Run:
    """``manage.py load_csv source`` in a child process: its wall time and peak memory.

    It runs under ``/usr/bin/time -f "%e %M"``: the kernel's peak RSS of a process started by
    this one would include the pages it was forked with (this process holds the S3 server's
    copy of the file), while ``time`` is small.
    """
    reset(db_name, LOADER_TABLES)
    with tempfile.TemporaryDirectory(prefix="bench-load-run-") as tmp:
        out, err, timing = (Path(tmp) / name for name in ("out", "err", "time"))
        command = ["/usr/bin/time", "-f", "%e %M", "-o", str(timing)]
        command += [PYTHON, "manage.py", "load_csv", source]
        done, peak = threading.Event(), [0]
        with out.open("wb") as stdout, err.open("wb") as stderr:
            started = time.perf_counter()
            child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
            sampler = threading.Thread(target=_sample_tree, args=(child.pid, done, peak))
            sampler.start()
            child.wait()
            elapsed = time.perf_counter() - started
            done.set()
            sampler.join()
        if child.returncode != 0:
            raise RuntimeError(
                f"load_csv {source} failed ({child.returncode}):\n"
                f"{out.read_text()}\n{err.read_text()[-4000:]}"
            )
        _, maxrss_kb = timing.read_text().split()[-2:]
    return Run(elapsed, peak[0] / 1024, int(maxrss_kb) / 1024)


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 API server on a free port of 127.0.0.1, in a thread of this process."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_env(db_name: str, endpoint: str) -> dict[str, str]:
    env = loader_env(db_name)
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    return env


def upload(endpoint: str, path: Path, key: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    client.upload_file(str(path), BUCKET, key)


# --- report ----------------------------------------------------------------------------------


def describe(run: Run) -> str:
    return (
        f"{run.seconds:6.1f} s, peak RSS {run.peak_mb:5.1f} MB "
        f"(sum over its processes {run.tree_mb:.1f} MB, largest process {run.maxrss_mb:.1f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--small-rows", type=int, default=SMALL_ROWS)
    parser.add_argument("--no-s3", action="store_true", help="skip the load from S3")
    args = parser.parse_args()

    print_header(f"load_csv: {args.rows:,}-row hired_employees file, 1% bad rows, PostgreSQL")
    prepare(DB_NAME)
    env = loader_env(DB_NAME)
    with tempfile.TemporaryDirectory(prefix="bench-load-csv-") as tmp:
        folder = Path(tmp)
        clock = time.perf_counter()
        big, big_valid, big_bad = generate(folder, args.rows, "hired_employees.csv")
        small, _, small_bad = generate(folder, args.small_rows, "hired_employees_small.csv")
        big_ok, small_ok = args.rows - big_bad, args.small_rows - small_bad
        print(
            f"generated {big.stat().st_size / 1e6:.1f} MB ({args.rows:,} rows, {big_bad:,} bad) "
            f"and {small.stat().st_size / 1e6:.1f} MB ({args.small_rows:,} rows) "
            f"in {time.perf_counter() - clock:.1f} s"
        )
        sys.stdout.flush()

        small_run = run_loader(DB_NAME, str(small), env)
        check_counts(DB_NAME, small_ok, small_bad)
        print(f"load_csv {args.small_rows:>9,} rows (local): {describe(small_run)}")
        sys.stdout.flush()
        copy_seconds = copy_baseline(DB_NAME, big_valid, big_ok)
        print(f"\\copy    {big_ok:>9,} valid rows:      {copy_seconds:6.1f} s")
        sys.stdout.flush()
        big_run = run_loader(DB_NAME, str(big), env)
        check_counts(DB_NAME, big_ok, big_bad)
        print(f"load_csv {args.rows:>9,} rows (local): {describe(big_run)}")
        sys.stdout.flush()

        s3_run = None
        if not args.no_s3:
            with s3_server() as endpoint:
                upload(endpoint, big, "hired_employees.csv")
                s3_run = run_loader(
                    DB_NAME, f"s3://{BUCKET}/hired_employees.csv", s3_env(DB_NAME, endpoint)
                )
            check_counts(DB_NAME, big_ok, big_bad)
            print(f"load_csv {args.rows:>9,} rows (S3):    {describe(s3_run)}")

    ratio = big_run.seconds / copy_seconds
    worst_rss = max(run.peak_mb for run in (small_run, big_run, s3_run) if run is not None)
    print()
    print(f"counts checked after every load: {big_ok:,} inserted, {big_bad:,} rejected")
    print(
        f"time: load_csv {big_run.seconds:.1f} s vs \\copy {copy_seconds:.1f} s = {ratio:.2f}x "
        f"(target <= {TARGET_RATIO}x)  {verdict(ratio <= TARGET_RATIO)}"
    )
    print(
        f"  load_csv: {args.rows / big_run.seconds:,.0f} rows/s; "
        f"\\copy: {big_ok / copy_seconds:,.0f} rows/s"
    )
    if s3_run is not None:
        print(
            f"  from S3 (moto server): {s3_run.seconds:.1f} s = "
            f"{s3_run.seconds / copy_seconds:.2f}x \\copy"
        )
    print(
        f"memory: peak RSS {small_run.peak_mb:.1f} MB at {args.small_rows:,} rows, "
        f"{big_run.peak_mb:.1f} MB at {args.rows:,} rows"
        + (f", {s3_run.peak_mb:.1f} MB from S3" if s3_run else "")
        + f" (target <= {TARGET_RSS_MB} MB)  {verdict(worst_rss <= TARGET_RSS_MB)}"
    )
    print_load()


if __name__ == "__main__":
    main()
