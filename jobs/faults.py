"""Every error an operator can meet, told in one line.

``describe(error)`` is the one place that turns an exception into words for an operator: the
database gone, a full or read-only disk, S3 out of reach or refusing the credentials, and the
jobs' own refusals (``SourceError``, ``UnknownTableError``, ``BackupError``). It returns
``None`` for an exception nobody expected (a bug); ``one_line`` then says "unexpected <Type>".

The management commands print the line after ``error:`` (``jobs.management.base``) and the
Lambda handlers fail with it (``lambdas.fails_in_one_line``). The traceback goes to the logs.
"""

from __future__ import annotations

import os
import re
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError
from django.db import DatabaseError, InterfaceError, OperationalError

# A table missing (SQLite, then PostgreSQL): the database is there, but not migrated.
_NOT_MIGRATED = re.compile(r'no such table|relation "[^"]+" does not exist')


def describe(error: BaseException) -> str | None:
    """One line for an operator, or ``None`` when ``error`` is nobody's expected failure."""
    for explain in (_refusal, _database, _s3, _os):
        message = explain(error)
        if message is not None:
            return message
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    return None


def one_line(error: BaseException) -> str:
    """``describe(error)``, or ``unexpected <Type>: <its first line>`` for the unforeseen."""
    message = describe(error)
    if message is not None:
        return message
    first = first_line(error)
    return f"unexpected {type(error).__name__}" + (f": {first}" if first else "")


def first_line(error: BaseException) -> str:
    """The first non-blank line of the message (drivers add hints on the lines below)."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), "")


def _joined(error: BaseException) -> str:
    """A message written for operators, on one line: its lines joined, none dropped."""
    return " ".join(str(error).split()) or type(error).__name__


@cache
def _job_errors() -> tuple[type[Exception], ...]:
    """Imported on first use: ``jobs.backups`` needs the app registry, which ``manage.py`` has
    not loaded yet when it reports a bad setting."""
    from jobs.backups import BackupError
    from jobs.csv_files import CsvFormatError, UnknownTableError
    from jobs.ingest.replay import ReplayError
    from jobs.sources import SourceError

    return (SourceError, UnknownTableError, CsvFormatError, BackupError, ReplayError)


def is_job_refusal(error: BaseException) -> bool:
    """Whether a job refused what it was asked (a missing source, a file of no known table, a
    backup it cannot use): the operator's to fix, not a fault of the machine or a bug."""
    return isinstance(error, _job_errors())


def _refusal(error: BaseException) -> str | None:
    """Errors whose messages are written for operators already."""
    if isinstance(error, CommandError | ImproperlyConfigured) or is_job_refusal(error):
        return _joined(error)
    return None


def _database(error: BaseException) -> str | None:
    """Django's wrapped errors, and the driver's own should one escape unwrapped."""
    names = {cls.__name__ for cls in type(error).__mro__}
    driver = type(error).__module__.split(".")[0] in {"psycopg", "psycopg2", "sqlite3"}
    detail = first_line(error) or type(error).__name__
    if isinstance(error, DatabaseError) and _NOT_MIGRATED.search(detail):
        return f"the database is not set up ({detail}): run python manage.py migrate"
    if isinstance(error, InterfaceError) or (driver and "InterfaceError" in names):
        return f"the database connection was lost: {detail}"
    if isinstance(error, OperationalError) or (driver and "OperationalError" in names):
        if "database is locked" in detail:
            return f"the database is busy: {detail}"
        if "disk is full" in detail or "No space left on device" in detail:
            return f"the database's disk is full: {detail}"
        return f"the database is unreachable: {detail}"
    return None


def _s3(error: BaseException) -> str | None:
    try:
        from botocore import exceptions as boto
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return None
    if isinstance(error, boto.NoCredentialsError):
        return (
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or run with an IAM role"
        )
    if isinstance(error, boto.PartialCredentialsError):
        return f"incomplete AWS credentials: {first_line(error)}"
    if isinstance(error, boto.ConnectTimeoutError | boto.ReadTimeoutError):
        return f"S3 did not answer in time at {_endpoint(error)}"
    if isinstance(error, boto.EndpointConnectionError | boto.ConnectionClosedError):
        return f"S3 is unreachable at {_endpoint(error)}"
    if isinstance(error, boto.ClientError):
        return _s3_refusal(error)
    if isinstance(error, boto.BotoCoreError):
        return f"S3 client error: {first_line(error)}"
    return None


def _endpoint(error: BaseException) -> str:
    """The S3 server's address, without the request's path and query."""
    url = str(getattr(error, "kwargs", {}).get("endpoint_url", ""))
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else (url or "its endpoint")


def _s3_refusal(error: Any) -> str:
    """A botocore ``ClientError``: S3 answered, and said no."""
    answer = error.response.get("Error", {})
    code = str(answer.get("Code", ""))
    operation = getattr(error, "operation_name", "") or "the request"
    if code == "InvalidAccessKeyId":
        return "S3 does not know the access key (InvalidAccessKeyId): check AWS_ACCESS_KEY_ID"
    if code == "SignatureDoesNotMatch":
        return "S3 rejected the secret key (SignatureDoesNotMatch): check AWS_SECRET_ACCESS_KEY"
    if code in {"ExpiredToken", "TokenRefreshRequired", "InvalidToken"}:
        return f"the AWS credentials have expired ({code}): renew them"
    if code in {"AccessDenied", "403", "Forbidden"}:
        return f"S3 denied {operation} ({code}): check the credentials and the bucket policy"
    if code == "NoSuchBucket":
        bucket = answer.get("BucketName")
        return (
            f"the S3 bucket {bucket!r} does not exist" if bucket else "the S3 bucket does not exist"
        )
    if code in {"NoSuchKey", "404", "NotFound"}:
        key = answer.get("Key")
        return f"the S3 object {key!r} does not exist" if key else f"S3 found nothing ({operation})"
    message = str(answer.get("Message", "")).strip()
    return f"S3 refused {operation}: {code}" + (f" ({message})" if message else "")


def _os(error: BaseException) -> str | None:
    """A file-system or socket error: the system's words for it, and the path when known."""
    if not isinstance(error, OSError):
        return None
    if error.errno is None:
        return first_line(error) or type(error).__name__
    reason = str(error.strerror or os.strerror(error.errno))
    reason = reason[:1].lower() + reason[1:]  # "No space left on device" -> "no space ..."
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    return f"{reason}: {' -> '.join(paths)}" if paths else reason
