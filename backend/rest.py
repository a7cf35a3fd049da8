"""REST routes compatible with the system Roster replaces, over the same pipeline and tokens."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import asdict, fields
from functools import wraps
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from backend import dictionary, metrics
from backend.auth import AccessDenied, require_principal, require_scope
from backend.models import MODELS, Scope, Source
from backend.replica import replica_reads
from backend.request_body import MalformedBody, parse_json_body
from backend.timeouts import TIMEOUT_CODE, is_statement_timeout, statement_timeout, timeout_message
from jobs.ingest import BatchSizeError, check_batch_size, ingest_rows


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"message": message}, status=status)


def needs(scope: Scope) -> Callable:
    """Let the view run only for a principal with ``scope``; answer 401/403 otherwise.

    The view's statements run under ``STATEMENT_TIMEOUT_MS``; one that runs longer answers 503
    with ``"code": "TIMEOUT"`` (no ``Retry-After``: the same request would time out again).
    """

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                require_scope(require_principal(request), scope)
            except AccessDenied as denied:
                response = _error(denied.status, denied.message)
                if denied.status == 401:
                    response["WWW-Authenticate"] = 'Bearer realm="roster"'
                return response
            try:
                with statement_timeout():
                    return view(request, *args, **kwargs)
            except DatabaseError as error:
                if not is_statement_timeout(error):
                    raise  # an outage: DatabaseUnavailableMiddleware answers it
                return JsonResponse(
                    {"message": timeout_message(), "code": TIMEOUT_CODE}, status=503
                )

        return csrf_exempt(wrapper)  # require_principal checks CSRF for session callers

    return decorate


@require_GET
@needs(Scope.READ)
@replica_reads()
def list_rows(request: HttpRequest, table: str) -> HttpResponse:
    """``GET /api/employees/<table>?limit=1000&after=<id>``: rows in id order."""
    if table not in dictionary.TABLES:
        return _error(
            404, f"unknown table {table!r}; expected one of: {', '.join(dictionary.TABLES)}"
        )
    try:
        limit = int(request.GET.get("limit", dictionary.MAX_BATCH_ROWS))
        after = int(request.GET.get("after", 0))
    except ValueError:
        return _error(400, "'limit' and 'after' must be integers")
    if not 1 <= limit <= dictionary.MAX_BATCH_ROWS:
        return _error(400, f"'limit' must be between 1 and {dictionary.MAX_BATCH_ROWS}")
    columns = dictionary.TABLES[table].column_names
    rows = list(
        MODELS[table].objects.filter(pk__gt=after).order_by("pk").values(*columns)[: limit + 1]
    )
    next_after = rows[limit - 1]["id"] if len(rows) > limit else None
    return JsonResponse(
        {"message": "Success", "data": rows[:limit], "next_after": next_after},
        encoder=DjangoJSONEncoder,
    )


@require_POST
@needs(Scope.WRITE)
def insert_rows(request: HttpRequest) -> HttpResponse:
    """``POST /api/employees/`` with ``{"destination_table": ..., "data": [{...}]}``."""
    try:
        body = parse_json_body(request.body)
    except MalformedBody as error:
        return _error(400, f"the body is not valid JSON: {error}")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object with 'destination_table' and 'data'")
    table = body.get("destination_table")
    if not isinstance(table, str) or table not in dictionary.TABLES:
        known = ", ".join(dictionary.TABLES)
        return _error(400, f"'destination_table' must be one of: {known}; got {table!r}")
    rows = body.get("data")
    if not isinstance(rows, list):
        return _error(400, "'data' must be a list of row objects")
    try:
        check_batch_size(len(rows))
    except BatchSizeError as error:
        return _error(400, str(error))
    outcome = ingest_rows(table=table, rows=rows, source=Source.REST)
    return JsonResponse(
        {
            "message": f"Success. Inserted {outcome.inserted} items out of {outcome.received}",
            "batch_id": str(outcome.batch_id),
            "inserted": outcome.inserted,
            "rejected": outcome.rejected,
            "rejections": [
                {
                    "index": r.position,
                    "id": r.row_id,
                    "reasons": [reason.as_dict() for reason in r.reasons],
                }
                for r in outcome.rejections
            ],
        }
    )


def _metric_response(
    request: HttpRequest, rows: list[Any], columns: list[str], year: int
) -> HttpResponse:
    """JSON by default; CSV with a header row for ``?format=csv`` or ``Accept: text/csv``."""
    fmt = request.GET.get("format", "")
    if fmt not in ("", "json", "csv"):
        return _error(400, f"'format' must be json or csv, got {fmt!r}")
    wants_csv = fmt == "csv" or (not fmt and "text/csv" in request.headers.get("Accept", ""))
    records = [asdict(row) for row in rows]
    if not wants_csv:
        return JsonResponse({"year": year, "data": records})
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = request.resolver_match.url_name if request.resolver_match else "metric"
    response["Content-Disposition"] = f'inline; filename="{name}-{year}.csv"'
    writer = csv.writer(response)
    writer.writerow(columns)
    writer.writerows([_csv_cell(record[column]) for column in columns] for record in records)
    return response


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """OWASP's defence against CSV injection: a text cell that a spreadsheet would read as a
    formula (``=HYPERLINK(...)``) gets a leading single quote. Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _metric(compute: Callable[..., list[Any]], row: type) -> Callable[[HttpRequest], HttpResponse]:
    columns = [field.name for field in fields(row)]

    @require_GET
    @needs(Scope.READ)
    @replica_reads()
    def view(request: HttpRequest) -> HttpResponse:
        try:
            year = metrics.parse_year(request.GET.get("year"))
        except metrics.YearError as error:
            return _error(400, str(error))
        return _metric_response(request, compute(year=year), columns, year)

    view.__doc__ = compute.__doc__
    return view


hires_by_quarter = _metric(metrics.hires_by_quarter, metrics.QuarterlyHires)
departments_above_mean = _metric(metrics.departments_above_mean, metrics.DepartmentHires)
