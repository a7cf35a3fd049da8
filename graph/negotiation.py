"""The media type /graphql answers in, and the status codes that go with it (GraphQL over HTTP).

- ``application/graphql-response+json``, when the client prefers it: a request that fails
  before any field runs (its document does not parse or validate, its variables do not
  coerce) answers 400, and no answer other than a 2xx has a ``data`` entry, so that a client
  can trust the status even through proxies. A request that runs answers 200 with ``data``,
  even when some of its fields fail.
- ``application/json``, when the client prefers it, sends no ``Accept`` or accepts anything
  (``*/*``): the legacy answer, 200 with ``"data": null`` for a document that fails, as the
  clients written before the new media type expect.
- Neither acceptable: 406, in ``application/json``.

Roster's own refusals (a body that cannot be read, no token, an outage...) keep their status
codes under both; only their media type and their ``data`` entry follow the negotiation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import cast

from graphql import GraphQLFormattedError

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
CONTENT_TYPES = {GRAPHQL_RESPONSE: f"{GRAPHQL_RESPONSE}; charset=utf-8", JSON: JSON}
"""The ``Content-Type`` of each; ``application/json`` stays as it always was here."""

NOT_ACCEPTABLE = "NOT_ACCEPTABLE"
NOT_ACCEPTABLE_MESSAGE = f"the Accept header allows neither {GRAPHQL_RESPONSE} nor {JSON}"


def negotiate(accept: str | None) -> str | None:
    """The media type the ``Accept`` header prefers, or None when it accepts neither.

    The highest q-value wins; each type takes it from the most specific range that covers it
    (``application/json`` over ``application/*`` over ``*/*``). At equal q, a type named
    outright beats one reached through a wildcard, then the one listed first wins.
    Wildcards alone, or no usable header, give ``application/json``: clients from before the
    new media type send ``*/*`` or nothing, and the graphql-http audit expects JSON for both.
    """
    ranges = list(_media_ranges(accept or ""))
    if not ranges:
        return JSON

    def preference(media_type: str) -> tuple[float, bool, int]:
        names = {media_type: 2, f"{media_type.split('/')[0]}/*": 1, "*/*": 0}
        covering = [
            (names[name], -position, q)
            for position, (name, q) in enumerate(ranges)
            if name in names
        ]
        if not covering:
            return 0.0, False, 0
        specificity, first, q = max(covering)  # the most specific range, the first listed
        return q, specificity == 2, first

    best = max((JSON, GRAPHQL_RESPONSE), key=preference)  # a tie keeps the first: JSON
    return best if preference(best)[0] > 0 else None


def _media_ranges(accept: str) -> Iterator[tuple[str, float]]:
    """Each well-formed range of an ``Accept`` header: its ``type/subtype`` and its q-value."""
    for part in accept.split(","):
        media_range, *params = (piece.strip() for piece in part.split(";"))
        if media_range.count("/") != 1:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = -1.0
        if 0 <= q <= 1:  # also drops nan
            yield media_range.lower(), q


def failed_before_execution(body: Mapping[str, object]) -> bool:
    """No data, and errors that have no path: the document did not parse or validate, or its
    variables did not coerce, so no field ran (graphql-core locates every field's error)."""
    errors = cast("list[GraphQLFormattedError]", body.get("errors") or [])
    return body.get("data") is None and bool(errors) and all("path" not in e for e in errors)


def shape(
    body: Mapping[str, object], status: int | None, media_type: str
) -> tuple[dict[str, object], int]:
    """The body and status to send in ``media_type``, from the answer and its status so far.

    No status yet (an answer of Strawberry's) is 200, or under graphql-response+json 400 when
    the request failed before execution. Under graphql-response+json, an answer that is not
    a 2xx loses its ``data`` entry: the spec keeps ``data`` for 2xx answers.
    """
    if media_type != GRAPHQL_RESPONSE:
        return dict(body), status or 200
    if status is None:
        status = 400 if failed_before_execution(body) else 200
    if 200 <= status < 300:
        return dict(body), status
    return {key: value for key, value in body.items() if key != "data"}, status
