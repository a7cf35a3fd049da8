"""Request limits applied before any view runs."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


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
