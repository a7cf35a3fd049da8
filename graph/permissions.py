"""Scope checks, attached to fields as permission classes (never ``if user`` in a resolver)."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from strawberry.permission import BasePermission
from strawberry.types import Info

from backend.auth import AccessDenied, require_scope
from backend.models import Scope


class _NeedsScope(BasePermission):
    scope: Scope

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        try:
            require_scope(getattr(info.context.request, "principal", None), self.scope)
        except AccessDenied as denied:
            raise GraphQLError(denied.message, extensions={"code": denied.code}) from None
        return True


class CanRead(_NeedsScope):
    scope = Scope.READ


class CanWrite(_NeedsScope):
    scope = Scope.WRITE


class IsAdmin(_NeedsScope):
    scope = Scope.ADMIN
