"""GraphQL errors a caller can act on, each with a stable ``extensions.code``."""

from __future__ import annotations

from graphql import GraphQLError

from backend.health import DATABASE_ERRORS, UNAVAILABLE_CODE, UNAVAILABLE_MESSAGE


def bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def is_outage(error: GraphQLError) -> bool:
    """The resolver failed because the database could not be reached."""
    return isinstance(error.original_error, DATABASE_ERRORS)


def service_unavailable(error: GraphQLError) -> GraphQLError:
    """An outage error at the same place in the query, without the driver's message."""
    return GraphQLError(
        UNAVAILABLE_MESSAGE,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": UNAVAILABLE_CODE},
    )


def should_mask(error: GraphQLError) -> bool:
    """Hide unexpected exceptions (they may hold internals); keep errors meant for the caller.

    An outage is left for the view, which turns it into ``SERVICE_UNAVAILABLE`` and a 503.
    """
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError) and not is_outage(error)
