"""``python manage.py restore TABLE [--backup KEY]`` and ``restore --all``"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from backend import dictionary
from jobs.backups import restore_tables
from jobs.management.base import JobCommand


class Command(JobCommand):
    help = (
        "Replace a table's rows with a backup (its latest by default), after checking the whole "
        "file. Bad rows are rejected and logged; a restore that would orphan rows changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "table", nargs="?", choices=list(dictionary.TABLES), help="The table to restore."
        )
        parser.add_argument("--backup", metavar="KEY", help="A key such as jobs/<timestamp>.avro")
        parser.add_argument(
            "--all", action="store_true", help="Restore every table from its latest backup."
        )

    def handle(self, *args: Any, table: str | None, backup: str | None, all: bool,
               **options: Any) -> None:  # fmt: skip
        if all == bool(table) or (all and backup):
            raise CommandError("give a TABLE (optionally with --backup KEY), or --all alone")
        tables = list(dictionary.TABLES) if all else [table]
        with self.progress_bar() as bar:
            restored = restore_tables(
                tables=tables, backups={table: backup} if backup else None, progress=bar.update
            )
        self.summary(
            ["table", "read", "inserted", "rejected", "replaced", "seconds", "backup"],
            [[s.table, s.read, s.inserted, s.rejected, s.replaced, f"{s.seconds:.2f}", s.key]
             for s in restored],
        )  # fmt: skip
