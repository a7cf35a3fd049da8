"""AWS Lambda handlers: thin doors over the same jobs the management commands run.

Importing any handler imports this package first, which sets Django up once per container.
Every handler parses its event into a class of ``lambdas.events`` and is wrapped in
``fails_in_one_line``.

Every log line of an invocation carries its request id (``request_id``), the jobs' lines
included (``roster.ingest``, ``roster.loading``...), so one invocation's lines can be found
together. The id is a context variable that ``fails_in_one_line`` sets for the call, and this
package's log record factory copies it onto each record made meanwhile, in the handler's
thread and in the threads it starts with its context (``jobs.read_ahead``). A factory, not a
filter: a filter sees only the records of the logger or handler it is attached to, and the
JSON formatter writes every attribute a record carries, so the id reaches the line.
"""

import contextvars
import functools
import logging
import os
from collections.abc import Callable
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
django.setup()

from jobs.faults import describe, first_line  # noqa: E402 - needs Django set up
from jobs.read_ahead import tuned_for_jobs  # noqa: E402

logger = logging.getLogger("roster.lambdas")

Handler = Callable[[Any, Any], dict[str, Any]]

_OUTSIDE = object()
_request_id: contextvars.ContextVar[object] = contextvars.ContextVar(
    "roster_request_id", default=_OUTSIDE
)


class _RequestIdRecords:
    """The log record factory ``make``, adding ``request_id`` to the records of an invocation."""

    def __init__(self, make: Callable[..., logging.LogRecord]) -> None:
        self.make = make

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.make(*args, **kwargs)
        request_id = _request_id.get()
        if request_id is not _OUTSIDE:
            record.request_id = request_id
        return record


if not isinstance(logging.getLogRecordFactory(), _RequestIdRecords):
    logging.setLogRecordFactory(_RequestIdRecords(logging.getLogRecordFactory()))


def fails_in_one_line(handler: Handler) -> Handler:
    """The handler runs with the data jobs' interpreter settings (``tuned_for_jobs``), and its
    request id on every log record.

    A failed invocation is logged once, as one JSON line with its request id and traceback,
    and fails with a one-line message (worded by ``jobs.faults.describe``).

    The error keeps its class name, which Lambda reports as the error type and the state
    machine matches (``SourceError``, ``OperationalError``...): the original error when its
    message is that line already, else one of the same class, or of the same name.
    """

    @functools.wraps(handler)
    def invoke(event: Any = None, context: Any = None) -> dict[str, Any]:
        token = _request_id.set(getattr(context, "aws_request_id", None))
        try:
            with tuned_for_jobs():  # a Lambda runs one job at a time: tuned for it
                return handler(event, context)
        except Exception as error:
            message = describe(error) or first_line(error) or type(error).__name__
            name = handler.__module__.rpartition(".")[2]
            logger.error(
                "%s failed: %s", name, message,
                exc_info=error, extra={"handler": name, "error": type(error).__name__},
            )  # fmt: skip
            if str(error) == message:
                raise
            raise _named_like(error, message) from error
        finally:
            _request_id.reset(token)

    return invoke


def _named_like(error: Exception, message: str) -> Exception:
    """An exception with ``message`` and ``error``'s class name: of its class when that class
    takes a message alone, else of a stand-in class with the same name."""
    kind = type(error)
    try:
        same = kind(message)
    except Exception:  # a class that needs more than a message (botocore's ClientError)
        same = None
    if same is not None and str(same) == message:
        return same
    stand_in = type(kind.__name__, (Exception,), {"__module__": kind.__module__})
    return stand_in(message)
