"""``python manage.py export_schema``: rewrite schema.graphql, the API's published contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from graph.schema import sdl
from jobs.management.base import OperatorCommand


class Command(OperatorCommand):
    help = "Write the GraphQL schema as SDL (schema.graphql at the repository's root by default)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output",
            type=Path,
            default=settings.BASE_DIR / "schema.graphql",
            help="Where to write it (default schema.graphql).",
        )

    def handle(self, *args: Any, output: Path, **options: Any) -> None:
        output.write_text(sdl(), encoding="utf-8")
        if self.verbosity > 0:
            self.stdout.write(f"wrote {output}")
