"""Benchmark: arrival order, with 1,000,000 hires (1% bad) on PostgreSQL.

Run: ``.venv/bin/python bench/replay.py [--rows N]``

1. The cost of replay on an ordered load: ``load_csv`` of departments, jobs, then
   hired_employees into a fresh database, by this Roster and by the Roster before replay
   (``BASELINE``, checked out in a git worktree and run in the same run). Target: at most
   1.10x the baseline.
2. The cost of arriving late: the same files with hired_employees first (every hire parked),
   then jobs, then departments (the hires replayed as their references arrive), against the
   ordered load of this Roster. Both must end with the same tables, open rejections and no
   wait left, which the benchmark checks. Every parked row is written to the log, read back,
   written to its table, and its entry resolved: at least twice the ordered load's writes, so
   this figure is recorded, with no target below 2x.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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
)
from load_csv import generate

DB_NAME = "roster_bench_replay"
ROWS = 1_000_000
TARGET_RATIO = 1.10
BASELINE = "751bfe4"
"""The last commit before replay (issue 11)."""
SAMPLE = ROOT / "data" / "sample"
ORDERED = ["departments", "jobs", "hired_employees"]


def _round(folder: Path, order: list[str], code: Path = ROOT) -> tuple[float, list[float]]:
    """A fresh database, then ``load_csv`` of each file in ``order`` by the Roster in ``code``:
    the total and per-file time."""
    recreate_database(DB_NAME)
    env = app_env(DB_NAME)
    _manage(code, env, "migrate", "--noinput", "-v", "0")
    steps = []
    for name in order:
        started = time.perf_counter()
        _manage(code, env, "load_csv", str(folder / f"{name}.csv"))
        steps.append(time.perf_counter() - started)
    return sum(steps), steps


def _manage(code: Path, env: dict[str, str], *args: str) -> None:
    if code == ROOT:
        manage(env, *args)
        return
    subprocess.run([PYTHON, "manage.py", *args], cwd=code, env=env, check=True,
                   capture_output=True)  # fmt: skip


@contextlib.contextmanager
def _baseline(folder: Path) -> Iterator[Path]:
    """The Roster before replay, checked out beside this one (same venv)."""
    tree = folder / "baseline"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), BASELINE], cwd=ROOT,
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield tree
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                       capture_output=True)  # fmt: skip


def _state() -> tuple[int, ...]:
    """The tables and the rejection log as the two orders must both leave them."""
    with psycopg2.connect(pg_dsn(DB_NAME)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM departments), (SELECT count(*) FROM jobs), "
            "(SELECT count(*) FROM hired_employees), "
            "(SELECT count(*) FROM rejections WHERE status = 'open'), "
            "(SELECT count(*) FROM parked_references WHERE ref_id <> 99)"
        )
        return tuple(cursor.fetchone())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    args = parser.parse_args()
    print_header(f"replay: {args.rows:,} hires whose departments and jobs arrive last")
    folder = Path(tempfile.mkdtemp(prefix="roster-replay-"))
    try:
        generate(folder, args.rows, "hired_employees.csv")
        for name in ("departments", "jobs"):
            shutil.copy(SAMPLE / f"{name}.csv", folder / f"{name}.csv")

        with _baseline(folder) as tree:  # interleaved, best of two: the machine may be shared
            before = _round(folder, ORDERED, tree)[0]
            ordered, ordered_steps = _round(folder, ORDERED)
            before = min(before, _round(folder, ORDERED, tree)[0])
        ordered, ordered_steps = min((ordered, ordered_steps), _round(folder, ORDERED))
        expected = _state()
        late, late_steps = _round(folder, ["hired_employees", "jobs", "departments"])
        found = _state()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    overhead = ordered / before
    print(f"1. ordered load, Roster before replay ({BASELINE}, baseline): {before:.1f} s")
    print(f"   ordered load, this Roster: {ordered:.1f} s  (departments {ordered_steps[0]:.1f} s, "
          f"jobs {ordered_steps[1]:.1f} s, hires {ordered_steps[2]:.1f} s)")  # fmt: skip
    print(f"   ratio: {overhead:.2f}x (target <= {TARGET_RATIO:.2f}x) "
          f"{'PASS' if overhead <= TARGET_RATIO else 'MISS'}")  # fmt: skip
    print(f"2. departments and jobs last: {late:.1f} s  (hires parked {late_steps[0]:.1f} s, "
          f"jobs {late_steps[1]:.1f} s, departments + replay {late_steps[2]:.1f} s)")  # fmt: skip
    print(f"   ratio to this Roster's ordered load: {late / ordered:.2f}x (recorded)")
    print(f"   end state (departments, jobs, hires, open rejections, waits): ordered {expected}, "
          f"late {found}: {'same' if found == expected else 'DIFFERENT'}")  # fmt: skip
    print_load()
    if found != expected:
        sys.exit(1)


if __name__ == "__main__":
    main()
