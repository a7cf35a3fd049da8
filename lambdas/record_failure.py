"""Lambda: record a load that the state machine gave up on, where operators look (load_runs)."""

from __future__ import annotations

from typing import Any

from jobs.loading import record_failed_load
from jobs.sources import s3_uri
from lambdas.events import s3_objects


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """``event`` is the state machine input plus ``error`` ({Error, Cause}) from its Catch."""
    error = event.get("error") or {}
    message = f"{error.get('Error', 'Error')}: {error.get('Cause', '')}".strip()
    run_ids = [
        record_failed_load(uri=s3_uri(bucket, key), error=message)
        for bucket, key in s3_objects(event)
    ]
    return {"recorded": run_ids, "error": message}
