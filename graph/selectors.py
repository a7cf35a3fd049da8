"""Reads for the GraphQL queries: filters as querysets, and pages built as plain nodes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, cast

from django.db.models import (
    CharField,
    Count,
    DateTimeField,
    F,
    IntegerField,
    QuerySet,
    Sum,
    TextField,
    Value,
)
from django.db.models.expressions import RawSQL, Window
from django.db.models.functions import Cast, RowNumber
from strawberry.types import Info
from strawberry.types.nodes import SelectedField

from backend import models
from backend.replica import read_connection
from graph.errors import bad_input
from graph.execution import RenderedList, may_render
from graph.pagination import (
    BY_ID,
    Connection,
    Ordering,
    PageInfo,
    check_first,
    connection,
    encode_cursor,
    page_rows,
)
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


def _summarised(where: HiredEmployeeFilter | None) -> dict[str, int] | None:
    """The filter as summary lookups, when the summary can count it: no filter, or only
    ``departmentId`` and ``jobId``. Other filters (ids, times, names) need ``count(*)``."""
    if where is None:
        return {}
    if where.id is not None or where.hired_between is not None or where.name is not None:
        return None
    lookups = {"department_id": where.department_id, "job_id": where.job_id}
    return {column: value for column, value in lookups.items() if value is not None}


Summary = type[models.DepartmentYear] | type[models.JobYear] | type[models.HireCount]


def summary_for(columns: Iterable[str]) -> Summary:
    """The smallest table of the hires summary that counts by ``columns``: a department's or a
    job's hires per year (12 or 183 rows a year), else the whole summary."""
    wanted = set(columns)
    tables: tuple[Summary, ...] = (models.DepartmentYear, models.JobYear, models.HireCount)
    for model in tables:
        if wanted <= {field.attname for field in model._meta.concrete_fields}:
            return model
    raise ValueError(f"the summary does not count by {sorted(wanted)}")


def hire_total(where: HiredEmployeeFilter | None, rows: QuerySet) -> Callable[[], int]:
    """totalCount of the hires ``where`` selects (``rows``): a sum over the summary when it can
    answer (a millisecond at any size), or the exact ``count(*)``."""
    lookups = _summarised(where)
    if lookups is None:
        return rows.count

    def total() -> int:
        summed = summary_for(lookups).objects.filter(**lookups).aggregate(total=Sum("hires"))
        return int(summed["total"] or 0)

    return total


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


_HIRE_COLUMNS = ("id", "name", "datetime", "department_id", "job_id")
_EMPLOYEE_COLUMNS = (*_HIRE_COLUMNS, "department__department", "job__job")
EVERY_COLUMN = frozenset(_EMPLOYEE_COLUMNS)
_READS = {  # a hire's GraphQL field: the columns it reads
    "__typename": (),
    "id": ("id",),
    "name": ("name",),
    "datetime": ("datetime",),
    "departmentId": ("department_id",),
    "jobId": ("job_id",),
    "department": ("department_id", "department__department"),
    "job": ("job_id", "job__job"),
}
_NULLS = {  # a column the selection does not read, fetched as NULL: no join, no conversion
    "name": Value(None, output_field=CharField()),
    "datetime": Value(None, output_field=DateTimeField()),
    "department_id": Value(None, output_field=IntegerField()),
    "job_id": Value(None, output_field=IntegerField()),
    "department__department": Value(None, output_field=CharField()),
    "job__job": Value(None, output_field=CharField()),
}


def read_columns(info: Info, ordering: Ordering) -> frozenset[str]:
    """The columns a page of hires must fetch for the selection of ``info`` (a connection of
    hires): the nodes' fields, their id and the ordering's column (for the cursor). A fragment,
    or a field this does not know, reads them all.

    The others come back as NULL: a page of 1000 hires that asks only ``id name`` neither joins
    the departments and jobs nor converts a datetime per row (a nested page of 12 x 100 hires:
    2.7 ms instead of 6.3 in psycopg2 and PostgreSQL)."""
    columns = {"id", ordering.column}
    for field in info.selected_fields:
        for selection in field.selections:
            if not isinstance(selection, SelectedField):
                return EVERY_COLUMN
            if selection.name != "nodes":
                continue
            for node_field in selection.selections:
                if not isinstance(node_field, SelectedField) or node_field.name not in _READS:
                    return EVERY_COLUMN
                columns.update(_READS[node_field.name])
    return frozenset(columns)


_RENDERED_COLUMNS = {"id": "id", "name": "name", "departmentId": "department_id", "jobId": "job_id"}
"""A hire's fields whose JSON PostgreSQL writes as Strawberry would: Ints and Strings, never
null (``datetime`` is not: its text is Python's ``isoformat``)."""


_BESIDE_NODES = ("nodes", "totalCount", "pageInfo", "__typename")


def rendered_fields(info: Info, ordering: Ordering) -> tuple[tuple[str, str], ...] | None:
    """The (response name, column) of each node field, when a page of hires in ``ordering``
    can be answered as JSON written by PostgreSQL: the selection is one ``nodes`` (beside which
    ``totalCount``, ``pageInfo`` and ``__typename`` are answered as always) of plain Int and
    String fields only, no response name twice, no fragment, no directive, in id order. Else
    None."""
    if ordering.column != "id" or len(info.selected_fields) != 1:
        return None
    (field,) = info.selected_fields
    lists = [s for s in field.selections if isinstance(s, SelectedField) and s.name == "nodes"]
    if len(lists) != 1 or any(
        not isinstance(s, SelectedField) or s.directives or s.name not in _BESIDE_NODES
        for s in field.selections
    ):
        return None
    (nodes,) = lists
    fields = []
    for node_field in nodes.selections:
        if (
            not isinstance(node_field, SelectedField)
            or node_field.directives
            or node_field.arguments
            or node_field.name not in _RENDERED_COLUMNS
        ):
            return None
        fields.append((node_field.alias or node_field.name, _RENDERED_COLUMNS[node_field.name]))
    if not fields or len({name for name, _ in fields}) != len(fields):
        return None
    return tuple(fields)


def _selected(columns: frozenset[str], names: Sequence[str]) -> list[Any]:
    """``names`` to fetch, each read column as itself and each other as a typed NULL."""
    return [name if name in columns else _NULLS[name] for name in names]


def employee_nodes(page: QuerySet, columns: frozenset[str] = EVERY_COLUMN) -> list[HiredEmployee]:
    """One query (joined only to what it reads), straight into GraphQL nodes: no model
    instances on the hot path."""
    return _employees(page.values_list(*_selected(columns, _EMPLOYEE_COLUMNS)))


def _employees(
    rows: Iterable[Sequence[Any]], pages: list[list[HiredEmployee]] | None = None
) -> list[HiredEmployee]:
    """Nodes from rows of ``_EMPLOYEE_COLUMNS``. Each department and job is one node, shared
    by its hires, and the departments (and the jobs) of the hires of ``pages`` (by default,
    the nodes returned) load their own hires together."""
    departments: dict[int, Department] = {}
    jobs: dict[int, Job] = {}
    nodes: list[HiredEmployee] = []
    pages = [nodes] if pages is None else pages
    department_hires = Siblings("department_id", pages, lambda hire: hire.department_id)
    job_hires = Siblings("job_id", pages, lambda hire: hire.job_id)
    for row_id, name, hired, department_id, job_id, department, job in rows:
        if department_id not in departments:
            departments[department_id] = Department(
                id=department_id, department=department, _children=department_hires
            )
        if job_id not in jobs:
            jobs[job_id] = Job(id=job_id, job=job, _children=job_hires)
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
    nodes: list[Department] = []
    hires = Siblings("department_id", [nodes], lambda department: department.id)
    nodes += [Department(id=i, department=d, _children=hires) for i, d in page.values_list()]
    return nodes


def job_nodes(page: QuerySet) -> list[Job]:
    nodes: list[Job] = []
    hires = Siblings("job_id", [nodes], lambda job: job.id)
    nodes += [Job(id=i, job=j, _children=hires) for i, j in page.values_list()]
    return nodes


def one(nodes: list[Any]) -> Any:
    """The node of a lookup by id, or None when the row does not exist."""
    return nodes[0] if nodes else None


class Siblings:
    """The departments (or the jobs) of one page, and their hires: the first parent that asks
    for a page of its hires loads that page for every parent, in one query, and the first that
    asks for its totalCount counts them all, in one more. So the queries a nested connection
    costs do not grow with the number of parents.

    The parents are read from ``pages`` (the pages of departments or jobs, or of the hires
    that hold them) when the first asks: by then each page is cut to what it answers, so the
    row fetched past a page's end, only to tell that more follow, loads nothing.
    """

    def __init__(
        self,
        column: Literal["department_id", "job_id"],
        pages: list[list[Any]],
        parent_of: Callable[[Any], int],
    ) -> None:
        self.column = column
        self.pages = pages
        self._parent_of = parent_of
        self._ids: list[int] | None = None
        self._loaded: dict[str, dict[int, tuple[list[HiredEmployee], bool]]] = {}
        self._counts: dict[str, dict[int, int]] = {}
        self._asks: dict[tuple[str, ...], _Ask] = {}
        self._rendered: dict[str, dict[int, tuple[str, bool, int | None]]] = {}

    @property
    def ids(self) -> list[int]:
        if self._ids is None:
            parents = (self._parent_of(node) for page in self.pages for node in page)
            self._ids = list(dict.fromkeys(parents))
        return self._ids

    def hired_employees(
        self,
        parent_id: int,
        *,
        first: int,
        after: str | None,
        where: HiredEmployeeFilter | None,
        order: HiredEmployeeOrder | None,
        info: Info | None = None,
    ) -> Connection[HiredEmployee]:
        ask = self._ask(first, after, where, order, info)

        def count() -> int:
            if ask.filtered not in self._counts:
                lookups = _summarised(where)
                source = (
                    hired_employees(where)
                    if lookups is None
                    else summary_for([*lookups, self.column]).objects.filter(**lookups)
                )
                tally = Count("pk") if lookups is None else Sum("hires")
                counted = (
                    source.filter(**{f"{self.column}__in": self.ids})
                    .order_by()
                    .values(self.column)
                    .annotate(hires=tally)
                    .values_list(self.column, "hires")
                )
                self._counts[ask.filtered] = {parent: int(n) for parent, n in counted}
            return self._counts[ask.filtered].get(parent_id, 0)

        if ask.fields is not None:
            if ask.key not in self._rendered:
                page = page_rows(hired_employees(where), ask.ordering, after)
                self._rendered[ask.key] = rendered_pages(
                    self.column, self.ids, page, ask.ordering, first, ask.fields, shape=ask.key
                )
            text, has_next, last = self._rendered[ask.key].get(parent_id, ("[]", False, None))
            end = after if last is None else encode_cursor(ask.ordering, (last, last))
            fields = ask.fields
            rendered = RenderedList(text, fields, lambda: _hires_of_json(text, fields))
            return Connection(
                # completed (graph/execution.py) as a list of the nodes it writes
                nodes=cast("list[HiredEmployee]", rendered),
                page_info=PageInfo(has_next_page=has_next, end_cursor=end),
                _count=count,
            )
        if ask.key not in self._loaded:
            page = page_rows(hired_employees(where), ask.ordering, after)
            self._loaded[ask.key] = _pages_per_parent(
                self.column, self.ids, page, ask.ordering, first, ask.columns, shape=ask.key
            )
        nodes, has_next = self._loaded[ask.key].get(parent_id, ([], False))
        return connection(
            list(nodes), has_next=has_next, after=after, ordering=ask.ordering, count=count
        )

    def _ask(
        self,
        first: int,
        after: str | None,
        where: HiredEmployeeFilter | None,
        order: HiredEmployeeOrder | None,
        info: Info | None,
    ) -> _Ask:
        """What the field asks of every parent, worked out when the first parent asks: each
        parent's field has the same arguments and selection (its response path, list indices
        left out, names it). Rendered by PostgreSQL (``rendered_fields``) on PostgreSQL, for a
        caller that encodes ``RenderedList`` (the /graphql view); else built as objects of the
        columns the selection reads."""
        field = None if info is None else _field(info)
        if field is not None and field in self._asks:
            return self._asks[field]
        check_first(first)
        ordering = order.ordering() if order is not None else BY_ID
        fields, columns = None, EVERY_COLUMN
        if (
            info is not None
            and may_render()
            and read_connection(models.HiredEmployee).vendor == "postgresql"
        ):
            fields = rendered_fields(info, ordering)
        if fields is None and info is not None:
            columns = read_columns(info, ordering)
        # every alias with its own arguments and selection
        key = repr((first, after, where, ordering, fields or sorted(columns)))
        ask = _Ask(ordering, repr(where), fields, columns, key)
        if field is not None:
            self._asks[field] = ask
        return ask


class _Ask(NamedTuple):
    """What a nested field asks of each parent (``Siblings._ask``)."""

    ordering: Ordering
    filtered: str  # the filter: the key of its counts
    fields: tuple[tuple[str, str], ...] | None  # written by PostgreSQL, or None: objects
    columns: frozenset[str]  # the objects' columns
    key: str  # the pages': every alias with its own arguments and selection


def _field(info: Info) -> tuple[str, ...]:
    """The field a resolver answers, the same for every parent of a list: its response path
    with the list indices left out."""
    return tuple(key for key in info.path.as_list() if isinstance(key, str))


def _pages_per_parent(
    column: str,
    parent_ids: list[int],
    page: QuerySet,
    ordering: Ordering,
    first: int,
    columns: frozenset[str] = EVERY_COLUMN,
    *,
    shape: str | None = None,
) -> dict[int, tuple[list[HiredEmployee], bool]]:
    """Each parent's first ``first`` rows of ``page``, and whether more follow, in one query
    that fetches ``columns`` (the others are NULL). ``shape`` names everything ``page`` was made
    from (filter, cursor, ordering, size, columns): on PostgreSQL its SQL is compiled once."""
    if not parent_ids:
        return {}
    if read_connection(models.HiredEmployee).vendor == "postgresql":
        fetched = rows_by_lateral(column, parent_ids, page, ordering, first + 1, columns, shape)
    else:
        fetched = rows_by_window(column, parent_ids, page, ordering, first + 1, columns)
    pages: list[list[HiredEmployee]] = []  # the next level's parents: the answered hires'
    nodes = _employees((row[1:] for row in fetched), pages)
    per_parent: dict[int, list[HiredEmployee]] = {}
    for row, node in zip(fetched, nodes, strict=True):
        per_parent.setdefault(row[0], []).append(node)
    answered = {}
    for parent_id, hires in per_parent.items():
        answered[parent_id] = (hires[:first], len(hires) > first)
        pages.append(answered[parent_id][0])
    return answered


def rows_by_lateral(
    column: str,
    parent_ids: list[int],
    page: QuerySet,
    ordering: Ordering,
    size: int,
    columns: frozenset[str] = EVERY_COLUMN,
    shape: str | None = None,
) -> list[Sequence[Any]]:
    """PostgreSQL: each parent's first ``size`` rows through a LATERAL join, then their
    department's and job's names. Rows of (parent id, *_EMPLOYEE_COLUMNS), by parent in the
    order of ``parent_ids``, then in ``ordering``.

    In id order, each parent is a range scan of the (parent, id) index that stops after
    ``size`` rows. The parent is matched as a range of one value there: with "=" PostgreSQL
    would know the column constant and could pick a scan of the primary key that filters on
    the parent, a few rows for a big parent but the whole table for one with few hires. In
    time or name order, "=" lets it scan the (column, id) index and keep the parent's rows:
    fast for a parent with many hires, a long scan for one with very few. An index per parent
    and order would make both fast, but four more indexes halve the speed of every insert.
    """

    def compile() -> tuple[str, tuple[Any, ...]]:
        return _lateral_sql(column, page, ordering, size, columns)

    key = None if shape is None else (column, size, shape)
    sql, params = compile() if key is None else _kept(_LATERAL_SQL, key, compile)
    with read_connection(models.HiredEmployee).cursor() as cursor:
        cursor.execute(sql, [parent_ids, *params])
        return cursor.fetchall()


_LATERAL_SQL: dict[tuple[str, int, str], tuple[str, tuple[Any, ...]]] = {}
"""Each shape's statement and parameters, without the parents': Django takes 0.8 ms to compile
the queryset, a fifth of a nested page of 12 x 100 hires. Emptied when it holds too many."""
_LATERAL_SQL_KEPT = 256


def _kept(
    statements: dict[tuple[str, int, str], tuple[str, tuple[Any, ...]]],
    key: tuple[str, int, str],
    compile: Callable[[], tuple[str, tuple[Any, ...]]],
) -> tuple[str, tuple[Any, ...]]:
    """The statement of ``key`` in ``statements``, compiled the first time; the cache is emptied
    when it holds too many."""
    if key not in statements:
        if len(statements) >= _LATERAL_SQL_KEPT:
            statements.clear()
        statements[key] = compile()
    return statements[key]


def _parent_scan(column: str, page: QuerySet, ordering: Ordering) -> QuerySet:
    """``page`` for the one parent ``roster_parent.id`` of a LATERAL join, in ``ordering``.

    In id order, the parent is matched as a range of one value, so that PostgreSQL scans the
    (parent, id) index (``rows_by_lateral`` says why); in another order, with "="."""
    parent_id = RawSQL("roster_parent.id", ())
    parent = F(column).desc() if ordering.descending else F(column).asc()
    if ordering.column == "id":
        of_parent = page.filter(**{f"{column}__gte": parent_id, f"{column}__lte": parent_id})
    else:
        of_parent = page.filter(**{column: parent_id})
    return of_parent.order_by(parent, *ordering.order_by())


def _lateral_sql(
    column: str, page: QuerySet, ordering: Ordering, size: int, columns: frozenset[str]
) -> tuple[str, tuple[Any, ...]]:
    """``rows_by_lateral``'s statement, with a placeholder for the parents' ids first."""
    read = [c for c in _HIRE_COLUMNS if c in columns]
    lateral = _parent_scan(column, page, ordering).values_list(*read)[:size]
    sql, params = lateral.query.sql_with_params()
    selected = [f"page.{c}" if c in columns else "NULL" for c in _HIRE_COLUMNS]
    joins = []
    for name, table, alias, key in (
        ("department__department", models.Department._meta.db_table, "d", "department_id"),
        ("job__job", models.Job._meta.db_table, "j", "job_id"),
    ):
        if name in columns:
            selected.append(f"{alias}.{name.split('__')[1]}")
            joins.append(f"JOIN {table} AS {alias} ON {alias}.id = page.{key} ")
        else:
            selected.append("NULL")
    # Each parent's page comes out of its LATERAL scan in order, but SQL promises no order
    # without ORDER BY: the parent's place, then the ordering's own columns (one sort of rows
    # already nearly in order; a row number per page would cost a window and a sort more).
    direction = "DESC" if ordering.descending else "ASC"
    ties = ["id"] if ordering.column == "id" else [ordering.column, "id"]
    statement = (
        f"SELECT roster_parent.id, {', '.join(selected)} "
        "FROM unnest(%s::integer[]) WITH ORDINALITY AS roster_parent(id, n) "
        f"CROSS JOIN LATERAL ({sql}) AS page {''.join(joins)}"
        f"ORDER BY roster_parent.n, {', '.join(f'page.{c} {direction}' for c in ties)}"
    )
    return statement, tuple(params)


def rendered_pages(
    column: str,
    parent_ids: list[int],
    page: QuerySet,
    ordering: Ordering,
    first: int,
    fields: tuple[tuple[str, str], ...],
    shape: str,
) -> dict[int, tuple[str, bool, int | None]]:
    """PostgreSQL, a page in id order whose nodes are ``fields`` (``rendered_fields``): for each
    parent, the JSON of its first ``first`` hires as PostgreSQL writes it, whether more follow,
    and the last hire's id (for the cursor). No row reaches Python: 12 rows instead of 1,212 for
    a page of 100 hires per department, and no node to build or complete."""
    if not parent_ids:
        return {}
    sql, params = _kept(
        _RENDERED_SQL,
        (column, first, shape),
        lambda: _rendered_sql(column, page, ordering, first, fields),
    )
    pages = {}
    with read_connection(models.HiredEmployee).cursor() as cursor:
        cursor.execute(sql, [parent_ids, *params])
        for parent, fetched, items, last in cursor:
            if fetched > first:  # the row fetched to tell that more follow: its object goes
                # Objects hold numbers and JSON strings, where a quote is always escaped: a
                # comma, a brace and a quote are where one object ends and the next begins.
                items = items[: items.rfind(',{"')] if first else ""
            pages[parent] = (f"[{items or ''}]", fetched > first, last)
    return pages


_RENDERED_SQL: dict[tuple[str, int, str], tuple[str, tuple[Any, ...]]] = {}
"""``rendered_pages``'s statements, kept per shape as ``_LATERAL_SQL``'s are."""


def _rendered_sql(
    column: str,
    page: QuerySet,
    ordering: Ordering,
    first: int,
    fields: tuple[tuple[str, str], ...],
) -> tuple[str, tuple[Any, ...]]:
    """``rendered_pages``'s statement, and its parameters after the parents' ids.

    Each parent's first ``first + 1`` hires are the same LATERAL scan as ``rows_by_lateral``'s,
    in id order, and each is written as text: its keys (JSON strings, as parameters) and its
    values (an integer's digits; a text through ``to_json``, which escapes it as JSON does).
    The aggregates read the scan's rows straight from its ordered, limited subquery, with no
    join at their level: the order PostgreSQL documents as kept ("supplying the input values
    from a sorted subquery"), without an ordered aggregate's sort per parent (1.18 ms against
    0.87 for 12 x 101 rows in pgbench; 0.97 with the integers written without ``to_json``)."""
    read = sorted({attribute for _, attribute in fields} | {"id"})
    lateral = _parent_scan(column, page, ordering).values_list(*read)[: first + 1]
    sql, params = lateral.query.sql_with_params()
    keys, values = [], []
    for n, (name, attribute) in enumerate(fields):
        keys.append(("{" if n == 0 else ",") + json.dumps(name) + ":")
        text = isinstance(models.HiredEmployee._meta.get_field(attribute), CharField)
        values.append(f"%s, to_json(hire.{attribute})" if text else f"%s, hire.{attribute}")
    item = f"concat({', '.join(values)}, '}}')"
    statement = (
        "SELECT roster_parent.id, page.fetched, page.items, page.last "
        "FROM unnest(%s::integer[]) AS roster_parent(id) CROSS JOIN LATERAL ("
        f"SELECT count(*) AS fetched, string_agg({item}, ',') AS items, "
        f"(array_agg(hire.id))[least(count(*), %s)] AS last FROM ({sql}) AS hire) AS page"
    )
    return statement, (*keys, first, *params)


def _hires_of_json(text: str, fields: tuple[tuple[str, str], ...]) -> list[HiredEmployee]:
    """The nodes of a rendered page, for a selection other than the one it was written for."""
    nulls = dict.fromkeys((*_HIRE_COLUMNS, "department", "job"))
    return [
        HiredEmployee(**{**nulls, **{attribute: item[name] for name, attribute in fields}})
        for item in json.loads(text)
    ]


def rows_by_window(
    column: str,
    parent_ids: list[int],
    page: QuerySet,
    ordering: Ordering,
    size: int,
    columns: frozenset[str] = EVERY_COLUMN,
) -> list[Sequence[Any]]:
    """SQLite, which has no LATERAL: every parent's rows numbered by a window function, the
    first ``size`` of each kept. The same rows as ``rows_by_lateral``."""
    rank = Window(RowNumber(), partition_by=F(column), order_by=ordering.order_by())
    ranked = (
        page.filter(**{f"{column}__in": parent_ids})
        .annotate(rank=rank)
        .filter(rank__lte=size)
        .order_by(column, "rank")
        # "rank" selected too: without it Django 5.2 misnames the NULL columns of the query
        # that filters on the window (it selects "value1", "value3", ... of its subquery)
        .values_list(column, *_selected(columns, _EMPLOYEE_COLUMNS), "rank")
    )
    return [row[:-1] for row in ranked]


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
