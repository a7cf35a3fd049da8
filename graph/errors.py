"""GraphQL errors a caller can act on, each with a stable ``extensions.code``."""

from __future__ import annotations

from graphql import GraphQLError


def bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def should_mask(error: GraphQLError) -> bool:
    """Hide unexpected exceptions (they may hold internals); keep errors meant for the caller."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)
