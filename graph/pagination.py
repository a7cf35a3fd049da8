"""Keyset pagination on id: stable under inserts, and as fast on the last page as the first."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import strawberry
from django.db.models import QuerySet

from backend.dictionary import MAX_BATCH_ROWS
from graph.errors import bad_input

T = TypeVar("T")
MAX_PAGE = MAX_BATCH_ROWS
_CURSOR_PREFIX = "roster:v1:"


@strawberry.type(description="Where this page ends, and whether more rows follow.")
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(description="One page of rows, in id order.")
class Connection(Generic[T]):
    nodes: list[T]
    page_info: PageInfo
    _rows: strawberry.Private[QuerySet]

    @strawberry.field(description="How many rows match the filter, over all pages.")
    def total_count(self) -> int:
        return self._rows.count()


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError
        return int(text.removeprefix(_CURSOR_PREFIX))
    except (ValueError, binascii.Error, UnicodeError):
        raise bad_input(f"'after' is not a cursor this API returned: {cursor!r}") from None


def paginate(
    rows: QuerySet,
    *,
    first: int,
    after: str | None,
    build: Callable[[QuerySet], list[Any]] = list,
) -> Connection:
    """The page of ``rows`` after the cursor: one query for the page, one more for totalCount.

    ``build`` turns the page's queryset into nodes; each node has an ``id``.
    """
    if not 0 <= first <= MAX_PAGE:
        raise bad_input(f"'first' must be between 0 and {MAX_PAGE}, got {first}")
    page = rows.order_by("pk")
    if after is not None:
        page = page.filter(pk__gt=decode_cursor(after))
    nodes = build(page[: first + 1])
    has_next = len(nodes) > first
    nodes = nodes[:first]
    end = encode_cursor(nodes[-1].id) if nodes else after
    return Connection(
        nodes=nodes, page_info=PageInfo(has_next_page=has_next, end_cursor=end), _rows=rows
    )
