"""Reads for the GraphQL queries: filters as querysets, and pages built as plain nodes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast

from backend import models
from graph.errors import bad_input
from graph.types import (
    Department,
    HiredEmployee,
    HiredEmployeeFilter,
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
    departments: dict[int, Department] = {}
    jobs: dict[int, Job] = {}
    nodes = []
    for row_id, name, hired, department_id, job_id, department, job in page.values_list(
        *_EMPLOYEE_COLUMNS
    ):
        if department_id not in departments:
            departments[department_id] = Department(id=department_id, department=department)
        if job_id not in jobs:
            jobs[job_id] = Job(id=job_id, job=job)
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
