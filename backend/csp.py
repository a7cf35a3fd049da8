"""A Content-Security-Policy on every HTML page Roster serves.

Django 5.2 has no CSP of its own (6.0 has), and django-csp gives one policy per site unless a
view is decorated. Roster needs two policies, and the GraphQL view is Strawberry's, so this is
a small middleware rather than a dependency. Neither names another origin: every script,
stylesheet and font comes from Roster itself.

- every HTML page (the dashboard, the admin, error pages): scripts, styles, fonts and
  connections from this origin only; an inline ``<style>`` needs the request's nonce
  (``<style nonce="{{ request.csp_nonce }}">``); no plugins, no ``<base>``, no framing, and
  forms post here only.
- GraphiQL (``GET /graphql`` from a browser, ``roster/graphiql.html``): the same, plus fonts
  from ``data:`` URLs, which GraphiQL's stylesheet embeds. Its scripts are files (the vendored
  ``static/graphiql/`` and our ``static/roster/graphiql.js``), so no inline script runs there
  either. GraphiQL sets its element styles through the DOM, which a policy does not restrict;
  the ``<style>`` its dialogs add carries the nonce, which the page hands to it.

JSON, CSV and plain-text answers get no header: a policy only means something to a document.
Neither do Django's own debug pages (a 404 or 500 with ``DEBUG`` on), whose inline styles and
scripts a policy would break.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from strawberry.django.views import GraphQLView

HEADER = "Content-Security-Policy"
_OWN_SCRIPTS_AND_STYLES = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; "
)
_LOCKED_DOWN = "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
PAGE_POLICY = _OWN_SCRIPTS_AND_STYLES + "img-src 'self' data:; " + _LOCKED_DOWN
GRAPHIQL_POLICY = (
    _OWN_SCRIPTS_AND_STYLES + "font-src 'self' data:; img-src 'self' data:; " + _LOCKED_DOWN
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
            response[HEADER] = GRAPHIQL_POLICY.format(nonce=nonce)
        else:
            response[HEADER] = PAGE_POLICY.format(nonce=nonce)
        return response
