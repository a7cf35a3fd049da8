"""schema.graphql is the published contract: it must be the code's schema, to the character,
so that every change to the API shows in review as a change to that file."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from graph.schema import sdl

ROOT = Path(settings.BASE_DIR)
SHOWN_LINES = 60
"""How much of the difference a failure shows: enough to see what changed, not a whole file."""


def short_diff(committed: str, current: str) -> str:
    """A unified diff of the committed file against the code's SDL, cut to ``SHOWN_LINES``."""
    lines = list(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            current.splitlines(keepends=True),
            fromfile="schema.graphql (committed)",
            tofile="schema.graphql (the code's)",
            n=1,
        )
    )
    shown = "".join(lines[:SHOWN_LINES])
    if len(lines) > SHOWN_LINES:
        shown += f"... and {len(lines) - SHOWN_LINES} more lines of difference\n"
    return shown


def test_schema_graphql_is_the_code_s_schema() -> None:
    committed = (ROOT / "schema.graphql").read_text(encoding="utf-8")
    current = sdl()
    if committed != current:
        pytest.fail(
            "schema.graphql is not the code's schema: run `make schema` and commit the file "
            "(review the change: clients build on it)\n" + short_diff(committed, current),
            pytrace=False,
        )


def test_the_difference_names_the_changed_lines_and_make_schema() -> None:
    current = sdl()
    changed = current.replace("  totalCount: Int!\n", "  totalCount: Float!\n", 1)

    diff = short_diff(changed, current)

    assert diff.startswith("--- schema.graphql (committed)\n+++ schema.graphql (the code's)\n@@ ")
    assert "\n-  totalCount: Float!\n+  totalCount: Int!\n" in diff
    assert len(diff.splitlines()) < 10
    everything = short_diff("", current * 2)
    assert everything.splitlines()[SHOWN_LINES] == (
        f"... and {2 * len(current.splitlines()) + 3 - SHOWN_LINES} more lines of difference"
    )


def test_export_schema_writes_the_code_s_sdl(tmp_path: Path) -> None:
    output = tmp_path / "schema.graphql"

    call_command("export_schema", "--output", str(output), verbosity=0)

    assert output.read_text(encoding="utf-8") == sdl()
    assert "\ntype Query {\n" in sdl() and "\ntype Mutation {\n" in sdl()
    assert sdl().endswith("}\n") and not sdl().endswith("\n\n")


def test_make_schema_runs_export_schema_in_the_venv() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nschema: setup\n", 1)[1].split("\n\n", 1)[0]
    assert recipe == "\t$(BIN)/python manage.py export_schema"
