"""Lambda: restore one table, invoked with ``{"table": "jobs", "backup": "jobs/<ts>.avro"}``.

Without ``backup`` it takes the table's latest backup. ``{"all": true}`` restores every table
from its latest backup, in one transaction.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from backend import dictionary
from jobs.backups import BackupError, restore_tables
from lambdas import fails_in_one_line


@fails_in_one_line
def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Restore and return what happened to each table; a refused restore raises BackupError."""
    if event.get("all"):
        done = restore_tables(tables=list(dictionary.TABLES))
    else:
        table = event.get("table")
        if table not in dictionary.TABLES:
            raise BackupError(
                f"'table' must be one of {', '.join(dictionary.TABLES)}, got {table!r}"
            )
        done = restore_tables(tables=[table], backups={table: event.get("backup") or ""})
    return {"restored": [asdict(summary) for summary in done]}
