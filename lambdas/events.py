"""Reading S3 object references out of the events that trigger a load."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus


class EventError(ValueError):
    """An event that names no S3 object."""


def s3_objects(event: dict[str, Any]) -> list[tuple[str, str]]:
    """(bucket, key) for each object in an S3 notification, an EventBridge
    "Object Created" event, or a direct ``{"bucket": ..., "key": ...}`` invocation.

    S3 notifications URL-encode their keys (a space is ``+``); EventBridge and direct
    invocations carry the key as it is.
    """
    if isinstance(event.get("Records"), list):
        objects = []
        for record in event["Records"]:
            s3 = record.get("s3") if isinstance(record, dict) else None
            if not isinstance(s3, dict):
                raise EventError("an S3 notification record has no 's3' object")
            objects.append((s3["bucket"]["name"], unquote_plus(s3["object"]["key"])))
        return objects
    detail = event.get("detail")
    if isinstance(detail, dict) and "bucket" in detail and "object" in detail:
        return [(detail["bucket"]["name"], detail["object"]["key"])]
    if isinstance(event.get("bucket"), str) and isinstance(event.get("key"), str):
        return [(event["bucket"], event["key"])]
    raise EventError(
        "expected an S3 notification (Records[].s3), an EventBridge Object Created event "
        "(detail.bucket.name, detail.object.key) or {'bucket': ..., 'key': ...}"
    )
