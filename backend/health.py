"""Health: ``/healthz`` (the process is alive), ``/readyz`` (it can serve), and the answer a
request gets while the database cannot be reached.

A request that fails because the database is down, refuses connections or drops one mid-query
gets a 503 with ``Retry-After``, in its door's JSON error shape: REST and every other route here
(through ``DatabaseUnavailableMiddleware``), GraphQL in ``graph/views.py``. Django closes the
broken connection at the end of the request (and ``conn_health_checks`` checks a kept one
before it is reused), so the service resumes by itself when the database is back.
"""

from __future__ import annotations

import logging
import sys

from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe

logger = logging.getLogger("roster.health")

# What Django raises when the server is down, refuses the connection, drops it mid-query or does
# not answer within the connect timeout (and, on SQLite, when the file cannot be opened).
DATABASE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5
UNAVAILABLE_CODE = "SERVICE_UNAVAILABLE"
UNAVAILABLE_MESSAGE = "the database is unavailable; retry in a few seconds"


def log_outage(request: HttpRequest, error: BaseException | None) -> None:
    """One warning line per refused request, with the driver's reason (never sent to callers)."""
    logger.warning(
        "database unavailable",
        extra={"path": request.path, "error": str(error).strip() or type(error).__name__},
    )


def unavailable(message: str = UNAVAILABLE_MESSAGE, **body: object) -> JsonResponse:
    """A 503 in the REST routes' error shape: ``{"message": ..., "code": ...}``."""
    response = JsonResponse({"message": message, "code": UNAVAILABLE_CODE, **body}, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and answers. Touches no database, so an outage does not fail it."""
    return JsonResponse({"status": "ok"})


@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready to serve: the database answers and every migration is applied."""
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as error:
        log_outage(request, error)
        return unavailable("the database does not answer", status="unavailable")
    if plan:
        names = [f"{migration.app_label}.{migration.name}" for migration, _ in plan]
        logger.warning("migrations not applied", extra={"migrations": names})
        return unavailable(
            f"{len(names)} migrations are not applied; run python manage.py migrate",
            status="unavailable",
        )
    return JsonResponse({"status": "ok"})


def server_error(request: HttpRequest) -> JsonResponse:
    """``handler500``: JSON, never Django's HTML page, for an error raised outside a view."""
    if isinstance(sys.exception(), DATABASE_ERRORS):
        return unavailable()
    return JsonResponse({"message": "Unexpected error."}, status=500)
