"""Reads for the GraphQL queries: filters as querysets, and pages built as plain nodes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from django.db import connection as database
from django.db.models import Count, F, QuerySet, TextField
from django.db.models.expressions import RawSQL, Window
from django.db.models.functions import Cast, RowNumber

from backend import models
from graph.errors import bad_input
from graph.pagination import BY_ID, Connection, Ordering, check_first, connection, page_rows
from graph.types import (
    Department,
    HiredEmployee,
    HiredEmployeeFilter,
    HiredEmployeeOrder,
    IdRange,
    Job,
    RejectionType,
)


def id_range(rows: QuerySet, bounds: IdRange | None) -> QuerySet:
    if bounds is None:
        return rows
    if bounds.gte is not None:
        rows = rows.filter(pk__gte=bounds.gte)
    if bounds.lte is not None:
        rows = rows.filter(pk__lte=bounds.lte)
    return rows


def hired_employees(where: HiredEmployeeFilter | None) -> QuerySet:
    rows = models.HiredEmployee.objects.all()
    if where is None:
        return rows
    rows = id_range(rows, where.id)
    if where.department_id is not None:
        rows = rows.filter(department_id=where.department_id)
    if where.job_id is not None:
        rows = rows.filter(job_id=where.job_id)
    if where.hired_between is not None:
        if where.hired_between.gte is not None:
            rows = rows.filter(datetime__gte=_utc(where.hired_between.gte, "gte"))
        if where.hired_between.lt is not None:
            rows = rows.filter(datetime__lt=_utc(where.hired_between.lt, "lt"))
    if where.name is not None:
        # Django escapes % and _ and folds case (UPPER ... LIKE on PostgreSQL, which the
        # trigram index on UPPER(name) serves; LIKE on SQLite, which folds ASCII only).
        if where.name.starts_with is not None:
            rows = rows.filter(name__istartswith=where.name.starts_with)
        if where.name.contains is not None:
            rows = rows.filter(name__icontains=where.name.contains)
    return rows


def _utc(moment: datetime, bound: str) -> datetime:
    """A filter's bound in UTC, as the rows are stored; with no zone it is taken as UTC.

    A bound whose UTC time falls outside years 1 to 9999 (``0001-01-01T00:00:00+01:00``) is
    the caller's mistake, on every database.
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise bad_input(
            f"'hiredBetween.{bound}' is out of range: {moment.isoformat()} is not between "
            "0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z once in UTC"
        ) from None


_EMPLOYEE_COLUMNS = (
    "id", "name", "datetime", "department_id", "job_id", "department__department", "job__job"
)  # fmt: skip


def employee_nodes(page: QuerySet) -> list[HiredEmployee]:
    """One joined query, straight into GraphQL nodes: no model instances on the hot path."""
    return _employees(page.values_list(*_EMPLOYEE_COLUMNS))


def _employees(rows: Iterable[Sequence[Any]]) -> list[HiredEmployee]:
    """Nodes from rows of ``_EMPLOYEE_COLUMNS``. Each department and job is one node, shared
    by its hires, and the departments (and the jobs) of the page load their own hires together."""
    departments: dict[int, Department] = {}
    jobs: dict[int, Job] = {}
    department_hires, job_hires = Siblings("department_id"), Siblings("job_id")
    nodes = []
    for row_id, name, hired, department_id, job_id, department, job in rows:
        if department_id not in departments:
            departments[department_id] = Department(
                id=department_id, department=department, _children=department_hires
            )
            department_hires.ids.append(department_id)
        if job_id not in jobs:
            jobs[job_id] = Job(id=job_id, job=job, _children=job_hires)
            job_hires.ids.append(job_id)
        nodes.append(
            HiredEmployee(
                id=row_id,
                name=name,
                datetime=hired,
                department_id=department_id,
                job_id=job_id,
                department=departments[department_id],
                job=jobs[job_id],
            )
        )
    return nodes


def department_nodes(page: QuerySet) -> list[Department]:
    hires = Siblings("department_id")
    nodes = [Department(id=i, department=d, _children=hires) for i, d in page.values_list()]
    hires.ids.extend(node.id for node in nodes)
    return nodes


def job_nodes(page: QuerySet) -> list[Job]:
    hires = Siblings("job_id")
    nodes = [Job(id=i, job=j, _children=hires) for i, j in page.values_list()]
    hires.ids.extend(node.id for node in nodes)
    return nodes


def one(nodes: list[Any]) -> Any:
    """The node of a lookup by id, or None when the row does not exist."""
    return nodes[0] if nodes else None


class Siblings:
    """The departments (or the jobs) of one page, and their hires: the first parent that asks
    for a page of its hires loads that page for every parent, in one query, and the first that
    asks for its totalCount counts them all, in one more. So the queries a nested connection
    costs do not grow with the number of parents."""

    def __init__(self, column: Literal["department_id", "job_id"]) -> None:
        self.column = column
        self.ids: list[int] = []
        self._pages: dict[str, dict[int, list[HiredEmployee]]] = {}
        self._counts: dict[str, dict[int, int]] = {}

    def hired_employees(
        self,
        parent_id: int,
        *,
        first: int,
        after: str | None,
        where: HiredEmployeeFilter | None,
        order: HiredEmployeeOrder | None,
    ) -> Connection[HiredEmployee]:
        check_first(first)
        ordering = order.ordering() if order is not None else BY_ID
        rows = hired_employees(where)
        asked = repr((first, after, where, ordering))  # every alias with its own arguments
        if asked not in self._pages:
            page = page_rows(rows, ordering, after)
            self._pages[asked] = _pages_per_parent(self.column, self.ids, page, ordering, first + 1)

        def count() -> int:
            if repr(where) not in self._counts:
                counted = (
                    rows.filter(**{f"{self.column}__in": self.ids})
                    .order_by()
                    .values(self.column)
                    .annotate(hires=Count("pk"))
                    .values_list(self.column, "hires")
                )
                self._counts[repr(where)] = dict(counted)
            return self._counts[repr(where)].get(parent_id, 0)

        return connection(
            self._pages[asked].get(parent_id, []),
            first=first,
            after=after,
            ordering=ordering,
            count=count,
        )


def _pages_per_parent(
    column: str, parent_ids: list[int], page: QuerySet, ordering: Ordering, size: int
) -> dict[int, list[HiredEmployee]]:
    """The first ``size`` rows of ``page`` for each parent, in one query."""
    if not parent_ids:
        return {}
    fetch = rows_by_lateral if database.vendor == "postgresql" else rows_by_window
    fetched = fetch(column, parent_ids, page, ordering, size)
    nodes = _employees(row[1:-1] for row in fetched)  # one set of siblings for the level
    per_parent: dict[int, list[HiredEmployee]] = {}
    for row, node in zip(fetched, nodes, strict=True):
        per_parent.setdefault(row[0], []).append(node)
    return per_parent


def rows_by_lateral(
    column: str, parent_ids: list[int], page: QuerySet, ordering: Ordering, size: int
) -> list[Sequence[Any]]:
    """PostgreSQL: each parent's rows through a LATERAL join, so each parent is one index scan
    on (parent, id), or on the ordering's index, that stops after ``size`` rows. Rows of
    (parent id, *_EMPLOYEE_COLUMNS, rank), by parent then rank."""
    lateral = (
        page.filter(**{column: RawSQL("roster_parent.id", ())})
        .annotate(rank=Window(RowNumber(), order_by=ordering.order_by()))
        .values_list(*_EMPLOYEE_COLUMNS, "rank")[:size]
    )
    sql, params = lateral.query.sql_with_params()
    with database.cursor() as cursor:
        cursor.execute(
            "SELECT roster_parent.id, page.* "
            "FROM unnest(%s::integer[]) WITH ORDINALITY AS roster_parent(id, n) "
            f"CROSS JOIN LATERAL ({sql}) AS page ORDER BY roster_parent.n, page.rank",
            [parent_ids, *params],
        )
        return cursor.fetchall()


def rows_by_window(
    column: str, parent_ids: list[int], page: QuerySet, ordering: Ordering, size: int
) -> list[Sequence[Any]]:
    """SQLite, which has no LATERAL: every parent's rows numbered by a window function, the
    first ``size`` of each kept. The same rows as ``rows_by_lateral``."""
    rank = Window(RowNumber(), partition_by=F(column), order_by=ordering.order_by())
    return list(
        page.filter(**{f"{column}__in": parent_ids})
        .annotate(rank=rank)
        .filter(rank__lte=size)
        .order_by(column, "rank")
        .values_list(column, *_EMPLOYEE_COLUMNS, "rank")
    )


def rejection_nodes(page: QuerySet) -> list[RejectionType]:
    """The log's entries, each ``raw`` read from its JSON text by ``stored_raw``."""
    nodes = []
    for row in page.defer("raw").annotate(raw_text=Cast("raw", TextField())):
        row.raw = stored_raw(row.raw_text)
        nodes.append(RejectionType.from_model(row))
    return nodes


_READ_DEPTH = 500
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def stored_raw(text: str | None) -> Any:
    """Whatever a ``raw`` column holds (rows logged before the bounds of ``jobs/ingest/raw.py``,
    or written by other tools), as JSON the API can always answer: lossless where JSON allows
    (a 31-digit integer stays a number), a string where it does not: an integer Python cannot
    convert (over 4,300 digits) as its digits, a lone surrogate (SQLite's JSON keeps one) as
    its escape text, a value nested deeper than 500 levels as the column's JSON text.
    """
    if text is None:
        return None
    try:
        value = json.loads(text, parse_constant=str, parse_int=_integer)
        if _depth_over(value, _READ_DEPTH):
            return text
    except (ValueError, RecursionError):
        return text
    return _escape_surrogates(value) if _SURROGATE_ESCAPE.search(text) else value


def _integer(digits: str) -> int | str:
    try:
        return int(digits)
    except ValueError:
        return digits


def _depth_over(value: Any, limit: int) -> bool:
    level = [value]
    for _ in range(limit + 1):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return True


def _escape_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_escape_surrogates(k): _escape_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_surrogates(item) for item in value]
    return value
