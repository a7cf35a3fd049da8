"""``python manage.py backup [TABLE ...] [--codec deflate]``"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend import dictionary
from jobs.backups import BackupError, backup_tables
from jobs.progress import RowProgress
from jobs.summary import render_table


class Command(BaseCommand):
    requires_system_checks: list[str] = []  # a data job: skip importing the URLs and GraphQL schema
    help = (
        "Back up tables (all by default) to AVRO files in the backup storage (BACKUP_BUCKET, "
        "or the BACKUP_DIR folder), from one consistent snapshot."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tables", nargs="*", metavar="TABLE", choices=[[], *dictionary.TABLES])
        parser.add_argument("--codec", default="deflate", help="null, deflate (default), ...")

    def handle(self, *args: Any, tables: list[str], codec: str, **options: Any) -> None:
        progress = RowProgress(enabled=sys.stderr.isatty())
        try:
            written = backup_tables(tables=tables, codec=codec, progress=progress.update)
        except BackupError as error:
            raise CommandError(str(error)) from None
        finally:
            progress.close()
        self.stdout.write(render_table(
            ["table", "rows", "bytes", "seconds", "key"],
            [[b.table, b.rows, b.size, f"{b.seconds:.2f}", b.key] for b in written],
        ))  # fmt: skip
