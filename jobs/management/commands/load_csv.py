"""``python manage.py load_csv SOURCE [SOURCE ...] [--table T] [--force] [--chunk-size N]``"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend import dictionary
from jobs.csv_files import UnknownTableError
from jobs.loading import DEFAULT_CHUNK_SIZE, load_sources
from jobs.progress import RowProgress
from jobs.sources import SourceError
from jobs.summary import render_table


class Command(BaseCommand):
    requires_system_checks: list[str] = []  # a data job: skip importing the URLs and GraphQL schema
    help = (
        "Load CSV files (a file, a folder, s3://bucket/key or s3://bucket/prefix/) through the "
        "data rules. Bad rows are logged, not loaded. Unchanged sources are skipped; a killed "
        "run resumes where it stopped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("sources", nargs="+", metavar="SOURCE")
        parser.add_argument("--table", choices=list(dictionary.TABLES), help="Override the table.")
        parser.add_argument("--force", action="store_true", help="Load unchanged sources again.")
        parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)

    def handle(self, *args: Any, sources: list[str], table: str | None, force: bool,
               chunk_size: int, **options: Any) -> None:  # fmt: skip
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        bar = RowProgress(enabled=sys.stderr.isatty())
        try:
            summaries = load_sources(
                sources,
                table=table,
                chunk_size=chunk_size,
                force=force,
                progress=lambda s: bar.update(s.uri, s.read),
            )
        except (SourceError, UnknownTableError) as error:
            raise CommandError(str(error)) from None
        finally:
            bar.close()
        self.stdout.write(render_table(
            ["table", "read", "inserted", "rejected", "skipped", "seconds", "source"],
            [[s.table, s.read, s.inserted, s.rejected, s.skipped, f"{s.seconds:.2f}",
              s.uri + (" (unchanged)" if s.unchanged else "")] for s in summaries],
        ))  # fmt: skip
