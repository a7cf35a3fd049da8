"""The /graphql door: authentication, request limits, then Strawberry."""

from __future__ import annotations

import json
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from strawberry.django.views import GraphQLView

from backend.auth import AccessDenied, require_principal


def graphql_error(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse(
        {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]},
        status=status,
    )
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="roster"'
    return response


@method_decorator(csrf_exempt, name="dispatch")
class RosterGraphQLView(GraphQLView):
    """Every operation needs a token or a staff session; GraphiQL itself loads without one."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if self._is_ide_request(request):
            return super().dispatch(request, *args, **kwargs)
        try:
            request.principal = require_principal(request)  # type: ignore[attr-defined]
        except AccessDenied as denied:
            return graphql_error(denied.status, denied.code, denied.message)
        return super().dispatch(request, *args, **kwargs)

    def _is_ide_request(self, request: HttpRequest) -> bool:
        return (
            request.method == "GET"
            and "query" not in request.GET
            and "text/html" in request.headers.get("Accept", "")
        )

    def encode_json(self, data: object) -> bytes:
        """orjson: several times faster than json.dumps on a 1000-row page."""
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        """JSON nested too deeply for the parser is a bad request (400), not a crash (500)."""
        try:
            return json.loads(data)
        except RecursionError:
            raise json.JSONDecodeError("nested too deeply", "", 0) from None
