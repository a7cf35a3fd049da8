"""``python manage.py backup [TABLE ...] [--codec deflate] [--keep N]``"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from backend import dictionary
from jobs.backups import backup_tables
from jobs.management.base import JobCommand


class Command(JobCommand):
    help = (
        "Back up tables (all by default) to AVRO files in the backup storage (BACKUP_BUCKET, "
        "or the BACKUP_DIR folder), from one consistent snapshot."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "tables", nargs="*", metavar="TABLE", choices=[[], *dictionary.TABLES],
            help=f"The tables to back up: {', '.join(dictionary.TABLES)} (all by default).",
        )  # fmt: skip
        parser.add_argument("--codec", default="deflate", help="null, deflate (default), ...")
        parser.add_argument(
            "--keep", type=int, default=None, metavar="N",
            help="Once the backup is written, delete each of its tables' intact backups beyond "
            "the N newest; 0 keeps them all (default: the BACKUP_KEEP setting).",
        )  # fmt: skip

    def handle(
        self, *args: Any, tables: list[str], codec: str, keep: int | None, **options: Any
    ) -> None:
        with self.progress_bar() as bar:
            written = backup_tables(tables=tables, codec=codec, keep=keep, progress=bar.update)
        self.summary(
            ["table", "rows", "bytes", "seconds", "key"],
            [[b.table, b.rows, b.size, f"{b.seconds:.2f}", b.key] for b in written],
        )
