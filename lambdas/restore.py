"""Lambda: restore one table, invoked with ``{"table": "jobs", "backup": "jobs/<ts>.avro"}``.

Without ``backup`` it takes the table's latest backup. ``{"all": true}`` restores every table
from its latest backup, in one transaction.
"""

from __future__ import annotations

from typing import Any

from jobs.backups import restore_tables
from lambdas import fails_in_one_line
from lambdas.events import RestoreEvent


@fails_in_one_line
def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Restore and return what happened to each table; a refused restore raises BackupError."""
    restore = RestoreEvent.parse(event)
    backups = {table: restore.backup for table in restore.tables} if restore.backup else None
    done = restore_tables(tables=list(restore.tables), backups=backups)
    return {"restored": [summary.as_dict() for summary in done]}
