"""``python manage.py backup [TABLE ...] [--codec deflate] [--keep N]``"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from backend import dictionary
from jobs.backups import CODECS, BackupFile, backup_tables
from jobs.management.base import JobCommand
from jobs.progress import Progress


class Command(JobCommand):
    help = (
        "Back up tables (all by default) to AVRO files in the backup storage (BACKUP_BUCKET, "
        "or the BACKUP_DIR folder), from one consistent snapshot."
    )
    columns = [("table", "table"), ("rows", "rows"), ("bytes", "size"), ("seconds", "seconds"),
               ("key", "key")]  # fmt: skip

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "tables", nargs="*", metavar="TABLE", choices=[[], *dictionary.TABLES],
            help=f"The tables to back up: {', '.join(dictionary.TABLES)} (all by default).",
        )  # fmt: skip
        parser.add_argument(
            "--codec", default="deflate",
            help=f"The AVRO codec: {', '.join(CODECS)} (default deflate; some need a library).",
        )  # fmt: skip
        parser.add_argument(
            "--keep", type=int, default=None, metavar="N",
            help="Once the backup is written, delete each of its tables' intact backups beyond "
            "the N newest; 0 keeps them all (default: the BACKUP_KEEP setting).",
        )  # fmt: skip

    def run_job(self, *, tables: list[str], codec: str, keep: int | None, progress: Progress,
                **options: Any) -> list[BackupFile]:  # fmt: skip
        return backup_tables(tables=tables, codec=codec, keep=keep, progress=progress)
