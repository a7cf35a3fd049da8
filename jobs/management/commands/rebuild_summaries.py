"""``python manage.py rebuild_summaries``"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from backend import hire_summary
from jobs.ingest import in_transaction
from jobs.management.base import JobCommand
from jobs.progress import Progress


@dataclass(frozen=True)
class Rebuilt:
    """One summary recomputed: its table, the hires it counts, and how long it took."""

    table: str
    hires: int
    seconds: float


class Command(JobCommand):
    help = (
        "Recompute the hires summary (hires per year, department, job and quarter, which the "
        "metrics and totalCount read) from the hired_employees rows, in one transaction. The "
        "database's triggers keep it exact on every write; run this after writes that skipped "
        "them (triggers disabled by hand, a pg_restore --disable-triggers). Writers wait for the "
        "rebuild to commit; readers do not."
    )
    columns = [("summary", "table"), ("hires", "hires"), ("seconds", "seconds")]

    def run_job(self, *, progress: Progress, **options: Any) -> list[Rebuilt]:
        clock = time.perf_counter()
        hires = in_transaction(hire_summary.rebuild)
        return [Rebuilt(hire_summary.TABLE, hires, time.perf_counter() - clock)]
