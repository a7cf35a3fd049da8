"""Lambda: back up every table (or those named in the event) on an EventBridge schedule.

Each run writes new keys (``<table>/<UTC timestamp>.avro``), so a retried invocation adds a
second backup instead of overwriting the first.
"""

from __future__ import annotations

from typing import Any

from jobs.backups import backup_tables
from lambdas import fails_in_one_line
from lambdas.events import BackupEvent


@fails_in_one_line
def handler(event: dict[str, Any] | None = None, context: Any = None) -> dict[str, Any]:
    """``{"tables": [...]}`` narrows the backup; a scheduled event backs up all tables."""
    backup = BackupEvent.parse(event)
    written = backup_tables(tables=list(backup.tables) or None, codec=backup.codec)
    return {"backups": [file.manifest() for file in written]}
