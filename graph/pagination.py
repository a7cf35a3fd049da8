"""Keyset pagination: stable under inserts, and as fast on the last page as the first.

A page is ordered by one column, then by id in the same direction, so every row has one place
and no page skips or repeats a row. A cursor holds the ordering that made it and the last
row's place in it (its value and id): the next page starts strictly after that place, through
an index on (column, id). A cursor given to another ordering is the caller's mistake.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import strawberry
from django.db.models import F, Q, QuerySet
from django.db.models.expressions import OrderBy
from strawberry.types import Info
from strawberry.types.nodes import SelectedField

from backend.dictionary import MAX_BATCH_ROWS
from graph.errors import bad_input

T = TypeVar("T")
MAX_PAGE = MAX_BATCH_ROWS
_CURSOR_PREFIX = "roster:v1:"
_ORDERED_CURSOR_PREFIX = "roster:v2:"

Position = tuple[Any, int]
"""A row's place in an ordering: its value in the ordering's column, and its id."""


@strawberry.enum(description="Which way an ordering runs; ties always break by id, the same way.")
class OrderDirection(enum.Enum):
    ASC = "asc"
    DESC = "desc"


@dataclass(frozen=True)
class Ordering:
    """An order of rows: one model column, then the primary key, both the same direction."""

    column: str = "id"
    direction: OrderDirection = OrderDirection.ASC

    @property
    def name(self) -> str:
        return f"{self.column} {self.direction.value}"

    @property
    def descending(self) -> bool:
        return self.direction is OrderDirection.DESC

    def order_by(self) -> list[OrderBy]:
        columns = ["pk"] if self.column == "id" else [self.column, "pk"]
        return [F(c).desc() if self.descending else F(c).asc() for c in columns]

    def after(self, rows: QuerySet, position: Position) -> QuerySet:
        """The rows strictly after ``position``. The bound on the column alone comes first, so
        PostgreSQL starts its index scan there and filters only the rows that tie with it."""
        value, row_id = position
        beyond, at_or_beyond, past_id = ("lt", "lte", "pk__lt") if self.descending else (
            "gt", "gte", "pk__gt"
        )  # fmt: skip
        if self.column == "id":
            return rows.filter(**{past_id: row_id})
        return rows.filter(**{f"{self.column}__{at_or_beyond}": value}).filter(
            Q(**{f"{self.column}__{beyond}": value}) | Q(**{past_id: row_id})
        )

    def position(self, node: Any) -> Position:
        return (getattr(node, self.column), node.id)


BY_ID = Ordering()


def encode_cursor(ordering: Ordering, position: Position) -> str:
    """An opaque cursor. In id order it is the v1 cursor of every earlier release."""
    value, row_id = position
    if ordering == BY_ID:
        text = f"{_CURSOR_PREFIX}{row_id}"
    else:
        written = value.isoformat() if isinstance(value, datetime) else value
        text = _ORDERED_CURSOR_PREFIX + json.dumps([ordering.name, written, row_id])
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_cursor(cursor: str, ordering: Ordering = BY_ID) -> Position:
    """The place a cursor holds, if this API made it for ``ordering``; else BAD_USER_INPUT."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if text.startswith(_CURSOR_PREFIX):
            made_for, row_id = BY_ID.name, int(text.removeprefix(_CURSOR_PREFIX))
            value: Any = row_id
        elif text.startswith(_ORDERED_CURSOR_PREFIX):
            made_for, value, row_id = json.loads(text.removeprefix(_ORDERED_CURSOR_PREFIX))
            if type(made_for) is not str or type(row_id) is not int:
                raise ValueError
            if made_for.startswith("datetime "):
                value = datetime.fromisoformat(value)
            elif type(value) is not (str if made_for.startswith("name ") else int):
                raise ValueError
        else:
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise bad_input(f"'after' is not a cursor this API returned: {cursor!r:.200}") from None
    if made_for != ordering.name:
        raise bad_input(
            f"'after' is a cursor of the order '{made_for}', not of '{ordering.name}': "
            "page with the orderBy that made it, or start again without 'after'"
        )
    return value, row_id


@strawberry.type(description="Where this page ends, and whether more rows follow.")
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(description="One page of rows, in the order asked for (id by default).")
class Connection(Generic[T]):
    nodes: list[T]
    page_info: PageInfo
    _count: strawberry.Private[Callable[[], int]]

    @strawberry.field(description="How many rows match the filter, over all pages.")
    def total_count(self) -> int:
        return self._count()


def check_first(first: int) -> None:
    if not 0 <= first <= MAX_PAGE:
        raise bad_input(f"'first' must be between 0 and {MAX_PAGE}, got {first}")


def page_rows(rows: QuerySet, ordering: Ordering, after: str | None) -> QuerySet:
    """``rows`` in ``ordering``, from just after the cursor: a page is a slice of this."""
    page = rows.order_by(*ordering.order_by())
    return page if after is None else ordering.after(page, decode_cursor(after, ordering))


def connection(
    nodes: list[T],
    *,
    has_next: bool,
    after: str | None,
    ordering: Ordering,
    count: Callable[[], int],
) -> Connection[T]:
    end = encode_cursor(ordering, ordering.position(nodes[-1])) if nodes else after
    return Connection(
        nodes=nodes,
        page_info=PageInfo(has_next_page=has_next, end_cursor=end),
        _count=count,
    )


def counts_only(info: Info) -> bool:
    """Whether a connection's selection is its ``totalCount`` alone (with ``__typename``): its
    page is then never read, and need not be fetched. A fragment or anything else may read it."""
    return all(
        isinstance(selection, SelectedField) and selection.name in ("totalCount", "__typename")
        for field in info.selected_fields
        for selection in field.selections
    )


def paginate(
    rows: QuerySet,
    *,
    first: int,
    after: str | None,
    ordering: Ordering = BY_ID,
    build: Callable[[QuerySet], list[Any]] = list,
    count: Callable[[], int] | None = None,
    page: bool = True,
) -> Connection:
    """The page of ``rows`` after the cursor: one query for the page, one more for totalCount.

    ``build`` turns the page's queryset into nodes; each node has an ``id`` and the ordering's
    column. ``count`` answers totalCount (the default: ``rows.count()``). Without ``page``
    (``counts_only``) no page is fetched: the cursor is still checked, the count still exact.
    """
    check_first(first)
    if not page:
        page_rows(rows, ordering, after)  # a bad cursor is the same error either way
        return connection([], has_next=False, after=after, ordering=ordering,
                          count=count or rows.count)  # fmt: skip
    nodes = build(page_rows(rows, ordering, after)[: first + 1])
    has_next = len(nodes) > first
    # Cut in place: what holds the list (the siblings that load the nodes' own hires) sees
    # only the nodes the page answers, not the one fetched to tell that more follow.
    del nodes[first:]
    count = count or rows.count
    return connection(nodes, has_next=has_next, after=after, ordering=ordering, count=count)
