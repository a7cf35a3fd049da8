"""The /graphql door: authentication, request limits, then Strawberry.

- A request that cannot be read (a body that is not UTF-8 JSON, not an object, a
  ``operationName`` that is not text...) answers 400 with ``extensions.code`` ``BAD_REQUEST``,
  in JSON like every other answer here.
- A database outage, in the token lookup or in a resolver, answers 503 with ``Retry-After``
  and errors with ``extensions.code`` ``SERVICE_UNAVAILABLE``.
- A statement cancelled by ``STATEMENT_TIMEOUT_MS`` is not an outage: its error has
  ``extensions.code`` ``TIMEOUT``.
- The answer's media type follows ``Accept`` (``graph/negotiation.py``): under
  ``application/graphql-response+json`` a document that fails before execution answers 400,
  and no answer other than a 2xx has ``data``; ``application/json`` answers as it always did.
- An answer orjson cannot encode (an integer wider than 64 bits, deep nesting in a logged
  row) is encoded by ``json`` instead: the answer never fails for its content.
"""

from __future__ import annotations

import json
import math
from typing import Any, cast

import orjson
from cross_web import HTTPException, SyncHTTPRequestAdapter
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import render
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from graphql import GraphQLFormattedError
from strawberry.django.views import GraphQLView
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.types import ExecutionResult

from backend.auth import AccessDenied, require_principal
from backend.health import (
    DATABASE_ERRORS,
    RETRY_AFTER_SECONDS,
    UNAVAILABLE_CODE,
    UNAVAILABLE_MESSAGE,
    log_outage,
)
from backend.request_body import MalformedBody, has_lone_surrogate, parse_json_body
from backend.timeouts import TIMEOUT_CODE, is_statement_timeout, statement_timeout, timeout_message
from graph.errors import is_outage, is_timeout, service_unavailable, timed_out
from graph.execution import RenderedList, encoded, plain, rendering
from graph.negotiation import (
    CONTENT_TYPES,
    JSON,
    NOT_ACCEPTABLE,
    NOT_ACCEPTABLE_MESSAGE,
    negotiate,
    shape,
)

BAD_REQUEST = "BAD_REQUEST"
_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def graphql_error(status: int, code: str, message: str, media_type: str = JSON) -> JsonResponse:
    """Roster's own refusal, in GraphQL's error shape and the negotiated media type."""
    error = {"message": message, "extensions": {"code": code}}
    body, status = shape({"data": None, "errors": [error]}, status, media_type)
    response = JsonResponse(body, status=status, content_type=CONTENT_TYPES[media_type])
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="roster"'
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@method_decorator(csrf_exempt, name="dispatch")
class RosterGraphQLView(GraphQLView):
    """Every operation needs a token or a staff session; GraphiQL itself loads without one."""

    media_type = JSON
    """The answer's, negotiated per request (Django makes a view instance per request)."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if self._is_ide_request(request):
            return super().dispatch(request, *args, **kwargs)
        media_type = negotiate(request.headers.get("Accept"))
        if media_type is None:
            return graphql_error(406, NOT_ACCEPTABLE, NOT_ACCEPTABLE_MESSAGE)
        self.media_type = media_type
        try:
            request.principal = require_principal(request)  # type: ignore[attr-defined]
            with statement_timeout(), rendering():
                return self.run(request=request)
        except HTTPException as refused:  # Strawberry's, or ours: the request cannot be read
            code = _HTTP_CODES.get(refused.status_code, BAD_REQUEST)
            return graphql_error(refused.status_code, code, refused.reason, media_type)
        except AccessDenied as denied:
            return graphql_error(denied.status, denied.code, denied.message, media_type)
        except DATABASE_ERRORS as error:
            if is_statement_timeout(error):
                return graphql_error(200, TIMEOUT_CODE, timeout_message(), media_type)
            log_outage(request, error)
            return graphql_error(503, UNAVAILABLE_CODE, UNAVAILABLE_MESSAGE, media_type)

    def _is_ide_request(self, request: HttpRequest) -> bool:
        return (
            request.method == "GET"
            and "query" not in request.GET
            and "text/html" in request.headers.get("Accept", "")
        )

    def render_graphql_ide(self, request: HttpRequest) -> HttpResponse:
        """GraphiQL from Roster's own static files (Strawberry's page loads it from a CDN), booted
        by a script file of ours, so it works offline and under a policy with no inline script."""
        return render(request, "roster/graphiql.html")

    def parse_http_body(
        self, request: SyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """A JSON POST body, read strictly (``backend/request_body.py``); GET as Strawberry does."""
        content_type, _ = parse_content_type(request.content_type or "")
        if request.method != "POST" or "application/json" not in content_type:
            return super().parse_http_body(request)
        try:
            body = parse_json_body(request.request.body)  # type: ignore[attr-defined]
        except MalformedBody as error:
            raise HTTPException(400, f"Unable to parse request body as JSON: {error}") from None
        if not isinstance(body, dict):
            raise HTTPException(
                400, f"The body must be a JSON object with a 'query', got {_json_kind(body)}."
            )
        query, variables = body.get("query"), body.get("variables")
        operation_name, extensions = body.get("operationName"), body.get("extensions")
        for name, value, kind in (
            ("query", query, str),
            ("operationName", operation_name, str),
            ("variables", variables, dict),
            ("extensions", extensions, dict),
        ):
            if value is not None and not isinstance(value, kind):
                expected = "a string" if kind is str else "an object"
                raise HTTPException(400, f"'{name}' must be {expected} or null.")
        if operation_name is not None and has_lone_surrogate(operation_name):
            raise HTTPException(400, "'operationName' must be text (it holds a lone surrogate).")
        return GraphQLRequestData(
            query=query, variables=variables, operation_name=operation_name, extensions=extensions
        )

    def process_result(self, request: HttpRequest, result: ExecutionResult) -> GraphQLHTTPResponse:
        """A resolver that lost the database (Strawberry caught it) becomes SERVICE_UNAVAILABLE;
        one whose statement was cancelled by the timeout, TIMEOUT."""
        outages = [error for error in result.errors or () if is_outage(error)]
        if outages:
            log_outage(request, outages[0].original_error)
        if result.errors:
            result.errors = [
                service_unavailable(error)
                if is_outage(error)
                else timed_out(error)
                if is_timeout(error)
                else error
                for error in result.errors
            ]
        return super().process_result(request, result)

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: HttpResponse,
    ) -> HttpResponseBase:
        """503 with ``Retry-After`` when any error is SERVICE_UNAVAILABLE; then the status,
        body and ``Content-Type`` of the negotiated media type (``negotiation.shape``)."""
        results = response_data if isinstance(response_data, list) else [response_data]
        codes = {
            (error.get("extensions") or {}).get("code")
            for result in results
            # Strawberry types them as objects: they are graphql-core's formatted errors
            for error in cast("list[GraphQLFormattedError]", result.get("errors") or [])
        }
        if UNAVAILABLE_CODE in codes:
            sub_response.status_code = 503
            sub_response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        if not isinstance(response_data, list):  # batching is off: a list never comes
            body, sub_response.status_code = shape(
                response_data, sub_response.status_code, self.media_type
            )
            response_data = cast("GraphQLHTTPResponse", body)
        response = super().create_response(response_data, sub_response)
        response["Content-Type"] = CONTENT_TYPES[self.media_type]
        return response

    def encode_json(self, data: object) -> bytes:
        """orjson: encoding a large page is a read's biggest cost in Python. What it refuses
        (integers wider than 64 bits, nesting deeper than 255) goes through ``encode_any``."""
        try:
            return orjson.dumps(data, default=encoded)  # a RenderedList as its JSON
        except orjson.JSONEncodeError:
            return encode_any(data)

    def decode_json(self, data: str | bytes) -> object:
        """GET's ``variables`` and ``extensions``: malformed JSON is a bad request (400)."""
        try:
            return parse_json_body(data)
        except MalformedBody as error:
            raise json.JSONDecodeError(str(error), "", 0) from None


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    return kinds.get(type(value), "an array")


_MAX_DEPTH = 500
"""Deeper than this, ``encode_any`` writes a marker: ``json`` follows nesting by recursion."""


def encode_any(data: object) -> bytes:
    """JSON for any answer: lossless where JSON allows (big integers stay numbers), text where
    it does not (a lone surrogate as its ``\\udxxx`` escape text, ``NaN`` as ``"nan"``)."""
    try:
        text = json.dumps(
            data, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=plain
        )
        return text.encode("utf-8")
    except (ValueError, TypeError, RecursionError, UnicodeEncodeError):
        text = json.dumps(_portable(data, 0), ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8")


def _portable(value: Any, depth: int) -> Any:
    if isinstance(value, RenderedList):
        return _portable(plain(value), depth)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        try:
            str(value)  # Python refuses to write an integer of more than 4,300 digits
        except ValueError:
            return hex(value)
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= _MAX_DEPTH:
        return f"[nested deeper than {_MAX_DEPTH} levels: not shown]"
    if isinstance(value, dict):
        return {
            _portable(str(key), depth): _portable(item, depth + 1) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_portable(item, depth + 1) for item in value]
    return _portable(str(value), depth)
