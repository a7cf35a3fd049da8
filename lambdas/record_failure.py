"""Lambda: record a load that the state machine gave up on, where operators look (load_runs)."""

from __future__ import annotations

from typing import Any

from jobs.loading import record_failed_load
from lambdas import fails_in_one_line
from lambdas.events import FailureEvent


@fails_in_one_line
def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """``event`` is the state machine input plus ``error`` ({Error, Cause}) from its Catch."""
    failure = FailureEvent.parse(event)
    run_ids = [
        record_failed_load(uri=s3_object.uri, error=failure.message)
        for s3_object in failure.objects
    ]
    return {"recorded": run_ids, "error": failure.message}
