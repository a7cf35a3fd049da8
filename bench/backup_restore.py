"""Benchmark: ``manage.py backup hired_employees`` and ``manage.py restore hired_employees`` of
1,000,000 hired employees on PostgreSQL, with their peak RSS.

Run: ``.venv/bin/python bench/backup_restore.py``
(``--rows N --rounds N`` for a smaller or longer run; ``--profile`` to profile
``backup_tables`` and ``restore_tables`` in-process on a 100,000-row table instead.)

Baselines, measured in the same run and interleaved with the commands, round by round:

- backup: a Python script (same interpreter, a subprocess) that reads the same rows in id
  order through a psycopg2 server-side cursor in a REPEATABLE READ, READ ONLY transaction and
  writes them with ``fastavro.writer``, the same schema (``jobs.avro.schema_for``) and the same
  codec (deflate), to a file;
- restore: a Python script reading the same backup file with ``fastavro.reader`` and writing the
  rows to a CSV file, then ``psql -c "\\copy hired_employees ... from <csv> csv"`` into the
  emptied table (same constraints). Baseline time = read+convert time + ``\\copy`` time.

Targets: each command <= 1.2x its baseline, with a peak RSS <= 150 MB. Times and RSS come from
``/usr/bin/time -f "%e %M"`` around each subprocess. After every restore the table must hold
exactly the rows it was backed up with (count and a content checksum); the rows the measured
restore must replace are first marked, so a restore that kept them would show.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from _common import (
    PYTHON,
    ROOT,
    app_env,
    drop_database,
    manage,
    median,
    pg_dsn,
    print_header,
    print_load,
    recreate_database,
    verdict,
)

DB_NAME = "roster_bench_backup"
ROWS = 1_000_000
PROFILE_ROWS = 100_000
ROUNDS = 3
TARGET_RATIO = 1.2
TARGET_RSS_MB = 150
COLUMNS = "id,name,datetime,department_id,job_id"
OTHER_BENCHES = r"bench/(load_csv|metrics)\.py"
QUIET_POLL_SECONDS = 20
QUIET_MAX_SECONDS = 40 * 60
MARKER = "stale row, the restore must replace it"

# 1,000,000 valid rows: names from two short lists plus the id, datetimes every 94 s from
# 2020-01-01 (to late 2022), departments 1..12, jobs 1..183.
FILL_SQL = """
INSERT INTO hired_employees (id, name, datetime, department_id, job_id)
SELECT g,
       (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Frances','Ken','Radia','Tim'])
           [1 + g % 10]
       || ' ' ||
       (ARRAY['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Allen','Perlman'])
           [1 + (g / 10) % 8]
       || ' ' || g,
       timestamptz '2020-01-01 00:00:00+00' + (g - 1) * interval '94 seconds',
       1 + g % 12,
       1 + g % 183
FROM generate_series(1, {rows}) AS g
"""

# What a restore must bring back: the row count and a checksum of every column.
CHECKSUM_SQL = """
SELECT count(*),
       coalesce(sum(hashtextextended(
           id || '|' || name || '|' || extract(epoch FROM datetime) || '|' || department_id
           || '|' || job_id, 0) % 1000000007), 0)
FROM hired_employees
"""

BACKUP_BASELINE = """
import sys
sys.path.insert(0, sys.argv[1])
import fastavro, psycopg2
from backend.dictionary import HIRED_EMPLOYEES
from jobs.avro import schema_for

columns = HIRED_EMPLOYEES.column_names
conn = psycopg2.connect(sys.argv[2])
conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
with conn:
    cursor = conn.cursor(name="baseline_backup")
    cursor.itersize = 5000
    cursor.execute(f"SELECT {', '.join(columns)} FROM hired_employees ORDER BY id")
    records = (dict(zip(columns, row)) for row in cursor)
    with open(sys.argv[3], "wb") as out:
        fastavro.writer(out, schema_for(HIRED_EMPLOYEES), records, codec="deflate")
conn.close()
"""

RESTORE_BASELINE_READ = """
import csv, sys
import fastavro

with open(sys.argv[1], "rb") as source, open(sys.argv[2], "w", newline="") as out:
    write = csv.writer(out, lineterminator="\\n").writerow
    reader = fastavro.reader(source)
    names = [field["name"] for field in reader.writer_schema["fields"]]
    for record in reader:
        write([record[name] for name in names])
"""

PROFILE_CODE = """
import cProfile, io, pstats
from jobs.backups import backup_tables, restore_tables

for name, call in (
    ("backup_tables", lambda: backup_tables(tables=["hired_employees"])),
    ("restore_tables", lambda: restore_tables(tables=["hired_employees"])),
):
    profile = cProfile.Profile()
    profile.enable()
    result = call()
    profile.disable()
    print(f"=== {name}: {result}")
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(22)
    stats.sort_stats("cumulative").print_stats(30)
    print(out.getvalue())
"""


@dataclass
class Run:
    """One timed subprocess: wall seconds and peak RSS (MB) of the process it ran."""

    seconds: float
    rss_mb: float
    stdout: str


def timed(cmd: list[str], env: dict[str, str]) -> Run:
    """Run ``cmd`` under ``/usr/bin/time -f "%e %M"``; raise with its output if it fails."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-o", report.name, "-f", "%e %M", *cmd],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
        _, max_kb = report.read().split()[-2:]
    return Run(elapsed, int(max_kb) / 1024, done.stdout)


def sql(statement: str, params: dict[str, object] | None = None) -> list[tuple[object, ...]]:
    """Run one statement in the bench database (autocommit); its rows, if any."""
    conn = psycopg2.connect(pg_dsn(DB_NAME))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def wait_for_quiet() -> None:
    """Wait while another helper's CSV-load or metrics benchmark runs on this machine."""
    deadline = time.monotonic() + QUIET_MAX_SECONDS
    waited = False
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-f", OTHER_BENCHES], capture_output=True, text=True)
        if not found.stdout.strip():
            if waited:
                print("   (the other benchmarks have finished)", flush=True)
            return
        if not waited:
            print(f"   waiting for other benchmarks: {found.stdout.split()}", flush=True)
            waited = True
        time.sleep(QUIET_POLL_SECONDS)
    print("   other benchmarks still running after 40 min: measuring anyway", flush=True)


def setup(env: dict[str, str], rows: int) -> None:
    recreate_database(DB_NAME)
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "load_csv", "data/sample/departments.csv", "data/sample/jobs.csv")
    counts = sql("SELECT (SELECT count(*) FROM departments), (SELECT count(*) FROM jobs)")[0]
    if counts != (12, 183):
        raise RuntimeError(f"expected 12 departments and 183 jobs, got {counts}")
    fill(rows)


def fill(rows: int) -> None:
    sql("DELETE FROM hired_employees")
    sql(FILL_SQL.format(rows=int(rows)))
    sql("VACUUM ANALYZE")


def checksum() -> tuple[int, int]:
    count, total = sql(CHECKSUM_SQL)[0]
    return int(count), int(total)


def latest_backup(backup_dir: Path) -> Path:
    files = sorted((backup_dir / "hired_employees").glob("*.avro"))
    if not files:
        raise RuntimeError(f"no backup in {backup_dir}")
    return files[-1]


def summary_row(stdout: str, key_part: str) -> list[str]:
    """The command's summary table row for hired_employees, split into cells."""
    for line in stdout.splitlines():
        if "hired_employees" in line and key_part in line:
            return [cell for cell in line.replace("|", " ").split() if cell]
    raise RuntimeError(f"no hired_employees row in the command's output:\n{stdout}")


def mb(value: float) -> str:
    return f"{value:.0f} MB"


def sec(value: float) -> str:
    return f"{value:.2f} s"


# --- one round of each measurement -----------------------------------------------------------


def backup_round(env: dict[str, str], work: Path, rows: int, round_: int) -> tuple[Run, Run]:
    wait_for_quiet()
    out = work / f"baseline-{round_}.avro"
    base = timed([PYTHON, "-c", BACKUP_BASELINE, str(ROOT), pg_dsn(DB_NAME), str(out)], env)
    app = timed([PYTHON, "manage.py", "backup", "hired_employees"], env)
    cells = summary_row(app.stdout, ".avro")
    if int(cells[1]) != rows:
        raise RuntimeError(f"the backup wrote {cells[1]} rows, not {rows}:\n{app.stdout}")
    made = latest_backup(Path(env["BACKUP_DIR"]))
    print(
        f"   round {round_}: backup {sec(app.seconds)} ({mb(app.rss_mb)}, "
        f"{made.stat().st_size / 1e6:.1f} MB file) | baseline {sec(base.seconds)} "
        f"({mb(base.rss_mb)}, {out.stat().st_size / 1e6:.1f} MB file)",
        flush=True,
    )
    out.unlink()
    return app, base


def restore_round(
    env: dict[str, str], work: Path, rows: int, expected: tuple[int, int], round_: int
) -> tuple[Run, Run, Run, float]:
    """The measured restore, then the baseline: (restore, read+convert, \\copy, delete s)."""
    wait_for_quiet()
    backup = latest_backup(Path(env["BACKUP_DIR"]))

    # Mark rows the restore must replace; it must bring the backed-up rows back.
    sql(f"UPDATE hired_employees SET name = '{MARKER}' WHERE id % 1000 = 0")
    app = timed([PYTHON, "manage.py", "restore", "hired_employees"], env)
    cells = summary_row(app.stdout, ".avro")
    read, inserted, rejected, replaced = (int(c) for c in cells[1:5])
    if (read, inserted, rejected, replaced) != (rows, rows, 0, rows):
        raise RuntimeError(f"unexpected restore summary:\n{app.stdout}")
    marked = sql("SELECT count(*) FROM hired_employees WHERE name = %(m)s", {"m": MARKER})[0][0]
    got = checksum()
    if got != expected or marked:
        raise RuntimeError(f"after the restore: {got} (expected {expected}), {marked} marked")

    # Baseline: fastavro -> CSV, then \copy into the emptied table (same constraints).
    csv_path = work / f"baseline-{round_}.csv"
    convert = timed([PYTHON, "-c", RESTORE_BASELINE_READ, str(backup), str(csv_path)], env)
    started = time.perf_counter()
    sql("DELETE FROM hired_employees")
    delete_seconds = time.perf_counter() - started
    copy = timed(
        [
            "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres",
            "-d", DB_NAME,
            "-c", f"\\copy hired_employees ({COLUMNS}) from '{csv_path}' csv",
        ],
        env,
    )  # fmt: skip
    csv_path.unlink()
    if checksum() != expected:
        raise RuntimeError(f"after the baseline \\copy: {checksum()} (expected {expected})")
    base = convert.seconds + copy.seconds
    print(
        f"   round {round_}: restore {sec(app.seconds)} ({mb(app.rss_mb)}) | baseline "
        f"{sec(base)} = read+convert {sec(convert.seconds)} ({mb(convert.rss_mb)}) + \\copy "
        f"{sec(copy.seconds)} ({mb(copy.rss_mb)}); untimed DELETE before it "
        f"{sec(delete_seconds)}",
        flush=True,
    )
    return app, convert, copy, delete_seconds


# --- main ------------------------------------------------------------------------------------


def bench_env(backup_dir: Path) -> dict[str, str]:
    env = {**app_env(DB_NAME), "BACKUP_DIR": str(backup_dir)}  # production settings
    env.pop("BACKUP_BUCKET", None)
    return env


def profile(env: dict[str, str]) -> None:
    """cProfile of backup_tables and restore_tables, in-process, on a 100,000-row table."""
    print_header(f"profile of backup_tables / restore_tables, {PROFILE_ROWS} hired_employees")
    setup(env, PROFILE_ROWS)
    wait_for_quiet()
    print(manage(env, "shell", "-c", PROFILE_CODE))
    print_load()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--profile", action="store_true", help="profile on 100,000 rows instead")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp:
        work = Path(tmp)
        env = bench_env(work / "backups")
        try:
            if options.profile:
                profile(env)
                return
            run(env, work, options.rows, options.rounds)
        finally:
            drop_database(DB_NAME)


def run(env: dict[str, str], work: Path, rows: int, rounds: int) -> None:
    print_header(f"backup and restore of {rows:,} hired_employees, PostgreSQL")
    wait_for_quiet()
    started = time.perf_counter()
    setup(env, rows)
    expected = checksum()
    if expected[0] != rows:
        raise RuntimeError(f"the table holds {expected[0]} rows, not {rows}")
    print(f"   setup: {rows:,} rows in {sec(time.perf_counter() - started)}", flush=True)

    print("backup (manage.py backup hired_employees) vs psycopg2 named cursor + fastavro:")
    backups = [backup_round(env, work, rows, r) for r in range(1, rounds + 1)]
    print("restore (manage.py restore hired_employees) vs fastavro -> CSV + psql \\copy:")
    restores = [restore_round(env, work, rows, expected, r) for r in range(1, rounds + 1)]

    backup_s = median([app.seconds for app, _ in backups])
    backup_base = median([base.seconds for _, base in backups])
    backup_rss = max(app.rss_mb for app, _ in backups)
    base_rss = max(base.rss_mb for _, base in backups)
    restore_s = median([app.seconds for app, _, _, _ in restores])
    restore_base = median([conv.seconds + copy.seconds for _, conv, copy, _ in restores])
    convert_s = median([conv.seconds for _, conv, _, _ in restores])
    copy_s = median([copy.seconds for _, _, copy, _ in restores])
    restore_rss = max(app.rss_mb for app, _, _, _ in restores)
    restore_base_rss = max(max(c.rss_mb, p.rss_mb) for _, c, p, _ in restores)

    backup_ratio = backup_s / backup_base
    restore_ratio = restore_s / restore_base
    print()
    print(f"medians of {rounds} rounds, {rows:,} rows; RSS is the highest peak of the rounds:")
    print(
        f"  backup:  {sec(backup_s)} vs baseline {sec(backup_base)} = {backup_ratio:.2f}x "
        f"(target <= {TARGET_RATIO}x)  {verdict(backup_ratio <= TARGET_RATIO)}; "
        f"{rows / backup_s:,.0f} rows/s"
    )
    print(
        f"           peak RSS {mb(backup_rss)} (target <= {TARGET_RSS_MB} MB)  "
        f"{verdict(backup_rss <= TARGET_RSS_MB)}; baseline {mb(base_rss)}"
    )
    print(
        f"  restore: {sec(restore_s)} vs baseline {sec(restore_base)} (read+convert "
        f"{sec(convert_s)} + \\copy {sec(copy_s)}) = {restore_ratio:.2f}x "
        f"(target <= {TARGET_RATIO}x)  {verdict(restore_ratio <= TARGET_RATIO)}; "
        f"{rows / restore_s:,.0f} rows/s"
    )
    print(
        f"           peak RSS {mb(restore_rss)} (target <= {TARGET_RSS_MB} MB)  "
        f"{verdict(restore_rss <= TARGET_RSS_MB)}; baseline {mb(restore_base_rss)}"
    )
    print(f"  after every restore: {rows:,} rows, the backed-up content (count + checksum): yes")
    print_load()


if __name__ == "__main__":
    sys.exit(main())
