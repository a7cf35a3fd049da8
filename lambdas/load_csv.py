"""Lambda: load the CSV objects named by an S3 or EventBridge event, through the same loader.

Idempotent: the same event delivered twice finds the completed run and reports it unchanged.
Errors keep their class names (EventError, UnknownTableError, SourceError), so the state
machine can tell a bad key, which it records, from a transient failure, which it retries.
"""

from __future__ import annotations

from typing import Any

from jobs.csv_files import table_for
from jobs.loading import load_sources
from lambdas import fails_in_one_line
from lambdas.events import S3Event


@fails_in_one_line
def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Load each object of the event and return the runs' summaries."""
    objects = S3Event.parse(event).objects
    for s3_object in objects:
        table_for(s3_object.key)  # a key that matches no table is refused before anything is read
    summaries = load_sources([s3_object.uri for s3_object in objects])
    return {"runs": [summary.as_dict() for summary in summaries]}
