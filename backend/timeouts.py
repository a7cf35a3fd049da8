"""The statement timeout of API requests: a query that still runs too long is cancelled.

Every SQL statement an API request runs (GraphQL or REST) gets ``STATEMENT_TIMEOUT_MS``
(10 s by default, 0 for none). The caller gets a clean error, ``TIMEOUT``, and the worker is
free again. A cancelled statement is not an outage: ``is_statement_timeout`` tells the two
apart, since Django raises both as ``OperationalError``.

- PostgreSQL: ``SET statement_timeout`` on the connection, once per connection and value (the
  session keeps it; a web worker's connections serve only requests). The server cancels the
  statement (``57014 query_canceled``).
- SQLite: a progress handler interrupts a statement that runs past its deadline
  (``SQLITE_INTERRUPT``), for the length of the request only.

The doors apply it to the default connection, and ``backend/replica.py`` to the replica's
around the reads it may serve.

Management commands and Lambda handlers (loads, backups, restores) never get it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.dispatch import receiver

TIMEOUT_CODE = "TIMEOUT"
_QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cancelled by statement_timeout
_SQLITE_STEPS = 1000  # SQLite virtual machine steps between two looks at the clock


def timeout_message() -> str:
    seconds = settings.STATEMENT_TIMEOUT_MS / 1000
    return (
        f"the query ran longer than {seconds:g} s and was cancelled; "
        "ask for less (smaller pages, fewer nested objects)"
    )


def is_statement_timeout(error: BaseException | None) -> bool:
    """Whether ``error`` (or the driver error under Django's) is a cancelled statement."""
    for candidate in (error, getattr(error, "__cause__", None)):
        if getattr(candidate, "pgcode", None) == _QUERY_CANCELED:
            return True
        if getattr(candidate, "sqlite_errorname", None) == "SQLITE_INTERRUPT":
            return True
    return False


@contextmanager
def statement_timeout(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Apply ``STATEMENT_TIMEOUT_MS`` to every statement run inside the block on the
    connection ``using``."""
    milliseconds = settings.STATEMENT_TIMEOUT_MS
    connection = connections[using]
    if connection.vendor == "postgresql":
        _set_postgresql_timeout(connection, milliseconds)
        yield
    elif connection.vendor == "sqlite" and milliseconds > 0:
        with _sqlite_deadline(connection, milliseconds / 1000):
            yield
    else:
        yield


@receiver(connection_created)
def _forget_timeout(sender: Any, connection: Any, **kwargs: Any) -> None:
    """A new connection starts with the server's default timeout."""
    connection.roster_statement_timeout = None


def _set_postgresql_timeout(connection: BaseDatabaseWrapper, milliseconds: int) -> None:
    connection.ensure_connection()
    # Django's wrapper carries Roster's own attribute (forgotten by _forget_timeout, below).
    wrapper: Any = connection
    if getattr(wrapper, "roster_statement_timeout", None) == milliseconds:
        return
    # Through the driver's own cursor: a setting, not one of the request's queries.
    with connection.connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = %s", [milliseconds])
    # Inside a transaction the setting goes if it rolls back: set it again next time.
    if not connection.in_atomic_block:
        wrapper.roster_statement_timeout = milliseconds


class _Deadline:
    """Each statement's deadline, restarted by Django's execute wrapper as it starts."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = math.inf

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        self.at = time.monotonic() + self.seconds
        return execute(sql, params, many, context)

    def passed(self) -> bool:
        return time.monotonic() > self.at


@contextmanager
def _sqlite_deadline(connection: BaseDatabaseWrapper, seconds: float) -> Iterator[None]:
    connection.ensure_connection()
    raw = connection.connection
    deadline = _Deadline(seconds)
    raw.set_progress_handler(deadline.passed, _SQLITE_STEPS)
    try:
        with connection.execute_wrapper(deadline):
            yield
    finally:
        raw.set_progress_handler(None, 0)
