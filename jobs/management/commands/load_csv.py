"""``python manage.py load_csv SOURCE [SOURCE ...] [--table T] [--force] [--chunk-size N]``"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from backend import dictionary
from jobs.loading import DEFAULT_CHUNK_SIZE, LoadSummary, load_sources
from jobs.management.base import JobCommand
from jobs.progress import Progress


class Command(JobCommand):
    help = (
        "Load CSV files (a file, a folder, s3://bucket/key or s3://bucket/prefix/) through the "
        "data rules. Bad rows are logged, not loaded. Unchanged sources are skipped; a killed "
        "run resumes where it stopped."
    )
    columns = [
        ("table", "table"), ("read", "read"), ("inserted", "inserted"), ("rejected", "rejected"),
        ("skipped", "skipped"), ("seconds", "seconds"),
        ("source", lambda s: s.uri + (" (unchanged)" if s.unchanged else "")),
    ]  # fmt: skip

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "sources", nargs="+", metavar="SOURCE",
            help="A CSV file, a folder of them, s3://bucket/key or s3://bucket/prefix/.",
        )  # fmt: skip
        parser.add_argument("--table", choices=list(dictionary.TABLES), help="Override the table.")
        parser.add_argument("--force", action="store_true", help="Load unchanged sources again.")
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=DEFAULT_CHUNK_SIZE,
            metavar="N",
            help=f"Rows per transaction (default {DEFAULT_CHUNK_SIZE}): each chunk commits its "
            "rows, its rejections and the run's progress together.",
        )

    def run_job(self, *, sources: list[str], table: str | None, force: bool, chunk_size: int,
                progress: Progress, **options: Any) -> list[LoadSummary]:  # fmt: skip
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        return load_sources(
            sources, table=table, chunk_size=chunk_size, force=force, progress=progress
        )
