"""``python manage.py replay_rejections [--table TABLE] [--batch ID]``"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from backend import dictionary
from jobs.ingest.replay import ReplaySummary, replay_rejections
from jobs.management.base import JobCommand
from jobs.progress import Progress


class Command(JobCommand):
    help = (
        "Send the open rejections of a table, of one batch, or of every table, through the data "
        "rules again: for what automatic replay cannot see, such as a department added by hand "
        "in SQL. Rows a later arrival cannot fix (a bad datetime, a blank name) are left as they "
        "are; an atomic batch's rows go in together or not at all."
    )
    columns = [
        ("table", "table"), ("replayed", "read"), ("inserted", "inserted"),
        ("rejected", "rejected"), ("batches", lambda s: len(s.batch_ids)),
    ]  # fmt: skip

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--table", choices=list(dictionary.TABLES), help="Only this table's rejections."
        )
        parser.add_argument("--batch", metavar="ID", help="Only the rejections of this batch.")

    def run_job(self, *, table: str | None, batch: str | None, progress: Progress,
                **options: Any) -> list[ReplaySummary]:  # fmt: skip
        return replay_rejections(table=table, batch_id=batch, progress=progress)
