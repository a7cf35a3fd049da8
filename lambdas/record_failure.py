"""Lambda: record a load that the state machine gave up on, where operators look (load_runs)."""

from __future__ import annotations

import json
from typing import Any

from jobs.loading import record_failed_load
from jobs.sources import s3_uri
from lambdas import fails_in_one_line
from lambdas.events import s3_objects


@fails_in_one_line
def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """``event`` is the state machine input plus ``error`` ({Error, Cause}) from its Catch."""
    error = event.get("error") or {}
    message = f"{error.get('Error', 'Error')}: {_cause(error.get('Cause', ''))}".strip()
    run_ids = [
        record_failed_load(uri=s3_uri(bucket, key), error=message)
        for bucket, key in s3_objects(event)
    ]
    return {"recorded": run_ids, "error": message}


def _cause(cause: str) -> str:
    """A failed Lambda task's Cause is JSON (errorMessage, errorType, stackTrace): its message,
    which is one line, is what an operator reads. Any other Cause is kept as it is."""
    try:
        failure = json.loads(cause)
    except ValueError:
        return cause
    if isinstance(failure, dict) and isinstance(failure.get("errorMessage"), str):
        return failure["errorMessage"]
    return cause
