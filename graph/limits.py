"""Query limits, checked before anything runs: depth, aliases, estimated rows and tokens.

One graphql-core validation rule measures each operation in a single walk of the document and
measures each fragment once, whatever the number of places it is spread in. Its cost is linear
in the document's size. Strawberry's ``QueryDepthLimiter`` and ``MaxAliasesLimiter`` walk a
fragment again at every spread, so a document of 21 fragments, each spreading the previous one
twice, made them walk two million fragments: 857 bytes stalled a worker.

- **Depth** (``GRAPHQL_MAX_DEPTH``): the fields nested above the deepest leaf, as Strawberry
  counts it (introspection fields do not count).
- **Aliases** (``GRAPHQL_MAX_ALIASES``): aliases in the whole document, a fragment's counted at
  every spread.
- **Cost** (``GRAPHQL_MAX_COST``): the rows an operation may read. Every object counts one row,
  and a connection's ``nodes`` count ``first`` rows (its default when it is not given, the
  largest page when it is a variable), each with the rows nested in it: estimates multiply down
  the nesting and add up across fields, aliases and spreads. A list that is not a connection
  (a batch's rejections, a row's reasons) is bounded elsewhere and counts as one row.
- **Tokens** (``GRAPHQL_MAX_TOKENS``): the parser stops counting, and parsing, past the limit.

A document over a limit gets a validation error with ``extensions.code`` ``QUERY_TOO_COMPLEX``
and nothing runs. Fragment cycles are graphql-core's to report (``NoFragmentCyclesRule``): this
rule cuts them short and does not loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    VariableNode,
    get_named_type,
)
from strawberry.extensions import SchemaExtension

from graph.errors import TOO_COMPLEX
from graph.pagination import MAX_PAGE


@dataclass(frozen=True)
class Measure:
    depth: int
    aliases: int
    cost: int


_NOTHING = Measure(0, 0, 0)


class _Walk:
    """Measures selection sets; each (fragment, enclosing page size) is measured once."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
    ):
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.measured: dict[tuple[str, int | None], Measure] = {}
        self.open: set[str] = set()  # fragments being measured: a spread of one is a cycle

    def selections(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType | None, page: int | None
    ) -> Measure:
        """``page`` is the ``first`` of the connection whose fields these are, else None."""
        depth = aliases = cost = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                measure = self.field(selection, parent, page)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                on = self.schema.get_type(condition.name.value) if condition else parent
                measure = self.selections(selection.selection_set, on, page)
            elif isinstance(selection, FragmentSpreadNode):
                measure = self.spread(selection.name.value, page)
            else:  # pragma: no cover - the three kinds of selection above are all there is
                continue
            depth = max(depth, measure.depth)
            aliases += measure.aliases
            cost += measure.cost
        return Measure(depth, aliases, cost)

    def field(self, node: FieldNode, parent: GraphQLNamedType | None, page: int | None) -> Measure:
        aliases = 1 if node.alias else 0
        if node.selection_set is None:
            return Measure(0, aliases, 0)
        name = node.name.value
        definition = _field(parent, name)
        child = get_named_type(definition.type) if definition else None
        if name.startswith("__"):  # introspection reads no rows, and its depth is not counted
            inner = self.selections(node.selection_set, child, None)
            return Measure(0, aliases + inner.aliases, 0)
        rows, inner_page = 1, None
        if page is not None and name == "nodes":
            rows = page
        elif definition is not None and _is_connection(definition, child):
            inner_page = _first(node, definition, self.variables)
        inner = self.selections(node.selection_set, child, inner_page)
        return Measure(1 + inner.depth, aliases + inner.aliases, rows * (1 + inner.cost))

    def spread(self, name: str, page: int | None) -> Measure:
        fragment = self.fragments.get(name)
        if fragment is None or name in self.open:  # unknown, or a cycle: other rules report it
            return _NOTHING
        key = (name, page)
        if key not in self.measured:
            self.open.add(name)
            try:
                on = self.schema.get_type(fragment.type_condition.name.value)
                self.measured[key] = self.selections(fragment.selection_set, on, page)
            finally:
                self.open.discard(name)
        return self.measured[key]


def _field(parent: GraphQLNamedType | None, name: str) -> GraphQLField | None:
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        return parent.fields.get(name)
    return None


def _is_connection(definition: GraphQLField, child: GraphQLNamedType | None) -> bool:
    return (
        "first" in definition.args
        and isinstance(child, GraphQLObjectType)
        and "nodes" in child.fields
    )


def _first(node: FieldNode, definition: GraphQLField, variables: dict[str, Any]) -> int:
    """The page size asked for: a literal, a variable's value, the argument's default, or the
    largest page."""
    for argument in node.arguments or ():
        if argument.name.value == "first":
            value = argument.value
            if isinstance(value, IntValueNode) and len(value.value) <= 10:
                return min(max(int(value.value), 0), MAX_PAGE)
            if isinstance(value, VariableNode):
                given = variables.get(value.name.value)
                if type(given) is int:  # a wrong type is the type rules' to refuse
                    return min(max(given, 0), MAX_PAGE)
            return MAX_PAGE  # not a number yet (a variable's default): the worst case
    default = definition.args["first"].default_value
    return min(default, MAX_PAGE) if isinstance(default, int) else MAX_PAGE


class QueryLimitsRule(ValidationRule):
    """The limits and the request's variables, as a validation rule. Its errors carry their
    code already. It reads the request, so ``graph/documents.py`` never keeps its verdict."""

    codes_its_errors = True
    """``QUERY_TOO_COMPLEX`` on each: ``graph.errors.coded_rule`` leaves it as it is."""
    max_depth: int
    max_aliases: int
    max_cost: int
    variables: dict[str, Any]

    @classmethod
    def errors(cls, schema: GraphQLSchema, document: DocumentNode) -> list[GraphQLError]:
        return list(
            measure_document(
                schema, document, cls.max_depth, cls.max_aliases, cls.max_cost, cls.variables
            )
        )

    def enter_document(self, node: DocumentNode, *_args: Any) -> Any:
        for error in self.errors(self.context.schema, node):
            self.report_error(error)
        return self.BREAK  # everything is measured: no need to visit the nodes


def limits_rule(
    max_depth: int, max_aliases: int, max_cost: int, variables: dict[str, Any] | None = None
) -> type[QueryLimitsRule]:
    """The validation rule for these limits and the request's variables."""
    limits = {"max_depth": max_depth, "max_aliases": max_aliases, "max_cost": max_cost}
    return type("QueryLimitsRule", (QueryLimitsRule,), {**limits, "variables": variables or {}})


def measure_document(
    schema: GraphQLSchema,
    document: DocumentNode,
    max_depth: int,
    max_aliases: int,
    max_cost: int,
    variables: dict[str, Any] | None = None,
) -> Iterator[GraphQLError]:
    """The errors for every limit ``document`` breaks."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    walk = _Walk(schema, fragments, variables or {})
    aliases = 0
    for operation in document.definitions:
        if not isinstance(operation, OperationDefinitionNode):
            continue
        name = operation.name.value if operation.name else "anonymous"
        try:
            root = schema.get_root_type(operation.operation)
            measure = walk.selections(operation.selection_set, root, None)
        except RecursionError:
            yield _too_complex(f"'{name}' nests fragments or fields too deeply", operation)
            continue
        if measure.depth > max_depth:
            yield _too_complex(
                f"'{name}' exceeds maximum operation depth of {max_depth}", operation
            )
        if measure.cost > max_cost:
            yield _too_complex(
                f"'{name}' may read about {measure.cost} rows; the limit is {max_cost}. "
                "Ask for smaller pages (first) or fewer nested objects.",
                operation,
            )
        aliases += measure.aliases
    if aliases > max_aliases:
        yield _too_complex(f"{aliases} aliases found. Allowed: {max_aliases}")


def _too_complex(message: str, node: OperationDefinitionNode | None = None) -> GraphQLError:
    return GraphQLError(message, node, extensions={"code": TOO_COMPLEX})


class QueryLimits(SchemaExtension):
    """The limits from settings, read at each operation (so ``override_settings`` works)."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = settings.GRAPHQL_MAX_TOKENS
        rule = limits_rule(
            settings.GRAPHQL_MAX_DEPTH,
            settings.GRAPHQL_MAX_ALIASES,
            settings.GRAPHQL_MAX_COST,
            context.variables if isinstance(context.variables, dict) else None,
        )
        context.validation_rules = (*context.validation_rules, rule)
        yield
