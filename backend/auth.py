"""API tokens and scopes, shared by the GraphQL and REST doors.

A token is ``rst_`` plus 32 random bytes, sent as ``Authorization: Bearer <token>``. Only its
SHA-256 is stored, so a leaked database does not leak usable tokens. A logged-in Django staff
session (the admin) also counts, so GraphiQL works in a browser.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone

from backend.models import ApiToken, Scope

TOKEN_PREFIX = "rst_"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_RANK = {Scope.READ: 1, Scope.WRITE: 2, Scope.ADMIN: 3}


AUTH_HINT = "send 'Authorization: Bearer <token>' (python manage.py create_token NAME --scope read)"


class AuthError(Exception):
    """Credentials were sent but are not valid."""


class AccessDenied(Exception):
    """The request may not go on; each door turns this into its own error format."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Principal:
    """Who is calling, and with which scope."""

    name: str
    scope: Scope

    def allows(self, needed: Scope) -> bool:
        """Each scope includes the ones below it: admin > write > read."""
        return _RANK[self.scope] >= _RANK[needed]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(*, name: str, scope: Scope | str) -> str:
    """Store a new token and return it. This is the only time the token is seen."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    ApiToken.objects.create(name=name, scope=Scope(scope), key_hash=hash_token(token))
    return token


def authenticate(request: HttpRequest) -> Principal | None:
    """The request's principal, ``None`` when it sent no credentials at all.

    Raises ``AuthError`` when an Authorization header is present but not a valid token.
    """
    header = request.headers.get("Authorization", "")
    if header:
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise AuthError("the Authorization header must be 'Bearer <token>'")
        record = ApiToken.objects.filter(key_hash=hash_token(token.strip())).first()
        if record is None:
            raise AuthError("the token is not valid")
        now = timezone.now()
        if record.last_used_at is None or now - record.last_used_at > timedelta(minutes=1):
            ApiToken.objects.filter(pk=record.pk).update(last_used_at=now)
        return Principal(record.name, Scope(record.scope))
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_active and user.is_staff:
        return Principal(user.get_username(), Scope.ADMIN if user.is_superuser else Scope.WRITE)
    return None


def require_principal(request: HttpRequest) -> Principal:
    """Authenticate the request or raise ``AccessDenied`` (401, or 403 for a failed CSRF check)."""
    try:
        principal = authenticate(request)
    except AuthError as error:
        raise AccessDenied(401, "UNAUTHENTICATED", f"{error}; {AUTH_HINT}") from None
    if principal is None:
        raise AccessDenied(401, "UNAUTHENTICATED", f"authentication required: {AUTH_HINT}")
    # A session cookie rides along on cross-site requests; a bearer header cannot.
    session_write = "Authorization" not in request.headers and request.method not in SAFE_METHODS
    csrf = CsrfViewMiddleware(lambda r: None)
    if session_write and csrf.process_view(request, None, (), {}) is not None:
        raise AccessDenied(403, "FORBIDDEN", "CSRF check failed for this session")
    return principal


def require_scope(principal: Principal | None, scope: Scope) -> Principal:
    """Raise ``AccessDenied`` unless the principal holds ``scope`` (or a wider one)."""
    if principal is None:
        raise AccessDenied(401, "UNAUTHENTICATED", f"authentication required: {AUTH_HINT}")
    if not principal.allows(scope):
        raise AccessDenied(403, "FORBIDDEN", f"this operation needs the '{scope}' scope")
    return principal
