"""The short path for leaf-only objects answers exactly what graphql-core's own path answers."""

from __future__ import annotations

import enum
import inspect
import json
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson
import pytest
import strawberry
from django.conf import settings
from packaging.requirements import Requirement

from graph import execution
from graph.execution import LeafObjectExecutionContext
from graph.views import encode_any


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Row:
    id: int
    name: str
    colour: Colour
    note: str | None
    count: int  # None on one row: a non-null field with a null, which is an error

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()


@strawberry.type
class Holder:
    label: str
    rows: list[Row]


ROWS = [
    Row(id=1, name="Ada", colour=Colour.RED, note=None, count=3),
    Row(id=2, name="Grace", colour=Colour.BLUE, note="x", count=4),
]
BROKEN = [*ROWS, Row(id=3, name="Linus", colour=Colour.RED, note=None, count=None)]  # type: ignore[arg-type]


@strawberry.type
class Odd:
    value: int  # an Exception on one object: graphql-core reports it as that field's error


ODD = [Odd(value=1), Odd(value=ValueError("no value here"))]  # type: ignore[arg-type]


@strawberry.type
class Team:
    name: str
    size: int

    @strawberry.field
    def loud(self) -> str:
        return self.name.upper()


@strawberry.type
class Member:
    id: int
    team: Team
    backup: Team | None


MEMBERS = [
    Member(id=1, team=Team(name="a", size=2), backup=None),
    Member(id=2, team=Team(name="b", size=3), backup=Team(name="a", size=2)),
]
ORPHANS = [*MEMBERS, Member(id=3, team=None, backup=None)]  # type: ignore[arg-type]


@strawberry.type
class Tally:
    """Strings and Ints only: a ``hiresByQuarter`` row."""

    label: str
    n: int
    m: int


TALLIES = [Tally(label="a", n=1, m=-(2**31)), Tally(label="b", n=2, m=2**31 - 1)]
RENDERED = '[{"label":"a","n":1},{"label":"b","n":2}]'
"""What a database would write for ``{ label n }`` of TALLIES."""

ODD_TALLIES = [
    *TALLIES,
    Tally(label="c", n=True, m=0),  # a bool is an Int's 1, through the scalar's serializer
    Tally(label="d", n=3, m=2**31),  # out of Int's range: the scalar's error
]


@strawberry.type
class Query:
    @strawberry.field
    def odd(self) -> list[Odd | None]:
        return ODD

    @strawberry.field
    def tallies(self) -> list[Tally]:
        return TALLIES

    @strawberry.field
    def odd_tallies(self) -> list[Tally | None]:
        return [*ODD_TALLIES, None]

    @strawberry.field
    def rendered_tallies(self) -> list[Tally]:
        fields = (("label", "label"), ("n", "n"))
        return execution.RenderedList(RENDERED, fields, lambda: TALLIES)  # type: ignore[return-value]

    @strawberry.field
    def members(self) -> list[Member]:
        return MEMBERS

    @strawberry.field
    def orphans(self) -> list[Member]:
        return ORPHANS

    @strawberry.field
    def rows(self) -> list[Row]:
        return ROWS

    @strawberry.field
    def broken(self) -> list[Row]:
        return BROKEN

    @strawberry.field
    def holder(self) -> Holder:
        return Holder(label="h", rows=ROWS)


class CountingContext(LeafObjectExecutionContext):
    """Counts the ResolveInfo objects graphql-core builds: one per field on its own path."""

    infos = 0

    def build_resolve_info(self, *args: Any, **kwargs: Any) -> Any:
        CountingContext.infos += 1
        return super().build_resolve_info(*args, **kwargs)


fast = strawberry.Schema(query=Query, execution_context_class=CountingContext)
standard = strawberry.Schema(query=Query)


def answers(query: str) -> tuple[Any, Any]:
    ours, theirs = fast.execute_sync(query), standard.execute_sync(query)
    errors = [(e.message, e.path) for e in ours.errors or []]
    expected = [(e.message, e.path) for e in theirs.errors or []]
    assert errors == expected
    assert ours.data == theirs.data
    return ours.data, errors


def test_plain_leaf_rows_take_the_short_path_and_answer_the_same() -> None:
    CountingContext.infos = 0
    data, errors = answers("{ rows { id name colour note count } }")
    assert data == {
        "rows": [
            {"id": 1, "name": "Ada", "colour": "RED", "note": None, "count": 3},
            {"id": 2, "name": "Grace", "colour": "BLUE", "note": "x", "count": 4},
        ]
    }
    assert errors == []
    assert CountingContext.infos == 1  # only the root field `rows`


@pytest.mark.parametrize(
    "query",
    [
        "{ rows { first: id id again: id } }",
        "{ rows { ...R } } fragment R on Row { name colour }",
        "{ rows { id ... on Row { note } } }",
        "{ rows { id name @include(if: false) note @skip(if: true) count @skip(if: false) } }",
        "{ rows { __typename id } }",
        "{ rows { id shout } }",
        "{ holder { label rows { id name } } }",
    ],
)
def test_aliases_fragments_directives_typename_and_resolvers_answer_the_same(query: str) -> None:
    data, errors = answers(query)
    assert errors == []
    assert data is not None and data != {}


def test_rows_with_plain_nested_objects_take_the_short_path_and_answer_the_same() -> None:
    """A hire's department and job: objects of plain fields inside plain rows."""
    CountingContext.infos = 0
    data, errors = answers("{ members { id team { name size } backup { name } } }")
    assert data == {
        "members": [
            {"id": 1, "team": {"name": "a", "size": 2}, "backup": None},
            {"id": 2, "team": {"name": "b", "size": 3}, "backup": {"name": "a"}},
        ]
    }
    assert errors == []
    assert CountingContext.infos == 1  # only the root field `members`


def test_a_nested_object_with_a_resolver_keeps_the_standard_path() -> None:
    CountingContext.infos = 0
    data, errors = answers("{ members { id team { loud } } }")
    assert errors == []
    assert data == {"members": [{"id": 1, "team": {"loud": "A"}}, {"id": 2, "team": {"loud": "B"}}]}
    assert CountingContext.infos == 1 + 2 * 3  # root, then `id`, `team`, `loud` on each row


def test_a_null_nested_object_in_a_non_null_field_is_the_standard_located_error() -> None:
    data, errors = answers("{ orphans { id team { name } } }")
    assert data is None
    assert errors == [
        ("Cannot return null for non-nullable field Member.team.", ["orphans", 2, "team"])
    ]


def test_a_resolver_field_keeps_the_standard_path() -> None:
    CountingContext.infos = 0
    answers("{ rows { id shout } }")
    assert CountingContext.infos == 1 + 2 * 2  # root, then `id` and `shout` on each row


def test_a_null_in_a_non_null_field_is_the_standard_located_error() -> None:
    data, errors = answers("{ broken { id count } }")
    assert data is None  # the null bubbles up through the non-null list and root field
    assert errors == [
        ("Cannot return null for non-nullable field Row.count.", ["broken", 2, "count"])
    ]


def test_a_value_that_is_an_exception_is_the_standard_located_error() -> None:
    data, errors = answers("{ odd { value } }")
    assert data == {"odd": [{"value": 1}, None]}
    assert errors == [("no value here", ["odd", 1, "value"])]


def test_rows_of_strings_and_ints_are_read_and_checked_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The flat path: no field-by-field completion for lists whose values are all plain str and
    int within Int's range, checked column by column; a list with a row that is not (a bool,
    an int out of range, a null) goes row by row, field by field, and answers what graphql-core
    answers."""
    calls: list[Any] = []
    field_by_field = execution._complete

    def counted(plan: Any, source: Any, is_awaitable: Any) -> Any:
        calls.append(source)
        return field_by_field(plan, source, is_awaitable)

    monkeypatch.setattr(execution, "_complete", counted)
    CountingContext.infos = 0
    data, errors = answers("{ tallies { label n again: n m } }")
    assert data == {
        "tallies": [
            {"label": "a", "n": 1, "again": 1, "m": -(2**31)},
            {"label": "b", "n": 2, "again": 2, "m": 2**31 - 1},
        ]
    }
    assert errors == []
    assert (calls, CountingContext.infos) == ([], 1)

    data, errors = answers("{ oddTallies { label n m } }")
    assert data is not None
    assert data["oddTallies"][:2] == [{"label": "a", "n": 1, "m": -(2**31)},
                                      {"label": "b", "n": 2, "m": 2**31 - 1}]  # fmt: skip
    assert data["oddTallies"][2] == {"label": "c", "n": 1, "m": 0}
    assert data["oddTallies"][3:] == [None, None]
    assert errors == [
        ("Int cannot represent non 32-bit signed integer value: 2147483648",
         ["oddTallies", 3, "m"]),
    ]  # fmt: skip
    # every row of the list, then the standard path's own
    assert [tally.label for tally in calls[:4]] == ["a", "b", "c", "d"]
    data, errors = answers("{ tallies { label } }")  # a single field: still one tuple per row
    assert (data, errors) == ({"tallies": [{"label": "a"}, {"label": "b"}]}, [])


# --- the internals the short path reads, pinned in pyproject.toml -------------------------------


def _pins() -> list[str]:
    """The pins of strawberry-graphql and graphql-core in pyproject.toml, as written there."""
    project = tomllib.loads((Path(settings.BASE_DIR) / "pyproject.toml").read_text("utf-8"))
    names = ("strawberry-graphql", "graphql-core")
    return [pin for pin in project["project"]["dependencies"] if pin.startswith(names)]


def _revisit(what: str) -> str:
    return (
        f"{what}. graph/execution.py builds on Strawberry's and graphql-core's internals and "
        f"they changed shape: fix graph/execution.py before moving the pins in pyproject.toml "
        f"({', '.join(_pins())})"
    )


def test_the_installed_strawberry_and_graphql_core_are_the_pinned_ones() -> None:
    pins = _pins()
    assert len(pins) == 2, _revisit("pyproject.toml no longer pins both packages")
    for pin in pins:
        requirement = Requirement(pin)
        installed = version(requirement.name)
        assert any(spec.operator == "<" for spec in requirement.specifier), _revisit(
            f"{requirement.name} has no upper bound"
        )
        assert requirement.specifier.contains(installed), _revisit(
            f"{requirement.name} {installed} is installed, outside {requirement.specifier}"
        )


def test_the_graphql_core_internals_the_short_path_reads_keep_their_shape() -> None:
    from graphql.execution import Executor
    from graphql.execution.collect_fields import FieldDetails
    from graphql.execution.middleware import MiddlewareManager

    assert issubclass(LeafObjectExecutionContext, Executor), _revisit(
        "the execution context is no longer a graphql.execution.Executor"
    )
    between = LeafObjectExecutionContext.__mro__[
        1 : LeafObjectExecutionContext.__mro__.index(Executor)
    ]
    overriding = [kind.__qualname__ for kind in between if "execute_fields" in vars(kind)]
    assert overriding == [], _revisit(f"{overriding} override Executor.execute_fields")
    parameters = list(inspect.signature(Executor.execute_fields).parameters)
    assert parameters == [
        "self", "parent_type", "source_value", "path", "grouped_field_set", "position_context"
    ], _revisit(f"Executor.execute_fields takes {parameters}")  # fmt: skip
    assert "middlewares" in MiddlewareManager.__slots__, _revisit(
        "MiddlewareManager has no middlewares"
    )
    assert FieldDetails._fields[:2] == ("node", "defer_usage"), _revisit(
        f"FieldDetails holds {FieldDetails._fields}"
    )
    types = fast._schema.type_map
    leaves = [("Int", 3, 3), ("String", "Ada", "Ada"), ("Colour", Colour.RED, "RED")]
    for leaf, value, output in leaves:
        coerce = getattr(types[leaf], "coerce_output_value", None)
        assert coerce is not None, _revisit(f"the leaf type {leaf} has no coerce_output_value")
        assert coerce(value) == output, _revisit(f"{leaf}.coerce_output_value({value!r}) changed")


def test_the_strawberry_internals_the_short_path_reads_keep_their_shape() -> None:
    from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
    from strawberry.schema.schema_converter import GraphQLCoreConverter
    from strawberry.types.field import StrawberryField

    assert issubclass(LeafObjectExecutionContext, StrawberryGraphQLCoreExecutionContext)
    assert isinstance(inspect.getattr_static(StrawberryField, "is_basic_field"), property), (
        _revisit("StrawberryField.is_basic_field is no longer a property")
    )
    row = fast._schema.type_map["Row"]
    field = row.fields["id"]
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    assert isinstance(definition, StrawberryField) and definition.is_basic_field, _revisit(
        "a plain field's GraphQLField.extensions no longer holds its basic StrawberryField "
        "under GraphQLCoreConverter.DEFINITION_BACKREF"
    )
    assert field.resolve.__name__ == "_get_basic_result", _revisit(
        f"a plain field's resolver is {field.resolve.__name__}, not _get_basic_result"
    )
    parameters = inspect.signature(field.resolve).parameters
    assert [(p.name, p.kind.name) for p in parameters.values()] == [
        ("_source", "POSITIONAL_OR_KEYWORD"), ("args", "VAR_POSITIONAL"),
        ("kwargs", "VAR_KEYWORD"),
    ], _revisit(f"_get_basic_result takes {inspect.signature(field.resolve)}")  # fmt: skip
    assert field.resolve(ROWS[1], None) == 2, _revisit("_get_basic_result(source, None) changed")
    assert row.fields["shout"].resolve.__name__ != "_get_basic_result", _revisit(
        "a field with a resolver now gets _get_basic_result"
    )


def test_the_short_path_sees_strawberrys_context_as_it_expects() -> None:
    seen: list[tuple[Any, ...]] = []
    fields: list[str] = []

    class Probe(LeafObjectExecutionContext):
        def execute_fields(self, parent_type: Any, source_value: Any, path: Any,
                           grouped_field_set: Any, position_context: Any) -> Any:  # fmt: skip
            fields.append(parent_type.name)
            assert self.is_awaitable(source_value) is False, _revisit("is_awaitable changed")
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )

        def collect_subfields(self, return_type: Any, field_details_list: Any) -> Any:
            collected = super().collect_subfields(return_type, field_details_list)
            seen.append((return_type.name, self.middleware_manager, collected))
            return collected

    schema = strawberry.Schema(query=Query, execution_context_class=Probe)
    assert schema.execute_sync("{ rows { id } }").data == {"rows": [{"id": 1}, {"id": 2}]}

    # The list of rows is completed in one loop: its items never reach execute_fields.
    assert fields == ["Query"], _revisit(f"execute_fields is called for {fields}")
    assert [name for name, _, _ in seen] == ["Row"], _revisit(
        f"collect_subfields is called for {[name for name, _, _ in seen]}"
    )
    _, manager, collected = seen[0]
    assert len(collected) == 3, _revisit("collect_subfields no longer returns 3 things")
    grouped, deferred, _ = collected
    assert not deferred, _revisit("a selection without @defer now has deferred usages")
    assert manager is None or not manager.middlewares, _revisit(
        "Strawberry now runs a middleware with no extension asking for one"
    )
    (details,) = grouped["id"]
    assert (details.node.name.value, details.defer_usage) == ("id", None), _revisit(
        "the grouped field set no longer maps a response name to FieldDetails"
    )


def test_a_rendered_list_answers_its_own_selection_and_its_objects_answer_any_other() -> None:
    """A list whose JSON was written already (a nested page of hires on PostgreSQL) completes as
    itself for exactly its own selection, and the encoders write it; another selection (another
    order, another field, an alias) completes its objects as always."""
    result = fast.execute_sync("{ renderedTallies { label n } }")
    assert result.errors is None
    assert isinstance(result.data["renderedTallies"], execution.RenderedList)
    written = {"renderedTallies": [{"label": "a", "n": 1}, {"label": "b", "n": 2}]}
    assert orjson.loads(orjson.dumps(result.data, default=execution.encoded)) == written
    assert json.loads(json.dumps(result.data, default=execution.plain)) == written
    assert json.loads(encode_any({**result.data, "odd": "\ud800"})) == {**written, "odd": "\\ud800"}
    for query, expected in [
        ("{ renderedTallies { n label } }", [{"n": 1, "label": "a"}, {"n": 2, "label": "b"}]),
        ("{ renderedTallies { label m } }", [{"label": t.label, "m": t.m} for t in TALLIES]),
        ("{ renderedTallies { x: label n } }", [{"x": "a", "n": 1}, {"x": "b", "n": 2}]),
    ]:  # fmt: skip
        data, errors = answers(query)
        assert (data, errors) == ({"renderedTallies": expected}, [])
