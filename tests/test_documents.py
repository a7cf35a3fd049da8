"""graph/documents.py: a document is parsed and validated once per process, while the limits
that read the request (its variables, the settings) are checked at every request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import strawberry.schema.schema as strawberry_schema

from graph import documents, errors
from graph.documents import MAX_DOCUMENT_CHARS, MAX_DOCUMENTS, document_cache

NESTED = """
query($n: Int!) {
  departments(first: $n) { nodes { hiredEmployees(first: 1000) { nodes { id } } } }
}
"""
"""Estimated rows: 1 + 1,002 n; the limit (50,000) passes n = 1 and refuses n = 100."""


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """How many times Strawberry parsed and validated a document, from an empty cache."""
    document_cache.clear()
    counts = {"parse": 0, "validate": 0}

    def counted(name: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(strawberry_schema, "parse", counted("parse", strawberry_schema.parse))
    validate = strawberry_schema.validate_document
    monkeypatch.setattr(strawberry_schema, "validate_document", counted("validate", validate))
    yield counts
    document_cache.clear()


def test_a_known_document_is_parsed_and_validated_once(gql, steps) -> None:
    for _ in range(3):
        assert gql("{ jobs { totalCount } }").data == {"jobs": {"totalCount": 0}}
    assert steps == {"parse": 1, "validate": 1}


def test_a_known_document_gets_the_limits_of_each_request_s_variables(gql, steps) -> None:
    assert gql(NESTED, {"n": 1}).errors == []
    refused = gql(NESTED, {"n": 100})
    assert refused.data is None
    assert refused.codes == ["QUERY_TOO_COMPLEX"]
    assert "may read about 100201 rows; the limit is 50000" in refused.errors[0]["message"]
    assert gql(NESTED, {"n": 1}).errors == []
    # a refused request is validated in full, as the first time: the same answer
    document_cache.clear()
    assert gql(NESTED, {"n": 100}).body == refused.body
    assert steps["validate"] == 3  # the first request, and the two refused ones


def test_a_known_document_gets_the_limits_of_the_settings_at_each_request(
    gql, steps, settings
) -> None:
    query = "{ departments { nodes { id } } }"
    assert gql(query).errors == []
    settings.GRAPHQL_MAX_DEPTH = 1
    assert gql(query).codes == ["QUERY_TOO_COMPLEX"]
    settings.GRAPHQL_MAX_DEPTH = 8
    settings.GRAPHQL_MAX_TOKENS = 3  # the parser's option: a document of its own
    assert gql(query).codes == ["QUERY_TOO_COMPLEX"]


def test_a_refused_document_is_validated_again_with_the_same_errors(gql, steps) -> None:
    answers = [gql("{ jobs { totalCount salary } }").body for _ in range(2)]
    assert answers[0] == answers[1]
    assert [e["extensions"]["code"] for e in answers[0]["errors"]] == ["GRAPHQL_VALIDATION_FAILED"]
    assert steps == {"parse": 1, "validate": 2}


def test_a_document_that_does_not_parse_is_not_kept(gql, steps) -> None:
    for _ in range(2):
        assert gql("{ jobs { totalCount }").codes == ["GRAPHQL_PARSE_FAILED"]
    assert steps == {"parse": 2, "validate": 0}


def test_the_cache_keeps_small_documents_and_a_bounded_number_of_them(gql, steps) -> None:
    padded = "{ jobs { totalCount } }" + " " * MAX_DOCUMENT_CHARS
    for _ in range(2):
        assert gql(padded).errors == []
    assert steps == {"parse": 2, "validate": 2}
    for n in range(MAX_DOCUMENTS + 3):
        assert gql(f"{{ jobs(first: {n}) {{ totalCount }} }}").errors == []
    assert len(documents.document_cache._documents) == MAX_DOCUMENTS


def test_requests_keep_no_validation_rule_of_their_own(gql, steps) -> None:
    gql(NESTED, {"n": 1})
    kept = len(errors._CODED_RULES)
    for n in range(1, 5):
        gql(NESTED, {"n": n})
    assert len(errors._CODED_RULES) == kept
