"""Malformed request bodies answer 400 in JSON, on /graphql and on the REST routes, and store
nothing; input that does not fit the schema fails the whole request with BAD_USER_INPUT."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from backend.models import Batch, Job, Rejection

QUERY = '{"query": "{ jobs { totalCount } }"}'

# (id, body, message): each body is malformed for both doors.
MALFORMED = [
    (
        "invalid-utf8",
        b'{"query": "{ jobs { totalCount } }", "x": "\xff"}',
        "it must be UTF-8 (byte 43 is not): invalid start byte",
    ),
    (
        "utf16-with-bom",
        QUERY.encode("utf-16"),
        "it must be UTF-8 (byte 0 is not): invalid start byte",
    ),
    (
        "utf16-without-bom",
        QUERY.encode("utf-16-le"),
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
    ),
    ("utf8-bom", b"\xef\xbb\xbf" + QUERY.encode(), "it must not start with a byte-order mark"),
    (
        "long-integer",
        b'{"query": "{ jobs { totalCount } }", "variables": {"n": ' + b"7" * 4301 + b"}}",
        "Exceeds the limit (4300 digits) for integer string conversion: value has 4301 digits;"
        " use sys.set_int_max_str_digits() to increase the limit",
    ),
    (
        "nan",
        b'{"query": "{ jobs { totalCount } }", "variables": {"n": NaN}}',
        "NaN is not a JSON value",
    ),
    ("too-deep", b'{"variables": ' + b"[" * 100_000, "it is nested too deeply"),
]


def post(
    client: Client, path: str, body: bytes, token: str, content_type: str = "application/json"
):
    return client.post(
        path, data=body, content_type=content_type, headers={"Authorization": f"Bearer {token}"}
    )


def bad_request(message: str) -> dict[str, Any]:
    return {"data": None, "errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]}


@pytest.fixture
def jobs(db: None) -> None:
    Job.objects.bulk_create(Job(id=i, job=f"Job {i}") for i in (1, 2))


def nothing_stored() -> bool:
    return (
        Batch.objects.count() == 0 and Rejection.objects.count() == 0 and Job.objects.count() == 2
    )


# --- /graphql ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_graphql_malformed_json_body_is_400_bad_request(
    client: Client, tokens, jobs, body: bytes, reason: str
) -> None:
    response = post(client, "/graphql", body, tokens["write"])
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == bad_request(f"Unable to parse request body as JSON: {reason}")
    assert nothing_stored()


SHAPE = "The body must be a JSON object with a 'query', got"
JOBS = b'"query": "query A { jobs { totalCount } }"'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"null", f"{SHAPE} null."),
        (b"12", f"{SHAPE} a number."),
        (b'"{ jobs { totalCount } }"', f"{SHAPE} a string."),
        (b"true", f"{SHAPE} a boolean."),
        (b"[" + QUERY.encode() + b"]", f"{SHAPE} an array."),
        (b'{"query": 5}', "'query' must be a string or null."),
        (b"{" + JOBS + b', "variables": []}', "'variables' must be an object or null."),
        (b"{" + JOBS + b', "extensions": "x"}', "'extensions' must be an object or null."),
        (b"{" + JOBS + b', "operationName": 7}', "'operationName' must be a string or null."),
        (
            b"{" + JOBS + b', "operationName": "A\\ud800"}',
            "'operationName' must be text (it holds a lone surrogate).",
        ),
        (b"{}", "No GraphQL query found in the request"),
    ],
    ids=[
        "null", "number", "string", "boolean", "array", "query-number", "variables-array",
        "extensions-string", "operation-name-number", "operation-name-lone-surrogate", "no-query",
    ],
)  # fmt: skip
def test_graphql_body_of_the_wrong_shape_is_400_bad_request(
    client: Client, tokens, jobs, body: bytes, message: str
) -> None:
    response = post(client, "/graphql", body, tokens["write"])
    assert response.status_code == 400
    assert response.json() == bad_request(message)
    assert nothing_stored()


def test_graphql_unknown_operation_name_is_400_bad_request(client: Client, tokens, jobs) -> None:
    body = b'{"query": "query A { jobs { totalCount } }", "operationName": "\xc3\xa9B"}'
    response = post(client, "/graphql", body, tokens["read"])
    assert response.status_code == 400
    assert response.json() == bad_request('Unknown operation named "\u00e9B".')


def test_graphql_body_of_another_content_type_is_400_bad_request(
    client: Client, tokens, jobs
) -> None:
    response = post(client, "/graphql", QUERY.encode(), tokens["read"], content_type="text/plain")
    assert response.status_code == 400
    assert response.json() == bad_request("Unsupported content type")


def test_graphql_get_with_malformed_variables_is_400_bad_request(
    client: Client, tokens, jobs
) -> None:
    response = client.get(
        "/graphql",
        {"query": "query($n: Int) { jobs(first: $n) { totalCount } }", "variables": "{"},
        headers={"Authorization": f"Bearer {tokens['read']}"},
    )
    assert response.status_code == 400
    assert response.json() == bad_request("Unable to parse request body as JSON")


def test_graphql_other_methods_are_405_in_json(client: Client, tokens, jobs) -> None:
    response = client.put(
        "/graphql", data=QUERY, content_type="application/json",
        headers={"Authorization": f"Bearer {tokens['write']}"},
    )  # fmt: skip
    assert response.status_code == 405
    assert response.json() == {
        "data": None,
        "errors": [
            {
                "message": "GraphQL only supports GET and POST requests.",
                "extensions": {"code": "METHOD_NOT_ALLOWED"},
            }
        ],
    }


def test_graphql_a_well_formed_body_still_works(client: Client, tokens, jobs) -> None:
    response = post(client, "/graphql", QUERY.encode(), tokens["read"])
    assert response.status_code == 200
    assert response.json() == {"data": {"jobs": {"totalCount": 2}}}


# --- REST -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_rest_malformed_json_body_is_400(
    client: Client, tokens, jobs, body: bytes, reason: str
) -> None:
    response = post(client, "/api/employees/", body, tokens["write"])
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"message": f"the body is not valid JSON: {reason}"}
    assert nothing_stored()


@pytest.mark.parametrize(
    "body", [b"null", b"12", b'"jobs"', b"true"], ids=["null", "number", "string", "boolean"]
)
def test_rest_body_that_is_not_an_object_is_400(client: Client, tokens, jobs, body: bytes) -> None:
    response = post(client, "/api/employees/", body, tokens["write"])
    assert response.status_code == 400
    assert response.json() == {
        "message": "the body must be a JSON object with 'destination_table' and 'data'"
    }
    assert nothing_stored()


def test_rest_lone_surrogate_in_the_table_name_is_400(client: Client, tokens, jobs) -> None:
    body = b'{"destination_table": "jobs\\ud800", "data": [{"id": 5, "job": "x"}]}'
    response = post(client, "/api/employees/", body, tokens["write"])
    assert response.status_code == 400
    assert response.json() == {
        "message": "'destination_table' must be one of: departments, jobs, hired_employees; "
        "got 'jobs\\ud800'"
    }
    assert nothing_stored()


# --- inputs that do not fit the schema: the whole request fails, BAD_USER_INPUT ---------------

INVALID = "Variable '$rows' has invalid value at [0].id:"
INSERT = """
mutation($rows: [JobInput!]!) {
  insertBatch(input: {jobs: $rows}) { inserted rejected }
}
"""


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"12"', 'Int cannot represent non-integer value: "12"'),
        ("2147483648", "Int cannot represent non 32-bit signed integer value: 2147483648"),
        ("1.5", "Int cannot represent non-integer value: 1.5"),
    ],
    ids=["string", "over-32-bits", "float"],
)
def test_a_literal_the_schema_refuses_is_bad_user_input(
    gql, jobs, value: str, message: str
) -> None:
    answer = gql(
        f'mutation {{ insertBatch(input: {{jobs: [{{id: {value}, job: "x"}}]}}) {{ inserted }} }}'
    )
    assert answer.data is None
    assert [e["message"] for e in answer.errors] == [message]
    assert answer.codes == ["BAD_USER_INPUT"]
    assert nothing_stored()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("12", f"{INVALID} Int cannot represent non-integer value: '12'"),
        (
            2147483648,
            f"{INVALID} Int cannot represent non 32-bit signed integer value: 2147483648",
        ),
        (
            10**30,
            f"{INVALID} Int cannot represent non 32-bit signed integer value: {10**30}",
        ),
    ],
    ids=["string", "over-32-bits", "31-digits"],
)
def test_a_variable_the_schema_refuses_is_bad_user_input(
    gql, jobs, value: Any, message: str
) -> None:
    answer = gql(INSERT, {"rows": [{"id": value, "job": "x"}]})
    assert answer.status == 200
    assert answer.data is None
    assert [e["message"] for e in answer.errors] == [message]
    assert answer.codes == ["BAD_USER_INPUT"]
    assert nothing_stored()


def test_a_oneof_input_with_two_tables_is_bad_user_input(gql, jobs) -> None:
    literal = gql(
        "mutation { insertBatch(input: {jobs: [{id: 5}], departments: [{id: 5}]}) { inserted } }"
    )
    variable = gql(
        "mutation($input: BatchInput!) { insertBatch(input: $input) { inserted } }",
        {"input": {"jobs": [{"id": 5}], "departments": [{"id": 5}]}},
    )
    for answer in (literal, variable):
        assert answer.data is None
        assert answer.codes == ["BAD_USER_INPUT"]
        assert "must specify exactly one key" in answer.errors[0]["message"]
    assert nothing_stored()


def test_a_missing_required_argument_is_bad_user_input(gql, jobs) -> None:
    answer = gql("{ hiresByQuarter { q1 } }", scope="read")
    assert answer.codes == ["BAD_USER_INPUT"]
    assert answer.errors[0]["message"] == (
        "Argument 'Query.hiresByQuarter(year:)' of type 'Int!' is required, "
        "but it was not provided."
    )


def test_null_for_a_page_size_is_bad_user_input(gql, jobs) -> None:
    answer = gql("query($n: Int) { jobs(first: $n) { totalCount } }", {"n": None}, scope="read")
    assert answer.data is None
    assert answer.codes == ["BAD_USER_INPUT"]
    assert answer.errors[0]["message"].startswith("Argument 'first' has invalid value")


def test_documents_that_are_not_graphql_or_do_not_fit_have_their_codes(gql, jobs) -> None:
    assert gql("{ jobs(", scope="read").codes == ["GRAPHQL_PARSE_FAILED"]
    assert gql("{ jobs { nope } }", scope="read").codes == ["GRAPHQL_VALIDATION_FAILED"]
    assert json.dumps(gql("{ jobs { nope } }", scope="read").body).count("stacktrace") == 0
