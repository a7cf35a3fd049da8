"""A Content-Security-Policy on every HTML page Roster serves.

Django 5.2 has no CSP of its own (6.0 has), and django-csp gives one policy per site unless a
view is decorated. Roster needs two policies, and the GraphQL view is Strawberry's, so this is
a small middleware rather than a dependency:

- every HTML page (the dashboard, the admin, error pages): scripts, styles, fonts and
  connections from this origin only; an inline ``<style>`` needs the request's nonce
  (``<style nonce="{{ request.csp_nonce }}">``); no plugins, no ``<base>``, no framing, and
  forms post here only.
- GraphiQL (``GET /graphql`` from a browser): Strawberry's page loads React and GraphiQL from
  unpkg.com (with subresource integrity). Its inline script is allowed by its SHA-256, taken
  from the page Strawberry ships, never from a response, which an injected script could be
  part of. GraphiQL writes inline styles, so they are allowed there.

JSON, CSV and plain-text answers get no header: a policy only means something to a document.
Neither do Django's own debug pages (a 404 or 500 with ``DEBUG`` on), whose inline styles and
scripts a policy would break.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from strawberry.django.views import GraphQLView
from strawberry.http.ides import get_graphql_ide_html

HEADER = "Content-Security-Policy"
GRAPHIQL_ORIGIN = "https://unpkg.com"
_LOCKED_DOWN = "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; "
    "img-src 'self' data:; " + _LOCKED_DOWN
)
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL)


def script_hashes(html: str) -> list[str]:
    """The CSP source (``'sha256-…'``) of each inline ``<script>`` in ``html``."""
    return [
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
        for body in _INLINE_SCRIPT.findall(html)
    ]


@cache
def graphiql_policy() -> str:
    """The policy for Strawberry's GraphiQL page, worked out once from the page it serves."""
    scripts = " ".join([*script_hashes(get_graphql_ide_html("graphiql")), GRAPHIQL_ORIGIN])
    return (
        f"default-src 'self'; script-src {scripts}; "
        f"style-src 'self' 'unsafe-inline' {GRAPHIQL_ORIGIN}; "
        f"font-src 'self' data: {GRAPHIQL_ORIGIN}; img-src 'self' data:; " + _LOCKED_DOWN
    )


def _is_graphql_view(request: HttpRequest) -> bool:
    """Whether a Strawberry GraphQL view answered (its only HTML page is GraphiQL)."""
    match = request.resolver_match
    view_class = getattr(match.func, "view_class", None) if match else None
    return view_class is not None and issubclass(view_class, GraphQLView)


class ContentSecurityPolicyMiddleware:
    """Give each request a nonce, and each HTML answer the policy for its page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        nonce = secrets.token_urlsafe(16)
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = self.get_response(request)
        if HEADER in response or not response.get("Content-Type", "").startswith("text/html"):
            return response
        if settings.DEBUG and response.status_code in (404, 500):  # Django's debug pages
            return response
        if _is_graphql_view(request):
            response[HEADER] = graphiql_policy()
        else:
            response[HEADER] = PAGE_POLICY.format(nonce=nonce)
        return response
