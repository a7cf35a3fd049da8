"""Tokens, scopes and staff sessions on /graphql, and the create_token command."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from backend import auth
from backend.auth import NO_SCOPE_MESSAGE, session_scope
from backend.models import ApiToken, Batch, Job, Rejection

READ = "{ jobs { totalCount nodes { id job } } }"
WRITE = 'mutation { insertBatch(input: {jobs: [{id: 7, job: "Seven"}]}) { inserted } }'
UNAUTHENTICATED_HINT = "send 'Authorization: Bearer <token>'"


def post_graphql(client: Client, query: str, **headers: str):
    return client.post(
        "/graphql",
        data=json.dumps({"query": query}),
        content_type="application/json",
        headers=headers,
    )


def assert_unauthenticated(response) -> None:
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="roster"'
    body = response.json()
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
    assert UNAUTHENTICATED_HINT in body["errors"][0]["message"]


# --- tokens on /graphql ----------------------------------------------------------------------


def test_no_token_is_401_unauthenticated(client, db) -> None:
    assert_unauthenticated(post_graphql(client, READ))


def test_no_token_on_a_get_query_is_401(client, db) -> None:
    assert_unauthenticated(client.get("/graphql", {"query": READ}))


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer rst_not-a-real-token", "the token is not valid"),
        ("Token rst_x", "the Authorization header must be 'Bearer <token>'"),
        ("Bearer", "the Authorization header must be 'Bearer <token>'"),
        ("Bearer    ", "the Authorization header must be 'Bearer <token>'"),
        ("Basic dXNlcjpwdw==", "the Authorization header must be 'Bearer <token>'"),
    ],
)
def test_bad_or_malformed_authorization_is_401(client, tokens, header: str, message: str) -> None:
    response = post_graphql(client, READ, Authorization=header)
    assert_unauthenticated(response)
    assert response.json()["errors"][0]["message"].startswith(message)


def test_bad_token_cannot_write(client, tokens) -> None:
    response = post_graphql(client, WRITE, Authorization=f"Bearer {tokens['write']}x")
    assert_unauthenticated(response)
    assert Job.objects.count() == 0
    assert Batch.objects.count() == 0


def test_bearer_is_case_insensitive(client, tokens) -> None:
    response = post_graphql(client, READ, Authorization=f"bearer {tokens['read']}")
    assert response.status_code == 200
    assert response.json() == {"data": {"jobs": {"totalCount": 0, "nodes": []}}}


def test_read_token_reads(gql, db) -> None:
    Job.objects.create(id=1, job="Clerk")
    answer = gql(READ, scope="read")
    assert answer.status == 200
    assert answer.data == {"jobs": {"totalCount": 1, "nodes": [{"id": 1, "job": "Clerk"}]}}


def test_read_token_cannot_insert(gql, db) -> None:
    answer = gql(WRITE, scope="read")
    assert answer.status == 200
    assert answer.data is None
    assert answer.codes == ["FORBIDDEN"]
    assert answer.errors[0]["message"] == "this operation needs the 'write' scope"
    assert Job.objects.count() == 0
    assert Batch.objects.count() == 0
    assert Rejection.objects.count() == 0


@pytest.mark.parametrize("scope", ["write", "admin"])
def test_write_and_admin_tokens_read_and_write(gql, db, scope: str) -> None:
    assert gql(WRITE, scope=scope).data == {"insertBatch": {"inserted": 1}}
    assert gql(READ, scope=scope).data == {
        "jobs": {"totalCount": 1, "nodes": [{"id": 7, "job": "Seven"}]}
    }
    assert Job.objects.get(id=7).job == "Seven"
    assert gql("{ rejections { totalCount } }", scope=scope).data == {
        "rejections": {"totalCount": "0"}  # a BigInt: the log's ids are 64-bit
    }


def test_token_use_is_recorded(gql, tokens) -> None:
    assert ApiToken.objects.get(name="test-read").last_used_at is None
    gql(READ, scope="read")
    assert ApiToken.objects.get(name="test-read").last_used_at is not None
    assert ApiToken.objects.get(name="test-write").last_used_at is None


def test_deleted_token_stops_working(gql, tokens) -> None:
    assert gql(READ, scope="read").status == 200
    ApiToken.objects.filter(name="test-read").delete()
    answer = gql(READ, scope="read")
    assert answer.status == 401
    assert answer.codes == ["UNAUTHENTICATED"]


# --- the process's token cache (TOKEN_CACHE_SECONDS) -----------------------------------------

TYPENAME = "{ __typename }"


def delete_as_another_process(name: str) -> None:
    """What another worker, a manage.py run or psql does: this process hears nothing of it."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM api_tokens WHERE name = %s", [name])
    assert not ApiToken.objects.filter(name=name).exists()


def test_a_known_token_costs_no_query(gql, tokens) -> None:
    assert gql(TYPENAME, scope="read").status == 200  # looked up, and its use recorded
    with CaptureQueriesContext(connection) as queries:
        assert gql(TYPENAME, scope="read").data == {"__typename": "Query"}
    assert queries.captured_queries == []


def test_a_token_deleted_by_another_process_is_refused_within_the_cache_bound(
    gql, tokens, monkeypatch, settings
) -> None:
    assert settings.TOKEN_CACHE_SECONDS == 5
    assert gql(TYPENAME, scope="read").status == 200
    delete_as_another_process("test-read")
    start = auth._clock()
    monkeypatch.setattr(auth, "_clock", lambda: start + 4.9)
    assert gql(TYPENAME, scope="read").status == 200  # still within the bound
    monkeypatch.setattr(auth, "_clock", lambda: start + 5.0)
    answer = gql(TYPENAME, scope="read")
    assert (answer.status, answer.codes) == (401, ["UNAUTHENTICATED"])


def test_with_token_cache_seconds_0_a_deleted_token_is_refused_at_once(
    gql, tokens, settings
) -> None:
    settings.TOKEN_CACHE_SECONDS = 0
    assert gql(TYPENAME, scope="read").status == 200
    delete_as_another_process("test-read")
    assert gql(TYPENAME, scope="read").status == 401


@pytest.mark.parametrize("how", ["queryset", "instance", "create_token --replace"])
def test_a_token_revoked_in_this_process_is_refused_at_once(gql, tokens, how: str) -> None:
    assert gql(TYPENAME, scope="read").status == 200
    if how == "queryset":
        ApiToken.objects.filter(name="test-read").delete()
    elif how == "instance":
        ApiToken.objects.get(name="test-read").delete()
    else:
        create_token("test-read", "--replace")
    answer = gql(TYPENAME, scope="read")
    assert (answer.status, answer.codes) == (401, ["UNAUTHENTICATED"])


def test_a_token_changed_in_this_process_answers_with_its_new_scope_at_once(gql, tokens) -> None:
    assert gql(WRITE, scope="write").data == {"insertBatch": {"inserted": 1}}
    record = ApiToken.objects.get(name="test-write")
    record.scope = "read"
    record.save()
    answer = gql(WRITE, scope="write")
    assert answer.codes == ["FORBIDDEN"]


def test_a_known_token_records_its_use_at_most_once_a_minute(gql, tokens, monkeypatch) -> None:
    gql(TYPENAME, scope="read")
    first = ApiToken.objects.get(name="test-read").last_used_at
    assert first is not None
    gql(TYPENAME, scope="read")
    assert ApiToken.objects.get(name="test-read").last_used_at == first
    later = first + timedelta(minutes=1, seconds=1)
    monkeypatch.setattr(auth.timezone, "now", lambda: later)
    gql(TYPENAME, scope="read")
    assert ApiToken.objects.get(name="test-read").last_used_at == later


def test_the_token_cache_keeps_only_tokens_that_exist_and_stays_bounded(
    gql, tokens, monkeypatch
) -> None:
    auth.token_cache.clear()
    for n in range(3):
        assert gql(TYPENAME, token=f"rst_guess{n}").status == 401
    assert auth.token_cache.get(auth.hash_token("rst_guess0"), auth._clock()) is None
    monkeypatch.setattr(auth.TokenCache, "MAX_TOKENS", 2)
    for scope in ("read", "write", "admin"):
        assert gql(TYPENAME, scope=scope).status == 200
    assert len(auth.token_cache._tokens) <= 2


# --- staff sessions --------------------------------------------------------------------------


@pytest.fixture
def staff_client(db: None) -> tuple[Client, str]:
    """A browser logged in as a superuser, with the CSRF token its cookie holds."""
    client = Client(enforce_csrf_checks=True)
    # No password: force_login needs none, and hashing one takes seconds.
    user = User.objects.create_superuser("boss", "boss@example.com", password=None)
    client.force_login(user)
    assert client.get("/admin/").status_code == 200  # sets the csrftoken cookie
    return client, client.cookies["csrftoken"].value


def test_staff_session_with_csrf_token_reads_and_writes(staff_client) -> None:
    client, csrf = staff_client
    response = post_graphql(client, WRITE, **{"X-CSRFToken": csrf})
    assert response.status_code == 200
    assert response.json() == {"data": {"insertBatch": {"inserted": 1}}}
    response = post_graphql(client, READ, **{"X-CSRFToken": csrf})
    assert response.json() == {
        "data": {"jobs": {"totalCount": 1, "nodes": [{"id": 7, "job": "Seven"}]}}
    }
    assert Batch.objects.get().source == "graphql"


def test_staff_session_post_without_csrf_token_is_403(staff_client) -> None:
    client, _ = staff_client
    response = post_graphql(client, WRITE)
    assert response.status_code == 403
    assert response.json() == {
        "data": None,
        "errors": [
            {"message": "CSRF check failed for this session", "extensions": {"code": "FORBIDDEN"}}
        ],
    }
    assert Job.objects.count() == 0
    assert Batch.objects.count() == 0


def test_staff_session_post_with_a_wrong_csrf_token_is_403(staff_client) -> None:
    client, csrf = staff_client
    response = post_graphql(client, WRITE, **{"X-CSRFToken": "x" * len(csrf)})
    assert response.status_code == 403
    assert Job.objects.count() == 0


def test_staff_session_get_query_needs_no_csrf_token(staff_client) -> None:
    client, _ = staff_client
    response = client.get("/graphql", {"query": READ})
    assert response.status_code == 200
    assert response.json() == {"data": {"jobs": {"totalCount": 0, "nodes": []}}}


def test_staff_session_cannot_mutate_over_get(staff_client) -> None:
    """A GET skips the CSRF check, so it must never run a mutation."""
    client, _ = staff_client
    response = client.get("/graphql", {"query": WRITE})
    assert response.status_code == 400
    # The body is plain text or, with the JSON errors of graph/views.py, a GraphQL error.
    assert "mutations are not allowed when using GET" in response.content.decode()
    assert Job.objects.count() == 0
    assert Batch.objects.count() == 0


def test_non_staff_session_is_401(db) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_user("someone"))
    assert_unauthenticated(client.get("/graphql", {"query": READ}))


# --- what a staff session may do: Django decides, through groups ----------------------------

ADMIN_ONLY = "{ backups(table: JOBS) { key } }"


def staff_session(*groups: str, superuser: bool = False, staff: bool = True) -> tuple[Client, str]:
    """A browser logged in as a user in ``groups``, with the CSRF token its cookie holds."""
    user = User.objects.create_user("clerk", is_staff=staff, is_superuser=superuser)
    user.groups.set([Group.objects.get_or_create(name=name)[0] for name in groups])
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/admin/", follow=True)  # sets the csrftoken cookie
    return client, client.cookies["csrftoken"].value


@pytest.mark.parametrize(
    ("groups", "superuser", "scope"),
    [
        ((), True, "admin"),
        (("roster-admin",), False, "admin"),
        (("roster-write",), False, "write"),
        (("roster-read",), False, "read"),
        (("roster-read", "roster-admin", "roster-write"), False, "admin"),  # the widest wins
        (("roster-read", "reporting"), False, "read"),
        (("reporting",), False, None),  # other groups give nothing
        ((), False, None),
    ],
)
def test_a_staff_session_has_the_scope_of_its_groups(
    db, groups: tuple[str, ...], superuser: bool, scope: str | None
) -> None:
    user = User.objects.create_user("clerk", is_staff=True, is_superuser=superuser)
    user.groups.set([Group.objects.get_or_create(name=name)[0] for name in groups])
    assert session_scope(user) == scope


def test_groups_give_nothing_to_a_user_who_is_not_staff(db) -> None:
    client, _ = staff_session("roster-admin", staff=False)
    assert_unauthenticated(client.get("/graphql", {"query": READ}))


def test_staff_without_a_roster_group_is_403_and_reads_nothing(db) -> None:
    Job.objects.create(id=1, job="Clerk")
    client, csrf = staff_session()
    for response in (
        client.get("/graphql", {"query": READ}),
        post_graphql(client, WRITE, **{"X-CSRFToken": csrf}),
    ):
        assert response.status_code == 403
        assert response.json() == {
            "data": None,
            "errors": [{"message": NO_SCOPE_MESSAGE, "extensions": {"code": "FORBIDDEN"}}],
        }
    dashboard = client.get("/dashboard/?year=2021")
    assert (dashboard.status_code, dashboard.content.decode()) == (403, NO_SCOPE_MESSAGE)
    assert Job.objects.count() == 1
    assert Batch.objects.count() == 0


def test_staff_with_roster_read_reads_but_cannot_write(db) -> None:
    Job.objects.create(id=1, job="Clerk")
    client, csrf = staff_session("roster-read")
    response = client.get("/graphql", {"query": READ})
    assert response.json() == {
        "data": {"jobs": {"totalCount": 1, "nodes": [{"id": 1, "job": "Clerk"}]}}
    }
    denied = post_graphql(client, WRITE, **{"X-CSRFToken": csrf}).json()
    assert denied["data"] is None
    assert [e["extensions"]["code"] for e in denied["errors"]] == ["FORBIDDEN"]
    assert denied["errors"][0]["message"] == "this operation needs the 'write' scope"
    assert not Job.objects.filter(id=7).exists()
    assert Batch.objects.count() == 0


def test_staff_with_roster_write_writes_but_is_not_admin(db) -> None:
    client, csrf = staff_session("roster-write")
    response = post_graphql(client, WRITE, **{"X-CSRFToken": csrf})
    assert response.json() == {"data": {"insertBatch": {"inserted": 1}}}
    assert Job.objects.get(id=7).job == "Seven"
    denied = post_graphql(client, ADMIN_ONLY, **{"X-CSRFToken": csrf}).json()
    assert denied["data"] is None
    assert denied["errors"][0]["message"] == "this operation needs the 'admin' scope"


def test_staff_with_roster_admin_may_use_admin_fields(db) -> None:
    client, csrf = staff_session("roster-admin")
    response = post_graphql(client, ADMIN_ONLY, **{"X-CSRFToken": csrf}).json()
    assert "errors" not in response
    assert isinstance(response["data"]["backups"], list)


# --- token storage and the create_token command ----------------------------------------------


def test_tokens_are_stored_only_hashed(tokens) -> None:
    for scope, token in tokens.items():
        record = ApiToken.objects.get(name=f"test-{scope}")
        assert record.scope == scope
        assert record.key_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token.startswith("rst_")
        stored = list(ApiToken.objects.values_list())
        assert all(token not in str(value) for row in stored for value in row)
        assert not ApiToken.objects.filter(key_hash=token).exists()


def create_token(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_token_prints_a_working_token(client, db) -> None:
    out, err = create_token("ci", "--scope", "write")
    token = out.strip().splitlines()[-1]
    assert token.startswith("rst_")
    assert " " not in token
    assert "Created the write token 'ci'" in err
    record = ApiToken.objects.get(name="ci")
    assert (record.scope, record.key_hash) == ("write", hashlib.sha256(token.encode()).hexdigest())

    response = post_graphql(client, WRITE, Authorization=f"Bearer {token}")
    assert response.json() == {"data": {"insertBatch": {"inserted": 1}}}
    assert Job.objects.get(id=7).job == "Seven"


def test_create_token_defaults_to_read(client, db) -> None:
    out, _ = create_token("reader")
    token = out.strip().splitlines()[-1]
    assert ApiToken.objects.get(name="reader").scope == "read"
    response = post_graphql(client, WRITE, Authorization=f"Bearer {token}")
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_create_token_with_a_taken_name_fails_unless_replace(client, db) -> None:
    old = create_token("ci", "--scope", "read")[0].strip().splitlines()[-1]
    with pytest.raises(CommandError, match="a token named 'ci' exists; use --replace"):
        create_token("ci", "--scope", "admin")
    assert ApiToken.objects.get(name="ci").scope == "read"

    new = create_token("ci", "--scope", "admin", "--replace")[0].strip().splitlines()[-1]
    assert new != old
    assert ApiToken.objects.filter(name="ci").count() == 1
    assert ApiToken.objects.get(name="ci").scope == "admin"
    assert_unauthenticated(post_graphql(client, READ, Authorization=f"Bearer {old}"))
    assert post_graphql(client, READ, Authorization=f"Bearer {new}").status_code == 200


def test_create_token_with_an_invalid_scope_fails(db) -> None:
    with pytest.raises(CommandError, match="invalid choice: 'root'"):
        create_token("ci", "--scope", "root")
    assert ApiToken.objects.count() == 0


# --- GraphiQL --------------------------------------------------------------------------------


def test_graphiql_needs_no_token(client, db) -> None:
    response = client.get("/graphql", headers={"Accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 200
    assert "graphiql" in response.content.decode().lower()
