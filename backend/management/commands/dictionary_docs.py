"""``python manage.py dictionary_docs``: regenerate docs/data-dictionary.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from backend.dictionary import as_markdown
from jobs.management.base import OperatorCommand


class Command(OperatorCommand):
    help = "Write the data dictionary as Markdown (docs/data-dictionary.md by default)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output",
            type=Path,
            default=settings.BASE_DIR / "docs" / "data-dictionary.md",
            help="Where to write it (default docs/data-dictionary.md).",
        )

    def handle(self, *args: Any, output: Path, **options: Any) -> None:
        output.write_text(as_markdown(), encoding="utf-8")
        if self.verbosity > 0:
            self.stdout.write(f"wrote {output}")
