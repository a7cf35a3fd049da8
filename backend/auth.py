"""API tokens and scopes, shared by the GraphQL and REST doors.

A token is ``rst_`` plus 32 random bytes, sent as ``Authorization: Bearer <token>``. Only its
SHA-256 is stored, so a leaked database does not leak usable tokens.

A logged-in Django staff session (the admin) also counts, so GraphiQL and the dashboard work in
a browser. Its scope comes from Django, never from being staff alone: a superuser has ``admin``;
other staff have the widest scope among the groups ``roster-admin``, ``roster-write`` and
``roster-read`` they belong to, and no access at all (403) in none of them.

A token found in the database is kept in the process for ``TOKEN_CACHE_SECONDS`` (5 s by
default, ``0``: never kept), so that a client's next requests skip the lookup. The bound: a
token created, renamed or deleted through Roster (``create_token``, the admin, any ``save``
or ``delete`` of an ``ApiToken``) empties this process's cache at once; a token deleted by
another process (another worker, a ``manage.py`` run, SQL) is refused by this one at most
``TOKEN_CACHE_SECONDS`` later.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone

from backend.models import ApiToken, Scope

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

TOKEN_PREFIX = "rst_"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_RANK = {Scope.READ: 1, Scope.WRITE: 2, Scope.ADMIN: 3}
# The Django group that gives a staff session each scope.
SCOPE_GROUPS = {Scope.ADMIN: "roster-admin", Scope.WRITE: "roster-write", Scope.READ: "roster-read"}
NO_SCOPE_MESSAGE = (
    "this account has no Roster scope; a superuser can add it to the group roster-read, "
    "roster-write or roster-admin"
)


LAST_USED_EVERY = timedelta(minutes=1)
"""How stale ``ApiToken.last_used_at`` may get: a token's use is written at most this often."""


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


def new_token() -> str:
    """A fresh random token. Store only its ``hash_token``."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(*, name: str, scope: Scope | str) -> str:
    """Store a new token and return it. This is the only time the token is seen."""
    token = new_token()
    ApiToken.objects.create(name=name, scope=Scope(scope), key_hash=hash_token(token))
    return token


def session_scope(user: AbstractUser | AnonymousUser | None) -> Scope | None:
    """The scope a logged-in user's session has: ``admin`` for a superuser; for other staff,
    the widest of their ``SCOPE_GROUPS``, ``None`` in none of them; ``None`` for anyone else
    (anonymous, inactive or not staff)."""
    if user is None or not (user.is_authenticated and user.is_active and user.is_staff):
        return None
    if user.is_superuser:
        return Scope.ADMIN
    groups = set(user.groups.filter(name__in=SCOPE_GROUPS.values()).values_list("name", flat=True))
    held = [scope for scope, group in SCOPE_GROUPS.items() if group in groups]
    return max(held, key=_RANK.__getitem__, default=None)


def grantable_scopes(user: AbstractUser | AnonymousUser | None) -> list[Scope]:
    """The scopes ``user`` may give a new token: up to their own session's scope."""
    own = session_scope(user)
    return [scope for scope in Scope if own is not None and _RANK[scope] <= _RANK[own]]


def authenticate(request: HttpRequest) -> Principal | None:
    """The request's principal, ``None`` when it sent no credentials at all.

    Raises ``AuthError`` when an Authorization header is present but not a valid token, and
    ``AccessDenied`` (403) for a staff session whose user has no scope (``session_scope``).
    """
    header = request.headers.get("Authorization", "")
    if header:
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise AuthError("the Authorization header must be 'Bearer <token>'")
        return _token_principal(hash_token(token.strip()))
    user = getattr(request, "user", None)
    if user is None or not (user.is_authenticated and user.is_active and user.is_staff):
        return None
    scope = session_scope(user)
    if scope is None:
        raise AccessDenied(403, "FORBIDDEN", NO_SCOPE_MESSAGE)
    return Principal(user.get_username(), scope)


@dataclass
class _KnownToken:
    """A token found in the database, as this process keeps it (``TokenCache``)."""

    pk: int
    principal: Principal
    last_used_at: datetime | None
    expires: float  # time.monotonic()


class TokenCache:
    """Tokens found in the database, by hash, each for ``TOKEN_CACHE_SECONDS``.

    Only tokens that exist are kept: a token created by another process works at once, and
    guessing tokens fills nothing. ``forget_tokens`` empties it when a token changes here.
    """

    MAX_TOKENS = 1024
    """Past this many live tokens the cache starts again empty: memory stays bounded."""

    def __init__(self) -> None:
        self._tokens: dict[str, _KnownToken] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str, now: float) -> _KnownToken | None:
        known = self._tokens.get(key_hash)
        return known if known is not None and now < known.expires else None

    def keep(self, key_hash: str, known: _KnownToken) -> None:
        with self._lock:
            if len(self._tokens) >= self.MAX_TOKENS:
                self._tokens.clear()
            self._tokens[key_hash] = known

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


token_cache = TokenCache()
_clock = time.monotonic  # the cache's clock (a test moves it on)


@receiver(post_save, sender=ApiToken, dispatch_uid="roster-forget-tokens-saved")
@receiver(post_delete, sender=ApiToken, dispatch_uid="roster-forget-tokens-deleted")
def forget_tokens(**kwargs: object) -> None:
    """A token was created, changed or revoked in this process: look every token up again."""
    token_cache.clear()


def _token_principal(key_hash: str) -> Principal:
    """The principal of the token with this hash, from ``token_cache`` or the database; writes
    ``last_used_at`` at most every ``LAST_USED_EVERY``. Raises ``AuthError`` for no token."""
    clock = _clock()
    known = token_cache.get(key_hash, clock)
    if known is None:
        record = ApiToken.objects.filter(key_hash=key_hash).first()
        if record is None:
            raise AuthError("the token is not valid")
        principal = Principal(record.name, Scope(record.scope))
        expires = clock + settings.TOKEN_CACHE_SECONDS
        known = _KnownToken(record.pk, principal, record.last_used_at, expires)
        if settings.TOKEN_CACHE_SECONDS > 0:
            token_cache.keep(key_hash, known)
    else:
        # Without the lookup, the request's first touch of the database: a lost connection
        # still answers 503 here, as the lookup's would, not in the middle of a query.
        connection.close_if_health_check_failed()
        connection.ensure_connection()
    now = timezone.now()
    if known.last_used_at is None or now - known.last_used_at > LAST_USED_EVERY:
        ApiToken.objects.filter(pk=known.pk).update(last_used_at=now)
        known.last_used_at = now
    return known.principal


def _csrf_checked_view(request: HttpRequest) -> HttpResponse:
    """The view CsrfViewMiddleware checks for: not exempt, and never called (only the check
    runs)."""
    return HttpResponse(status=204)


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
    csrf = CsrfViewMiddleware(_csrf_checked_view)
    if session_write and csrf.process_view(request, _csrf_checked_view, (), {}) is not None:
        raise AccessDenied(403, "FORBIDDEN", "CSRF check failed for this session")
    return principal


def require_scope(principal: Principal | None, scope: Scope) -> Principal:
    """Raise ``AccessDenied`` unless the principal holds ``scope`` (or a wider one)."""
    if principal is None:
        raise AccessDenied(401, "UNAUTHENTICATED", f"authentication required: {AUTH_HINT}")
    if not principal.allows(scope):
        raise AccessDenied(403, "FORBIDDEN", f"this operation needs the '{scope}' scope")
    return principal
