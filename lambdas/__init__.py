"""AWS Lambda handlers: thin doors over the same jobs the management commands run.

Importing any handler imports this package first, which sets Django up once per container.
Every handler is wrapped in ``fails_in_one_line``.
"""

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


def fails_in_one_line(handler: Handler) -> Handler:
    """The handler runs with the data jobs' interpreter settings (``tuned_for_jobs``).

    A failed invocation is logged once, as one JSON line with its request id and traceback,
    and fails with a one-line message (worded by ``jobs.faults.describe``).

    The error keeps its class name, which Lambda reports as the error type and the state
    machine matches (``SourceError``, ``OperationalError``...): the original error when its
    message is that line already, else one of the same class, or of the same name.
    """

    @functools.wraps(handler)
    def invoke(event: Any = None, context: Any = None) -> dict[str, Any]:
        try:
            with tuned_for_jobs():  # a Lambda runs one job at a time: tuned for it
                return handler(event, context)
        except Exception as error:
            message = describe(error) or first_line(error) or type(error).__name__
            name = handler.__module__.rpartition(".")[2]
            logger.error(
                "%s failed: %s", name, message,
                exc_info=error,
                extra={"handler": name, "error": type(error).__name__,
                       "request_id": getattr(context, "aws_request_id", None)},
            )  # fmt: skip
            if str(error) == message:
                raise
            raise _named_like(error, message) from error

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
