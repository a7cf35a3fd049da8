"""``python manage.py restore TABLE [--backup KEY]`` and ``restore --all``"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from backend import dictionary
from jobs.backups import RestoreSummary, restore_tables
from jobs.management.base import JobCommand
from jobs.progress import Progress


class Command(JobCommand):
    help = (
        "Replace a table's rows with a backup (its latest by default), after checking the whole "
        "file. Bad rows are rejected and logged; a restore that would orphan rows changes nothing."
    )
    columns = [
        ("table", "table"), ("read", "read"), ("inserted", "inserted"), ("rejected", "rejected"),
        ("replaced", "replaced"), ("seconds", "seconds"), ("backup", "key"),
    ]  # fmt: skip

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "table", nargs="?", choices=list(dictionary.TABLES), help="The table to restore."
        )
        parser.add_argument("--backup", metavar="KEY", help="A key such as jobs/<timestamp>.avro")
        parser.add_argument(
            "--all", action="store_true", help="Restore every table from its latest backup."
        )

    def run_job(self, *, table: str | None, backup: str | None, all: bool, progress: Progress,
                **options: Any) -> list[RestoreSummary]:  # fmt: skip
        if all == bool(table) or (all and backup):
            raise CommandError("give a TABLE (optionally with --backup KEY), or --all alone")
        if all or table is None:
            return restore_tables(tables=list(dictionary.TABLES), progress=progress)
        return restore_tables(
            tables=[table], backups={table: backup} if backup else None, progress=progress
        )
