"""Lambda: one batch of a Distributed Map over a large CSV file.

The state machine's ItemReader parses the CSV with the dictionary's column names as headers,
and its ItemSelector pairs each row with its index, so the event is::

    {"BatchInput": {"bucket": ..., "key": ..., "etag": ...},
     "Items": [{"index": 0, "row": {"id": "1", "name": ..., ...}}, ...]}

A retried batch is a no-op (see ``jobs.loading.load_chunk``).
"""

from __future__ import annotations

from typing import Any

from jobs.csv_files import table_for
from jobs.loading import load_chunk
from jobs.sources import s3_uri
from lambdas import fails_in_one_line


@fails_in_one_line
def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Load the batch's rows (line = index + 1) and return the chunk's summary."""
    where = event["BatchInput"]
    rows = [(int(item["index"]) + 1, dict(item["row"])) for item in event["Items"]]
    summary = load_chunk(
        uri=s3_uri(where["bucket"], where["key"]),
        fingerprint="etag:" + str(where.get("etag", "")).strip('"'),
        table=table_for(where["key"]),
        rows=rows,
    )
    return summary.as_dict()
