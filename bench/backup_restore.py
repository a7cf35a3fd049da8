"""Benchmark: ``manage.py backup hired_employees`` and ``manage.py restore hired_employees`` of
1,000,000 hired employees on PostgreSQL, with their peak RSS.

Baselines, interleaved round by round (times and RSS from ``/usr/bin/time``): for the backup, a
Python script reading the same rows in id order through a psycopg2 named cursor (REPEATABLE
READ, READ ONLY) and writing them with ``fastavro.writer``, same schema and codec; for the
restore, a script converting the backup to CSV with ``fastavro.reader``, then psql's ``\\copy``
into the emptied table (convert + ``\\copy``). Targets: each command <= 1.2x its baseline
(medians), peak RSS <= 150 MB. Each restore must bring back exactly the backed-up rows (count
and checksum), over rows first marked stale.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import _common as bench

TARGET_RATIO, TARGET_RSS_MB = 1.2, 150
MARKER = "stale row, the restore must replace it"

# Valid rows: names from two short lists plus the id, datetimes every 94 s from 2020-01-01 (to
# late 2022 for 1,000,000 rows), departments 1..12, jobs 1..183.
FILL = """
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
CHECKSUM = """
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

RESTORE_READ = """
import csv, sys
import fastavro

with open(sys.argv[1], "rb") as source, open(sys.argv[2], "w", newline="") as out:
    write = csv.writer(out, lineterminator="\\n").writerow
    reader = fastavro.reader(source)
    names = [field["name"] for field in reader.writer_schema["fields"]]
    for record in reader:
        write([record[name] for name in names])
"""


def summary(run: bench.Timed) -> list[int]:
    """The numbers of the command's summary row for hired_employees (its .avro file)."""
    for line in run.stdout.splitlines():
        if "hired_employees" in line and ".avro" in line:
            return [int(cell) for cell in line.replace("|", " ").split() if cell.isdigit()]
    raise RuntimeError(f"no hired_employees row in the command's output:\n{run.stdout}")


def backup_round(db: str, env: dict[str, str], work: Path, rows: int) -> tuple[float, ...]:
    """The baseline, then the command: (command s, baseline s, command MB, baseline MB)."""
    out = work / "baseline.avro"
    base = bench.timed(
        [bench.PYTHON, "-c", BACKUP_BASELINE, str(bench.ROOT), bench.pg_dsn(db), str(out)], env
    )
    app = bench.timed([bench.PYTHON, "manage.py", "backup", "hired_employees"], env)
    if summary(app)[0] != rows:
        raise RuntimeError(f"the backup did not write {rows} rows:\n{app.stdout}")
    out.unlink()
    return app.seconds, base.seconds, app.rss_mb, base.rss_mb


def restore_round(db: str, env: dict[str, str], work: Path, rows: int) -> tuple[float, ...]:
    """The command, then the baseline: (command s, baseline s, command MB, baseline MB), the
    table checked against the backed-up rows after each."""
    expected = bench.sql(db, CHECKSUM)[0]
    backup = sorted((Path(env["BACKUP_DIR"]) / "hired_employees").glob("*.avro"))[-1]
    bench.sql(db, "UPDATE hired_employees SET name = %(m)s WHERE id %% 1000 = 0", {"m": MARKER})
    app = bench.timed([bench.PYTHON, "manage.py", "restore", "hired_employees"], env)
    if summary(app)[:4] != [rows, rows, 0, rows]:  # read, inserted, rejected, replaced
        raise RuntimeError(f"unexpected restore summary:\n{app.stdout}")
    marked = bench.sql(db, "SELECT count(*) FROM hired_employees WHERE name = %(m)s", {"m": MARKER})
    if (got := bench.sql(db, CHECKSUM)[0]) != expected or marked[0][0]:
        raise RuntimeError(f"after the restore: {got} (expected {expected}), {marked} marked")

    csv_path = work / "baseline.csv"
    convert = bench.timed([bench.PYTHON, "-c", RESTORE_READ, str(backup), str(csv_path)], env)
    bench.sql(db, "DELETE FROM hired_employees")  # untimed
    copy = bench.copy_csv(db, csv_path)
    csv_path.unlink()
    if (got := bench.sql(db, CHECKSUM)[0]) != expected:
        raise RuntimeError(f"after the baseline \\copy: {got} (expected {expected})")
    return app.seconds, convert.seconds + copy.seconds, app.rss_mb, max(convert.rss_mb, copy.rss_mb)


def main() -> None:
    args = bench.options(__doc__, rows=1_000_000, rounds=3)
    db = bench.database("backup")
    title = f"backup and restore of {args.rows:,} hired_employees"
    with bench.run(title, db), tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp:
        bench.prepare_database(db)
        bench.fill_unindexed(db, FILL, args.rows)
        env = bench.app_env(db, BACKUP_DIR=str(Path(tmp) / "backups"), BACKUP_BUCKET="")
        rounds = {
            "backup": [backup_round(db, env, Path(tmp), args.rows) for _ in range(args.rounds)],
            "restore": [restore_round(db, env, Path(tmp), args.rows) for _ in range(args.rounds)],
        }

        print(f"\nmedians of {args.rounds} rounds; RSS is the highest peak of the rounds")
        for name, runs in rounds.items():
            app, base, app_mb, base_mb = zip(*runs, strict=True)
            each = ", ".join(f"{a:.2f} s | baseline {b:.2f} s" for a, b, *_ in runs)
            print(f"{name} rounds: {each}")
            rate = f"; {args.rows / bench.median(app):,.0f} rows/s"
            bench.compare(name, bench.median(app), bench.median(base), "s", TARGET_RATIO, note=rate)
            bench.compare(
                f"{name} peak RSS", max(app_mb), max(base_mb), "MB", at_most=TARGET_RSS_MB
            )
        print(f"after every restore: {args.rows:,} rows, the backed-up content (count + checksum)")


if __name__ == "__main__":
    main()
