"""Request limits applied before any view runs, and the 503 for a database outage."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from backend.health import DATABASE_ERRORS, log_outage, unavailable


class RequestSizeLimitMiddleware:
    """Refuse a body larger than ``MAX_REQUEST_BYTES`` with a 413 before reading it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        length = request.META.get("CONTENT_LENGTH") or "0"
        limit = settings.MAX_REQUEST_BYTES
        if not length.isdigit() or int(length) > limit:
            message = f"the request body must be at most {limit} bytes"
            return JsonResponse(
                {
                    "message": message,
                    "errors": [{"message": message, "extensions": {"code": "PAYLOAD_TOO_LARGE"}}],
                },
                status=413,
            )
        return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """Answer a view that could not reach the database with a 503 JSON and ``Retry-After``.

    This covers the token lookup in ``backend/auth.py`` too, since it runs inside the view.
    GraphQL catches its own (``graph/views.py``) to answer in GraphQL's error shape.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_ERRORS):
            return None
        log_outage(request, exception)
        return unavailable()
