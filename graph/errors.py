"""GraphQL errors a caller can act on, each with a stable ``extensions.code``.

- ``BAD_USER_INPUT``: an argument or a variable the API cannot take. A literal of the wrong
  type or out of range (``id: "12"``, ``id: 2147483648``), a variable that does not coerce, a
  missing required argument, a ``@oneOf`` input without exactly one key, and the resolvers'
  own refusals (``first`` over 1000, a bad cursor, a batch of 0 rows).
- ``GRAPHQL_PARSE_FAILED``: the document is not GraphQL.
- ``GRAPHQL_VALIDATION_FAILED``: the document does not fit the schema (an unknown field...).
- ``QUERY_TOO_COMPLEX``: over a limit of ``graph/limits.py`` (depth, aliases, rows, tokens).
- ``TIMEOUT``: a statement ran past ``STATEMENT_TIMEOUT_MS`` and was cancelled.
- ``SERVICE_UNAVAILABLE``: the database cannot be reached (the view answers 503).
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import (
    ASTValidationRule,
    GraphQLError,
    GraphQLSyntaxError,
    ProvidedRequiredArgumentsRule,
    ValuesOfCorrectTypeRule,
)
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import SchemaExtension

from backend.health import DATABASE_ERRORS, UNAVAILABLE_CODE, UNAVAILABLE_MESSAGE
from backend.timeouts import TIMEOUT_CODE, is_statement_timeout, timeout_message

BAD_USER_INPUT = "BAD_USER_INPUT"
PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
TOO_COMPLEX = "QUERY_TOO_COMPLEX"
_INPUT_RULES = (ValuesOfCorrectTypeRule, ProvidedRequiredArgumentsRule)
_TOKEN_LIMIT = "Document contains more than"  # graphql-core's words when max_tokens stops it


def bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": BAD_USER_INPUT})


def is_timeout(error: GraphQLError) -> bool:
    """A resolver's statement ran past ``STATEMENT_TIMEOUT_MS`` and was cancelled."""
    return is_statement_timeout(error.original_error)


def is_outage(error: GraphQLError) -> bool:
    """The resolver failed because the database could not be reached (not a cancelled query)."""
    original = error.original_error
    return isinstance(original, DATABASE_ERRORS) and not is_statement_timeout(original)


def service_unavailable(error: GraphQLError) -> GraphQLError:
    """An outage error at the same place in the query, without the driver's message."""
    return _replace(error, UNAVAILABLE_MESSAGE, UNAVAILABLE_CODE)


def timed_out(error: GraphQLError) -> GraphQLError:
    """A timeout error at the same place in the query, without the driver's message."""
    return _replace(error, timeout_message(), TIMEOUT_CODE)


def _replace(error: GraphQLError, message: str, code: str) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": code},
    )


def should_mask(error: GraphQLError) -> bool:
    """Hide unexpected exceptions (they may hold internals); keep errors meant for the caller.

    An outage or a timeout is left for the view, which gives it its own code.
    """
    original = error.original_error
    return (
        original is not None
        and not isinstance(original, GraphQLError)
        and not is_outage(error)
        and not is_timeout(error)
    )


def _with_code(error: GraphQLError, code: str) -> None:
    if "code" not in (error.extensions or {}):
        error.extensions = {**(error.extensions or {}), "code": code}


# One coded class per rule. A dict rather than functools.cache: mypy does not see a rule class
# taken from a tuple of them as Hashable.
_CODED_RULES: dict[type[ASTValidationRule], type[ASTValidationRule]] = {}


def coded_rule(rule: type[ASTValidationRule]) -> type[ASTValidationRule]:
    """``rule``, with a code on each error it reports (unless the error has one already)."""
    if rule in _CODED_RULES:
        return _CODED_RULES[rule]
    if getattr(rule, "codes_its_errors", False):  # one class per request: never kept here
        return rule
    code = BAD_USER_INPUT if issubclass(rule, _INPUT_RULES) else VALIDATION_FAILED

    class Coded(rule):  # type: ignore[valid-type, misc]
        def report_error(self, error: GraphQLError) -> None:
            _with_code(error, code)
            super().report_error(error)

    Coded.__name__ = Coded.__qualname__ = rule.__name__
    _CODED_RULES[rule] = Coded
    return Coded


class ErrorCodes(SchemaExtension):
    """Give every error found before execution its code, by the phase and rule that found it.

    - parsing: ``GRAPHQL_PARSE_FAILED`` (``QUERY_TOO_COMPLEX`` past ``GRAPHQL_MAX_TOKENS``);
    - validation: each rule's errors are coded as they are reported (see ``coded_rule``).
      graphql-core aborts validation of fragments nested too deeply (``QUERY_TOO_COMPLEX``).
      The rules Strawberry adds on its own (``@oneOf``, ``Maybe``) check input values, so an
      error still without a code after validation is ``BAD_USER_INPUT``;
    - execution: the errors graphql-core returns before running any field (variables that do
      not coerce) have no path, and an argument that does not coerce while a field runs
      raises graphql-core's ``Argument '...'`` error: both are ``BAD_USER_INPUT``.
    """

    def on_parse(self) -> Iterator[None]:
        try:
            yield
        except RecursionError:  # the parser follows nesting with recursion
            raise GraphQLError(
                "the document nests too deeply", extensions={"code": TOO_COMPLEX}
            ) from None
        for error in self.execution_context.pre_execution_errors or ():
            if isinstance(error, GraphQLSyntaxError):
                limit = _TOKEN_LIMIT in error.message
                _with_code(error, TOO_COMPLEX if limit else PARSE_FAILED)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = tuple(coded_rule(rule) for rule in context.validation_rules)
        yield
        for error in context.pre_execution_errors or ():
            aborted = isinstance(error, ValidationAbortedError)
            _with_code(error, TOO_COMPLEX if aborted else BAD_USER_INPUT)

    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        for error in getattr(result, "errors", None) or ():
            original = error.original_error
            coercion = (
                isinstance(original, GraphQLError)
                and not original.extensions
                and original.message.startswith("Argument '")
            )
            if error.path is None or coercion:
                _with_code(error, BAD_USER_INPUT)
