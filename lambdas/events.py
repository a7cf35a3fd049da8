"""The events the Lambda handlers take, each parsed into a frozen dataclass before any work.

A handler never walks a dict: ``<Event>.parse(event)`` reads the one shape (or the few shapes)
it accepts, and refuses anything else with ``EventError`` and one line saying what was
expected. The state machine does not retry an ``EventError``: the same event fails the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from backend import dictionary
from jobs.sources import s3_uri


class EventError(ValueError):
    """An event that is not of the shape its handler takes."""


def _at(value: Any, *path: str) -> Any:
    """``value[path[0]][path[1]]…``, or None where a step is missing or not an object."""
    for step in path:
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    """As stored: an S3 notification's URL-encoding (a space is ``+``) is undone."""

    @property
    def uri(self) -> str:
        return s3_uri(self.bucket, self.key)


_S3_SHAPES = (
    "expected an S3 notification (Records[].s3), an EventBridge Object Created event "
    "(detail.bucket.name, detail.object.key) or {'bucket': ..., 'key': ...}"
)


@dataclass(frozen=True)
class S3Event:
    """The objects an S3 put notification, an EventBridge "Object Created" event, or a direct
    ``{"bucket": ..., "key": ...}`` invocation names (the load's and the state machine's input)."""

    objects: tuple[S3Object, ...]

    @classmethod
    def parse(cls, event: Any) -> S3Event:
        records = _at(event, "Records")
        if isinstance(records, list):
            return cls(tuple(_notified(record) for record in records))
        bucket, key = _at(event, "detail", "bucket", "name"), _at(event, "detail", "object", "key")
        if _text(bucket) and _text(key):
            return cls((S3Object(bucket, key),))
        bucket, key = _at(event, "bucket"), _at(event, "key")
        if _text(bucket) and _text(key):
            return cls((S3Object(bucket, key),))
        raise EventError(_S3_SHAPES)


def _notified(record: Any) -> S3Object:
    """One record of an S3 notification, whose keys are URL-encoded."""
    if not isinstance(_at(record, "s3"), dict):
        raise EventError("an S3 notification record has no 's3' object")
    bucket, key = _at(record, "s3", "bucket", "name"), _at(record, "s3", "object", "key")
    if not (_text(bucket) and _text(key)):
        raise EventError("an S3 notification record has no s3.bucket.name or s3.object.key")
    return S3Object(bucket, unquote_plus(key))


@dataclass(frozen=True)
class ChunkEvent:
    """One batch of the Distributed Map over a large CSV file::

        {"BatchInput": {"bucket": ..., "key": ..., "etag": ...},
         "Items": [{"index": 0, "row": {"id": "1", "name": ..., ...}}, ...]}

    ``rows`` are (line, fields): the line is the index + 1.
    """

    file: S3Object
    etag: str
    """Without its quotes; empty when the state machine passed none."""
    rows: tuple[tuple[int, dict[str, Any]], ...]

    @property
    def fingerprint(self) -> str:
        return f"etag:{self.etag}"

    @classmethod
    def parse(cls, event: Any) -> ChunkEvent:
        shape = (
            "expected a Distributed Map batch: {'BatchInput': {'bucket': ..., 'key': ..., "
            "'etag': ...}, 'Items': [{'index': 0, 'row': {...}}, ...]}"
        )
        bucket, key = _at(event, "BatchInput", "bucket"), _at(event, "BatchInput", "key")
        items = _at(event, "Items")
        if not (_text(bucket) and _text(key) and isinstance(items, list)):
            raise EventError(shape)
        rows = []
        for item in items:
            index, row = _at(item, "index"), _at(item, "row")
            if isinstance(index, str) and index.isdigit():
                index = int(index)
            if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                raise EventError(f"{shape}; an item's index is {index!r}")
            if not isinstance(row, dict):
                raise EventError(f"{shape}; item {index} has no 'row' object")
            rows.append((index + 1, dict(row)))
        etag = str(_at(event, "BatchInput", "etag") or "").strip('"')
        return cls(S3Object(bucket, key), etag, tuple(rows))


@dataclass(frozen=True)
class FailureEvent:
    """The state machine's input, with what its Catch adds: ``{"error": {"Error", "Cause"}}``."""

    objects: tuple[S3Object, ...]
    error: str
    cause: str
    """A failed Lambda task's Cause is JSON (errorMessage, errorType, stackTrace): its message,
    which is one line, is what an operator reads. Any other Cause is kept as it is."""

    @property
    def message(self) -> str:
        return f"{self.error}: {self.cause}".strip()

    @classmethod
    def parse(cls, event: Any) -> FailureEvent:
        objects = S3Event.parse(event).objects
        error = _at(event, "error") or {}
        if not isinstance(error, dict):
            raise EventError("expected 'error' to be the Catch's {'Error': ..., 'Cause': ...}")
        name, cause = error.get("Error", "Error"), error.get("Cause", "")
        return cls(objects, str(name), _lambda_message(str(cause)))


def _lambda_message(cause: str) -> str:
    try:
        failure = json.loads(cause)
    except ValueError:
        return cause
    if isinstance(failure, dict) and isinstance(failure.get("errorMessage"), str):
        return failure["errorMessage"]
    return cause


@dataclass(frozen=True)
class BackupEvent:
    """``{"tables": [...], "codec": ...}``, both optional; a scheduled EventBridge event (which
    has neither) backs up every table with deflate."""

    tables: tuple[str, ...] = ()
    """Empty for every table."""
    codec: str = "deflate"

    @classmethod
    def parse(cls, event: Any) -> BackupEvent:
        if event is None:
            return cls()
        if not isinstance(event, dict):
            raise EventError("expected an object such as {'tables': ['jobs'], 'codec': 'deflate'}")
        tables, codec = event.get("tables") or [], event.get("codec", "deflate")
        if not isinstance(tables, list) or not all(isinstance(name, str) for name in tables):
            raise EventError(f"expected 'tables' to be a list of table names, got {tables!r:.200}")
        if not _text(codec):
            raise EventError(f"expected 'codec' to be a codec's name, got {codec!r:.200}")
        return cls(tuple(tables), codec)


@dataclass(frozen=True)
class RestoreEvent:
    """``{"table": "jobs", "backup": "jobs/<ts>.avro"}`` (``backup`` optional: the latest), or
    ``{"all": true}`` for every table from its latest backup."""

    tables: tuple[str, ...]
    backup: str = ""
    """Empty for the table's latest backup."""

    @classmethod
    def parse(cls, event: Any) -> RestoreEvent:
        if not isinstance(event, dict):
            raise EventError("expected {'table': ..., 'backup': ...} or {'all': true}")
        if event.get("all"):
            return cls(tuple(dictionary.TABLES))
        table, backup = event.get("table"), event.get("backup") or ""
        if not isinstance(table, str) or table not in dictionary.TABLES:
            from jobs.backups import BackupError  # the restore's refusal, as from the command

            raise BackupError(
                f"'table' must be one of {', '.join(dictionary.TABLES)}, got {table!r}"
            )
        if not isinstance(backup, str):
            raise EventError(f"expected 'backup' to be a key such as {table}/<timestamp>.avro")
        return cls((table,), backup)
