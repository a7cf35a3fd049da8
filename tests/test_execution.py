"""The short path for leaf-only objects answers exactly what graphql-core's own path answers."""

from __future__ import annotations

import enum
from typing import Any

import pytest
import strawberry

from graph.execution import LeafObjectExecutionContext


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
class Query:
    @strawberry.field
    def odd(self) -> list[Odd | None]:
        return ODD

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
