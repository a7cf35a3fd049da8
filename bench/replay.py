"""Benchmark: arrival order, with 1,000,000 hires (1% bad) on PostgreSQL.

1. Replay's cost on an ordered load (``load_csv`` of departments, jobs, then hires into a fresh
   database) against the Roster before replay (``BASELINE``, in a git worktree, interleaved,
   best of two). Target: at most 1.10x.
2. Arriving late: hires first (all parked), then jobs, then departments (the hires replayed),
   against this Roster's ordered load, recorded (no target). Both orders must end in the same
   state, which is checked.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import _common as bench

TARGET_RATIO = 1.10
BASELINE = "751bfe4"
"""The last commit before replay (issue 11)."""
ORDERED = ["departments", "jobs", "hired_employees"]
STATE = """
SELECT (SELECT count(*) FROM departments), (SELECT count(*) FROM jobs),
       (SELECT count(*) FROM hired_employees),
       (SELECT count(*) FROM rejections WHERE status = 'open'),
       (SELECT count(*) FROM parked_references WHERE ref_id <> 99)
"""


def load(db: str, folder: Path, order: list[str], code: Path = bench.ROOT) -> list[float]:
    """A fresh database, then ``load_csv`` of each file in ``order`` by the Roster in ``code``:
    the seconds of each file."""
    bench.reset_database(db)
    env = bench.app_env(db)
    bench.manage(env, "migrate", "--noinput", "-v", "0", cwd=code)
    files = [str(folder / f"{name}.csv") for name in order]
    return [bench.clock(bench.manage, env, "load_csv", file, cwd=code)[0] for file in files]


def main() -> None:
    args = bench.options(__doc__, rows=1_000_000)
    db = bench.database("replay")
    title = f"replay: {args.rows:,} hires whose departments and jobs arrive last"
    with bench.run(title, db), tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        folder = Path(tmp)
        bench.hired_employees_csv(folder / "hired_employees.csv", args.rows)
        for name in ("departments", "jobs"):
            shutil.copy(bench.ROOT / "data" / "sample" / f"{name}.csv", folder)

        with bench.worktree(BASELINE) as tree:  # interleaved, best of two: the machine is shared
            before = sum(load(db, folder, ORDERED, tree))
            ordered = load(db, folder, ORDERED)
            before = min(before, sum(load(db, folder, ORDERED, tree)))
        ordered = min(ordered, load(db, folder, ORDERED), key=sum)
        expected = bench.sql(db, STATE)[0]
        late = load(db, folder, ["hired_employees", "jobs", "departments"])
        found = bench.sql(db, STATE)[0]

        departments, jobs, hires = ordered
        print(
            f"\nordered load, this Roster: departments {departments:.1f} s, jobs {jobs:.1f} s, "
            f"hires {hires:.1f} s"
        )
        label = f"1. ordered load vs the Roster before replay ({BASELINE})"
        bench.compare(label, sum(ordered), before, "s", TARGET_RATIO)
        print(
            f"departments and jobs last: hires parked {late[0]:.1f} s, jobs {late[1]:.1f} s, "
            f"departments + replay {late[2]:.1f} s"
        )
        label = "2. departments and jobs last vs the ordered load (recorded)"
        bench.compare(label, sum(late), sum(ordered), "s")
        print(
            f"end state (departments, jobs, hires, open rejections, waits): ordered "
            f"{expected}, late {found}: {'same' if found == expected else 'DIFFERENT'}"
        )
        if found != expected:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
