"""Lambda: one batch of a Distributed Map over a large CSV file (``events.ChunkEvent``).

The state machine's ItemReader parses the CSV with the dictionary's column names as headers,
and its ItemSelector pairs each row with its index. A retried batch is a no-op (see
``jobs.loading.load_chunk``).
"""

from __future__ import annotations

from typing import Any

from jobs.csv_files import table_for
from jobs.loading import load_chunk
from lambdas import fails_in_one_line
from lambdas.events import ChunkEvent


@fails_in_one_line
def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Load the batch's rows and return the chunk's summary."""
    chunk = ChunkEvent.parse(event)
    summary = load_chunk(
        uri=chunk.file.uri,
        fingerprint=chunk.fingerprint,
        table=table_for(chunk.file.key),
        rows=list(chunk.rows),
    )
    return summary.as_dict()
