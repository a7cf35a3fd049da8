"""Request bodies as JSON, strictly: a malformed body is the caller's mistake (400), never a 500.

Both doors (``/graphql`` and the REST routes) read their JSON bodies here. A body is refused
when it is not UTF-8 (RFC 8259: UTF-16, a byte-order mark, invalid bytes), is not JSON, holds
``NaN`` or ``Infinity`` (Python accepts them, JSON does not), an integer of more than 4,300
digits (Python's limit on converting one), or nests deeper than the parser can follow.
"""

from __future__ import annotations

import json
from typing import Any


class MalformedBody(ValueError):
    """The body cannot be read as JSON; ``str()`` says why, for the caller."""


def parse_json_body(body: bytes | str) -> Any:
    """The body's JSON value, or ``MalformedBody``."""
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise MalformedBody(
                f"it must be UTF-8 (byte {error.start} is not): {error.reason}"
            ) from None
    else:
        text = body
    if text.startswith("\ufeff"):
        raise MalformedBody("it must not start with a byte-order mark")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise MalformedBody("it is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, and an integer too long to convert
        raise MalformedBody(str(error)) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def has_lone_surrogate(text: str) -> bool:
    """JSON's ``\\ud800`` escapes can name half a UTF-16 pair, which is no character at all."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
