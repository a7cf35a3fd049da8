"""GraphQL over HTTP: the answer's media type follows ``Accept``, and its status codes follow the
media type (``graph/negotiation.py``); graphql-http's server audits all pass against a live
server (the npm package pinned in ``tests/http_audit/``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from backend.auth import create_token
from backend.models import Batch, Job
from graph.negotiation import GRAPHQL_RESPONSE, JSON, negotiate, shape

GRAPHQL_RESPONSE_TYPE = "application/graphql-response+json; charset=utf-8"
RECOMMENDED = "application/graphql-response+json; charset=utf-8, application/json; charset=utf-8"
"""The ``Accept`` the spec recommends to clients: both, graphql-response+json first."""

AUDIT_DIR = Path(settings.BASE_DIR) / "tests" / "http_audit"
AUDITS = 61
"""graphql-http 1.23.1's server audits: 13 MUST, 23 SHOULD and 25 MAY."""
GRAPHQL_RESPONSE_AUDITS = {"22EB", "865D", "556A", "D586", "51FE", "74FF", "5E5B", "86EE"}
"""The SHOULDs about application/graphql-response+json that Roster failed before."""


def post(
    client: Client,
    body: dict[str, Any] | bytes,
    *,
    accept: str | None,
    token: str | None,
    content_type: str = "application/json",
):
    headers = {} if accept is None else {"Accept": accept}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post("/graphql", data=data, content_type=content_type, headers=headers)


@pytest.fixture
def jobs(db: None) -> None:
    Job.objects.bulk_create(Job(id=i, job=f"Job {i}") for i in (1, 2))


# --- negotiation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("application/json", JSON),
        ("application/json; charset=utf-8", JSON),
        ("application/graphql-response+json", GRAPHQL_RESPONSE),
        ("Application/GraphQL-Response+JSON", GRAPHQL_RESPONSE),
        (RECOMMENDED, GRAPHQL_RESPONSE),
        ("application/graphql-response+json, application/json;q=0.9", GRAPHQL_RESPONSE),
        ("application/json;q=0.5, application/graphql-response+json", GRAPHQL_RESPONSE),
        ("application/json, application/graphql-response+json", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", JSON),
        ("*/*, application/graphql-response+json", GRAPHQL_RESPONSE),
        ("*/*;q=0.8, application/graphql-response+json;q=0.5", JSON),
        ("application/graphql-response+json;q=0, */*", JSON),
        ("application/json;q=0, */*", GRAPHQL_RESPONSE),
        ("application/graphql-response+json;q=nope, application/json", JSON),
        ("not a media type", JSON),
        ("text/html", None),
        ("text/plain, image/*", None),
        ("application/json;q=0", None),
        ("application/json;q=0, application/graphql-response+json;q=0.000", None),
    ],
)
def test_negotiate_picks_the_media_type_the_client_prefers(
    accept: str | None, expected: str | None
) -> None:
    assert negotiate(accept) == expected


# --- application/graphql-response+json: 400 and no data for a request that cannot run --------


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"query": "{ jobs("}, "GRAPHQL_PARSE_FAILED", "Syntax Error: Expected Name, found <EOF>."),
        (
            {"query": "{ jobs { nope } }"},
            "GRAPHQL_VALIDATION_FAILED",
            "Cannot query field 'nope' on type 'JobConnection'. Did you mean 'nodes'?",
        ),
        (
            {"query": "{ " + " ".join(f"a{i}: jobs {{ totalCount }}" for i in range(16)) + " }"},
            "QUERY_TOO_COMPLEX",
            "16 aliases found. Allowed: 15",
        ),
        (
            {"query": "query($n: Int!) { jobs(first: $n) { totalCount } }", "variables": {}},
            "BAD_USER_INPUT",
            "Variable '$n' has invalid value:"
            " Expected a value of non-null type 'Int!' to be provided.",
        ),
        (
            {"query": "query($n: Int) { jobs(first: $n) { totalCount } }", "variables": {"n": "x"}},
            "BAD_USER_INPUT",
            "Variable '$n' has invalid value: Int cannot represent non-integer value: 'x'",
        ),
    ],
    ids=["parse", "validation", "query-limit", "missing-variable", "variable-coercion"],
)
def test_graphql_response_json_answers_a_request_that_cannot_run_400_without_data(
    client: Client, tokens, jobs, body: dict[str, Any], code: str, message: str
) -> None:
    response = post(client, body, accept=GRAPHQL_RESPONSE, token=tokens["read"])
    assert response.status_code == 400
    assert response["Content-Type"] == GRAPHQL_RESPONSE_TYPE
    answer = response.json()
    assert set(answer) == {"errors"}
    assert [(e["message"], e["extensions"]["code"]) for e in answer["errors"]] == [(message, code)]


def test_graphql_response_json_answers_a_query_200_with_data(client: Client, tokens, jobs) -> None:
    response = post(
        client, {"query": "{ jobs { totalCount } }"}, accept=RECOMMENDED, token=tokens["read"]
    )
    assert response.status_code == 200
    assert response["Content-Type"] == GRAPHQL_RESPONSE_TYPE
    assert response.json() == {"data": {"jobs": {"totalCount": 2}}}


def test_graphql_response_json_answers_a_field_error_200_with_data(
    client: Client, tokens, jobs
) -> None:
    """The request ran: a field's error (here a resolver's refusal) is a GraphQL response."""
    response = post(
        client,
        {"query": "{ jobs(first: 1001) { totalCount } }"},
        accept=GRAPHQL_RESPONSE,
        token=tokens["read"],
    )
    assert response.status_code == 200
    assert response["Content-Type"] == GRAPHQL_RESPONSE_TYPE
    assert response.json() == {
        "data": None,
        "errors": [
            {
                "message": "'first' must be between 0 and 1000, got 1001",
                "locations": [{"line": 1, "column": 3}],
                "path": ["jobs"],
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ],
    }


def test_graphql_response_json_answers_a_mutation_out_of_scope_200_and_stores_nothing(
    client: Client, tokens, jobs
) -> None:
    mutation = 'mutation { insertBatch(input: {jobs: [{id: 9, job: "x"}]}) { inserted } }'
    response = post(client, {"query": mutation}, accept=GRAPHQL_RESPONSE, token=tokens["read"])
    assert response.status_code == 200
    answer = response.json()
    assert answer["data"] is None
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["FORBIDDEN"]
    assert answer["errors"][0]["path"] == ["insertBatch"]
    assert (Job.objects.count(), Batch.objects.count()) == (2, 0)


def test_graphql_response_json_over_get(client: Client, tokens, jobs) -> None:
    headers = {"Accept": GRAPHQL_RESPONSE, "Authorization": f"Bearer {tokens['read']}"}
    query = client.get("/graphql", {"query": "{ jobs { totalCount } }"}, headers=headers)
    assert (query.status_code, query["Content-Type"]) == (200, GRAPHQL_RESPONSE_TYPE)
    assert query.json() == {"data": {"jobs": {"totalCount": 2}}}

    mutation = client.get("/graphql", {"query": "mutation { __typename }"}, headers=headers)
    assert (mutation.status_code, mutation["Content-Type"]) == (400, GRAPHQL_RESPONSE_TYPE)
    assert mutation.json() == {
        "errors": [
            {
                "message": "mutations are not allowed when using GET",
                "extensions": {"code": "BAD_REQUEST"},
            }
        ]
    }


# --- Roster's own refusals keep their status, in the negotiated media type ---------------------


@pytest.mark.parametrize(
    ("body", "token", "content_type", "status", "code"),
    [
        ({"query": "{ jobs { totalCount } }"}, None, "application/json", 401, "UNAUTHENTICATED"),
        ({"query": "{ jobs { totalCount } }"}, "rst_nope", "application/json", 401,
         "UNAUTHENTICATED"),
        (b'{"query": ', "read", "application/json", 400, "BAD_REQUEST"),
        ({"qeury": "{ jobs { totalCount } }"}, "read", "application/json", 400, "BAD_REQUEST"),
        ({"query": "{ jobs { totalCount } }"}, "read", "text/plain", 400, "BAD_REQUEST"),
    ],
    ids=["no-token", "bad-token", "not-json", "no-query", "not-a-json-body"],
)  # fmt: skip
@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, JSON])
def test_refusals_keep_their_status_and_carry_data_only_in_application_json(
    client: Client,
    tokens,
    jobs,
    accept: str,
    body: dict[str, Any] | bytes,
    token: str | None,
    content_type: str,
    status: int,
    code: str,
) -> None:
    bearer = tokens.get(token, token) if token else None  # a scope's token, or this one
    response = post(client, body, accept=accept, token=bearer, content_type=content_type)
    assert response.status_code == status
    answer = response.json()
    assert [e["extensions"]["code"] for e in answer["errors"]] == [code]
    if accept == GRAPHQL_RESPONSE:
        assert response["Content-Type"] == GRAPHQL_RESPONSE_TYPE
        assert set(answer) == {"errors"}
    else:
        assert response["Content-Type"] == "application/json"
        assert set(answer) == {"data", "errors"}
        assert answer["data"] is None
    if status == 401:
        assert response["WWW-Authenticate"] == 'Bearer realm="roster"'


@pytest.mark.parametrize("accept", ["text/html", "application/json;q=0", "image/*"])
def test_an_accept_allowing_neither_media_type_is_406_in_json(
    client: Client, tokens, jobs, accept: str
) -> None:
    response = post(client, {"query": "{ jobs { totalCount } }"}, accept=accept, token=None)
    assert response.status_code == 406
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "data": None,
        "errors": [
            {
                "message": "the Accept header allows neither application/graphql-response+json"
                " nor application/json",
                "extensions": {"code": "NOT_ACCEPTABLE"},
            }
        ],
    }


def test_an_outage_under_graphql_response_json_keeps_503_and_drops_partial_data() -> None:
    """The spec keeps data for 2xx answers: a resolver's lost database (503) sends none."""
    error = {"message": "down", "path": ["jobs"], "extensions": {"code": "SERVICE_UNAVAILABLE"}}
    answer = {"data": {"departments": {"totalCount": 3}, "jobs": None}, "errors": [error]}
    assert shape(answer, 503, GRAPHQL_RESPONSE) == ({"errors": [error]}, 503)
    assert shape(answer, 503, JSON) == (answer, 503)
    assert shape(answer, None, GRAPHQL_RESPONSE) == (answer, 200)
    assert shape({"data": None, "errors": [error]}, None, GRAPHQL_RESPONSE)[1] == 200


# --- application/json: the answers clients had before, unchanged -------------------------------


@pytest.mark.parametrize("accept", [None, JSON, "*/*", "application/json, " + GRAPHQL_RESPONSE])
@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("{ jobs(", "GRAPHQL_PARSE_FAILED"),
        ("{ jobs { nope } }", "GRAPHQL_VALIDATION_FAILED"),
        ("query($n: Int!) { jobs(first: $n) { totalCount } }", "BAD_USER_INPUT"),
        ("{ jobs(first: 1001) { totalCount } }", "BAD_USER_INPUT"),
    ],
    ids=["parse", "validation", "variables", "field"],
)
def test_application_json_answers_every_graphql_error_200_with_null_data(
    client: Client, tokens, jobs, accept: str | None, query: str, code: str
) -> None:
    response = post(client, {"query": query}, accept=accept, token=tokens["read"])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    answer = response.json()
    assert answer["data"] is None
    assert [e["extensions"]["code"] for e in answer["errors"]] == [code]


@pytest.mark.parametrize("accept", [None, JSON, "*/*"])
def test_application_json_answers_a_query_as_before(
    client: Client, tokens, jobs, accept: str | None
) -> None:
    response = post(
        client, {"query": "{ jobs { totalCount } }"}, accept=accept, token=tokens["read"]
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.content == b'{"data":{"jobs":{"totalCount":2}}}'


# --- graphql-http's server audits, against a live server --------------------------------------


@pytest.fixture(scope="session")
def audit_script() -> Path:
    """``tests/http_audit/audit.mjs``, with graphql-http installed at the lockfile's versions.

    Node.js and npm are part of the test set-up: a machine without them fails here.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "the graphql-http audit needs Node.js and npm (apt-get install npm)"
    pinned = json.loads((AUDIT_DIR / "package.json").read_text())["dependencies"]
    installed = AUDIT_DIR / "node_modules" / "graphql-http" / "package.json"
    if (
        not installed.exists()
        or json.loads(installed.read_text())["version"] != pinned["graphql-http"]
    ):
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=AUDIT_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"npm ci:\n{done.stdout}{done.stderr}"
    return AUDIT_DIR / "audit.mjs"


@pytest.mark.django_db(transaction=True)
def test_graphql_http_server_audits_all_pass(live_server, audit_script: Path) -> None:
    token = create_token(name="http-audit", scope="admin")
    url = f"http://127.0.0.1:{live_server.thread.port}/graphql"
    done = subprocess.run(
        ["node", str(audit_script), url],
        cwd=AUDIT_DIR,
        env={**os.environ, "ROSTER_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"the audit did not run:\n{done.stdout}{done.stderr}"
    results = json.loads(done.stdout)
    failing = [
        f"{r['id']} {r['name']}: {r['status']}, {r['reason']}"
        for r in results
        if r["status"] != "ok"
    ]
    assert not failing, "audits not ok:\n" + "\n".join(failing)
    assert len(results) == AUDITS
    assert {r["id"] for r in results} >= GRAPHQL_RESPONSE_AUDITS
