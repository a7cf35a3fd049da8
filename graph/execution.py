"""A shorter path through GraphQL execution for objects made only of plain fields.

graphql-core resolves every field on its own: a path entry, a ``ResolveInfo``, the resolver,
the awaitable check, then the leaf's serializer. That cost is paid per field, so an answer of
many small rows (a year of ``hiresByQuarter``: thousands of rows of six plain fields; a page
of 1000 hires with their department and job: 9,000 fields) spends as long there as in the
rest of the request.

For an object whose selected fields are all Strawberry's plain attribute fields (no resolver,
no arguments, no permission, no extension, no ``@defer``) of a scalar or enum type, or of a
concrete object type whose own selection is plain in the same way (a hire's ``department``),
this execution context reads and serializes them directly. Anything else takes graphql-core's
own path, and so does an object on which the short path meets anything unusual (a null in a
non-null field, a value the scalar refuses): answers and errors stay exactly the standard ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from itertools import repeat
from operator import attrgetter
from typing import Any, NamedTuple

import orjson
from graphql import (
    GraphQLInt,
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLString,
    Undefined,
    get_nullable_type,
    is_leaf_type,
    is_non_null_type,
    is_object_type,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField


class _PlainField(NamedTuple):
    response_name: str
    resolve: Any  # the source's attribute: what Strawberry's basic field reads
    leaf_type: GraphQLLeafType | None  # None: an object, completed by ``nested``
    non_null: bool
    nested: tuple[_PlainField, ...] | None = None
    attribute: str = ""  # the source's attribute that ``resolve`` reads


Plan = tuple[_PlainField, ...]


class _FlatPlan(NamedTuple):
    """A plan of Strings and Ints only (a ``hiresByQuarter`` row): read at once, checked at once."""

    names: tuple[str, ...]
    attributes: tuple[str, ...]  # what ``read`` reads, in the same order
    read: Callable[[Any], tuple[Any, ...]]
    kinds: tuple[type, ...]  # the Python type each value must have to be its own answer


def _flat(plan: Plan) -> _FlatPlan | None:
    kinds: list[type] = []
    for field in plan:
        if field.leaf_type is GraphQLString:
            kinds.append(str)
        elif field.leaf_type is GraphQLInt:
            kinds.append(int)
        else:
            return None
    return _FlatPlan(
        names=tuple(field.response_name for field in plan),
        attributes=tuple(field.attribute for field in plan),
        read=_getter(attrgetter, [field.attribute for field in plan]),
        kinds=tuple(kinds),
    )


def _getter(make: Callable[..., Any], keys: list[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """``make(*keys)`` (``attrgetter``) for one key or more, always answering a tuple."""
    if len(keys) == 1:
        one = make(keys[0])
        return lambda source: (one(source),)
    return make(*keys)


_INT_RANGE = range(-(2**31), 2**31)
"""GraphQL's Int; a larger int takes the scalar's own serializer, which refuses it."""


class RenderedList:
    """A list of plain objects whose JSON the database already wrote (a nested page of hires:
    ``graph/selectors.py``), for the selection of ``fields``: each item's (response name,
    attribute), in order. Completed as it is when the list's selection is exactly that one, and
    written into the answer by the view's encoder (``encoded``); any other selection completes
    the objects ``objects`` builds, as usual."""

    __slots__ = ("_objects", "fields", "json")

    def __init__(
        self, json: str, fields: tuple[tuple[str, str], ...], objects: Callable[[], list[Any]]
    ) -> None:
        self.json, self.fields, self._objects = json, fields, objects

    def objects(self) -> list[Any]:
        return self._objects()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._objects())

    def __len__(self) -> int:
        return len(self._objects())


_RENDERING: ContextVar[bool] = ContextVar("roster_rendering", default=False)


@contextmanager
def rendering() -> Iterator[None]:
    """While the block runs, resolvers may answer a ``RenderedList``: whoever encodes the answer
    (the /graphql view) writes it with ``encoded``. Any other caller of the schema gets plain
    lists only."""
    token = _RENDERING.set(True)
    try:
        yield
    finally:
        _RENDERING.reset(token)


def may_render() -> bool:
    return _RENDERING.get()


def encoded(value: Any) -> Any:
    """orjson's ``default`` (and ``json``'s, through ``plain``): a ``RenderedList`` as its JSON."""
    if isinstance(value, RenderedList):
        return orjson.Fragment(value.json)
    raise TypeError(f"{type(value).__name__} is not JSON")


def plain(value: Any) -> Any:
    """``json``'s ``default``: a ``RenderedList`` as its items."""
    if isinstance(value, RenderedList):
        return json.loads(value.json)
    raise TypeError(f"{type(value).__name__} is not JSON")


class LeafObjectExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, with the short path for plain leaf-only objects."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One plan per selection: every row of a list shares its grouped field set.
        self._plans: dict[int, tuple[object, Plan | None]] = {}
        self._flat_plans: dict[int, tuple[Plan, _FlatPlan | None]] = {}

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Any,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        plan = self._plan(parent_type, grouped_field_set)
        if plan is not None:
            completed = _complete(plan, source_value, self.is_awaitable)
            if completed is not None:
                return completed
        return super().execute_fields(
            parent_type, source_value, path, grouped_field_set, position_context
        )

    def complete_iterable_value(
        self,
        item_type: Any,
        field_details_list: Any,
        info: Any,
        path: Any,
        items: Any,
        position_context: Any,
    ) -> Any:
        """A list of plain objects (a year of ``hiresByQuarter``, a page of hires) completed in
        one loop, without graphql-core's path, result and sub-field collection per item; any
        item the short path cannot complete sends the whole list down the standard path."""
        object_type = get_nullable_type(item_type)
        plan = flat = None
        if is_object_type(object_type) and object_type.is_type_of is None:
            grouped, deferred, _ = self.collect_subfields(object_type, field_details_list)
            plan = None if deferred else self._plan(object_type, grouped)
            flat = None if plan is None else self._flat_plan(plan)
        if isinstance(items, RenderedList):
            # its JSON answers exactly this selection: the same names reading the same columns
            if flat is not None and tuple(zip(flat.names, flat.attributes, strict=True)) == (
                items.fields
            ):
                return items  # the encoder writes its JSON
            items = items.objects()
        if plan is not None:
            items = items if isinstance(items, list) else list(items)
            completed = (
                [None if item is None else _complete(plan, item, self.is_awaitable)
                 for item in items]
                if flat is None
                else _complete_flat(flat, plan, items, self.is_awaitable)
            )  # fmt: skip
            if None not in completed:
                return completed
        return super().complete_iterable_value(
            item_type, field_details_list, info, path, items, position_context
        )

    def _flat_plan(self, plan: Plan) -> _FlatPlan | None:
        cached = self._flat_plans.get(id(plan))
        if cached is None or cached[0] is not plan:
            cached = self._flat_plans[id(plan)] = (plan, _flat(plan))
        return cached[1]

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> Plan | None:
        cached = self._plans.get(id(grouped_field_set))
        if cached is not None and cached[0] is grouped_field_set:
            return cached[1]
        # Strawberry passes a manager on every request; it matters when an extension has one.
        wrapped = self.middleware_manager is not None and self.middleware_manager.middlewares
        plan = None if wrapped else self._plain_plan(parent_type, grouped_field_set)
        self._plans[id(grouped_field_set)] = (grouped_field_set, plan)
        return plan

    def _plain_plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> Plan | None:
        """How to complete the selection directly, or None if any field needs the full path."""
        plan = []
        for response_name, field_details_list in grouped_field_set.items():
            if any(details.defer_usage is not None for details in field_details_list):
                return None
            node = field_details_list[0].node
            field_def = parent_type.fields.get(node.name.value)  # None for __typename
            if field_def is None or field_def.args or node.arguments:
                return None
            definition = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            resolve = field_def.resolve
            if (
                not isinstance(definition, StrawberryField)
                or not definition.is_basic_field
                or getattr(resolve, "__name__", None) != "_get_basic_result"
            ):
                return None
            read = attrgetter(definition.python_name)
            non_null = is_non_null_type(field_def.type)
            field_type = get_nullable_type(field_def.type)
            if is_leaf_type(field_type):
                plan.append(
                    _PlainField(
                        response_name, read, field_type, non_null, None, definition.python_name
                    )
                )
                continue
            if not is_object_type(field_type) or field_type.is_type_of is not None:
                return None  # lists, interfaces, unions, types that check their objects
            grouped, deferred, _ = self.collect_subfields(field_type, field_details_list)
            nested = None if deferred else self._plan(field_type, grouped)
            if nested is None:
                return None
            plan.append(_PlainField(response_name, read, None, non_null, nested))
        return tuple(plan)


_INT_MIN, _INT_MAX = _INT_RANGE[0], _INT_RANGE[-1]


def _complete_flat(
    flat: _FlatPlan, plan: Plan, items: list[Any], is_awaitable: Any
) -> list[dict[str, Any] | None]:
    """``items`` of a Strings-and-Ints plan, column by column: every row's values read, then
    each column's types checked (and its Ints' range) in one pass in C, then the answers built.
    A list with anything else (a null, a bool, an Int out of range, an attribute that raises)
    takes ``_complete``'s row-by-row path, which reports it as graphql-core would."""
    names, _, read, kinds = flat
    try:
        values = list(map(read, items))  # a None item raises too: it is not an object
    except Exception:  # the row-by-row path raises it again, as a located GraphQL error
        values = None
    if values is not None and _checked(values, kinds):
        return list(map(dict, map(zip, repeat(names), values)))
    return [None if item is None else _complete(plan, item, is_awaitable) for item in items]


def _checked(values: list[tuple[Any, ...]], kinds: tuple[type, ...]) -> bool:
    """Whether every row's values have their column's Python type exactly (a bool is not an
    int), and every Int is within GraphQL's range: each value is then its own answer."""
    # no rows: no column, nothing to check
    for column, kind in zip(zip(*values, strict=True), kinds, strict=False):
        if set(map(type, column)) != {kind}:
            return False
        if kind is int and (min(column) < _INT_MIN or max(column) > _INT_MAX):
            return False
    return True


def _complete(plan: Plan, source: Any, is_awaitable: Any) -> dict[str, Any] | None:
    """The object's answer, or None to let graphql-core complete it (and report any error)."""
    results: dict[str, Any] = {}
    try:
        for response_name, read, leaf_type, non_null, nested, _ in plan:
            value = read(source)
            if value is None:
                if non_null:
                    return None
                results[response_name] = None
                continue
            if nested is not None:
                if isinstance(value, Exception) or is_awaitable(value):
                    return None
                completed = _complete(nested, value, is_awaitable)
                if completed is None:
                    return None
                results[response_name] = completed
                continue
            assert leaf_type is not None
            kind = type(value)
            if (kind is str and leaf_type is GraphQLString) or (
                kind is int and leaf_type is GraphQLInt and value in _INT_RANGE
            ):
                results[response_name] = value  # what those scalars' serializers return
                continue
            if isinstance(value, Exception) or is_awaitable(value):
                return None  # graphql-core reports the one and awaits the other
            serialized = leaf_type.coerce_output_value(value)
            if serialized is Undefined or serialized is None:
                return None
            results[response_name] = serialized
    except Exception:  # the standard path raises it again, as a located GraphQL error
        return None
    return results
