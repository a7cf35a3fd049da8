"""API tokens made in the Django admin: generated, hashed, shown once, never shown again."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client

from backend.models import ApiToken, Job

ADD_URL = "/admin/backend/apitoken/add/"
LIST_URL = "/admin/backend/apitoken/"
TOKEN = re.compile(r"rst_[A-Za-z0-9_-]{43}")
WRITE = 'mutation { insertBatch(input: {jobs: [{id: 7, job: "Seven"}]}) { inserted } }'


@pytest.fixture
def boss(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", password=None))
    return client


def add_token(client: Client, name: str, scope: str):
    return client.post(ADD_URL, {"name": name, "scope": scope})


def shown_tokens(response) -> list[str]:
    return TOKEN.findall(response.content.decode())


def test_the_add_form_asks_only_for_a_name_and_a_scope(boss: Client) -> None:
    page = boss.get(ADD_URL).content.decode()
    fields = set(re.findall(r'<(?:input|select|textarea)[^>]*\bname="([^"]+)"', page))
    assert fields == {"csrfmiddlewaretoken", "name", "scope", "_save"}
    assert "key_hash" not in page


def test_two_added_tokens_are_each_shown_once_and_work(boss: Client) -> None:
    first = add_token(boss, "reporting", "write")
    second = add_token(boss, "etl", "read")

    for response in (first, second):
        assert response.status_code == 200
        assert len(shown_tokens(response)) == 1
        assert "no-store" in response["Cache-Control"]
    (one,), (two,) = shown_tokens(first), shown_tokens(second)
    assert one != two
    assert f'<code id="new-api-token">{one}</code>' in first.content.decode()
    assert "Copy it now" in first.content.decode()

    stored = {t.name: t for t in ApiToken.objects.all()}
    assert set(stored) == {"reporting", "etl"}
    assert stored["reporting"].scope == "write"
    assert stored["reporting"].key_hash == hashlib.sha256(one.encode()).hexdigest()
    assert stored["etl"].key_hash == hashlib.sha256(two.encode()).hexdigest()

    api = Client()
    response = api.post(
        "/graphql",
        data=json.dumps({"query": WRITE}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {one}"},
    )
    assert response.json() == {"data": {"insertBatch": {"inserted": 1}}}
    assert Job.objects.get(id=7).job == "Seven"
    read_only = api.post(
        "/graphql",
        data=json.dumps({"query": WRITE}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {two}"},
    )
    assert read_only.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_the_token_is_never_shown_again(boss: Client) -> None:
    token = shown_tokens(add_token(boss, "reporting", "read"))[0]
    record = ApiToken.objects.get(name="reporting")

    for url in (LIST_URL, f"{LIST_URL}{record.pk}/change/", ADD_URL, "/admin/"):
        page = boss.get(url)
        assert page.status_code == 200
        assert shown_tokens(page) == []
        assert record.key_hash not in page.content.decode()
    assert token not in boss.cookies.output()
    assert not any(token in str(value) for value in boss.session.values())


def test_the_change_page_keeps_the_hash_and_the_scope(boss: Client) -> None:
    token = shown_tokens(add_token(boss, "reporting", "read"))[0]
    record = ApiToken.objects.get(name="reporting")
    response = boss.post(
        f"{LIST_URL}{record.pk}/change/",
        {"name": "reports", "scope": "admin", "key_hash": "0" * 64},
    )
    assert response.status_code == 302
    record.refresh_from_db()
    assert (record.name, record.scope) == ("reports", "read")
    assert record.key_hash == hashlib.sha256(token.encode()).hexdigest()


def test_a_taken_name_is_a_form_error_and_stores_nothing(boss: Client) -> None:
    add_token(boss, "reporting", "read")
    again = add_token(boss, "reporting", "admin")
    assert again.status_code == 200
    assert "Api token with this Name already exists." in again.content.decode()
    assert shown_tokens(again) == []
    assert ApiToken.objects.get().scope == "read"


def staff_with_token_permissions(*groups: str) -> Client:
    user = User.objects.create_user("clerk", is_staff=True)
    user.groups.set([Group.objects.get_or_create(name=name)[0] for name in groups])
    user.user_permissions.set(Permission.objects.filter(codename__endswith="_apitoken"))
    client = Client()
    client.force_login(user)
    return client


def test_staff_cannot_grant_a_scope_wider_than_their_own(db: None) -> None:
    client = staff_with_token_permissions("roster-write")
    page = client.get(ADD_URL).content.decode()
    assert re.findall(r'<option value="(\w+)"', page) == ["read", "write"]

    refused = add_token(client, "root", "admin")
    assert refused.status_code == 200
    assert "Select a valid choice. admin is not one of the available choices." in (
        refused.content.decode()
    )
    assert shown_tokens(refused) == []
    assert not ApiToken.objects.exists()

    assert len(shown_tokens(add_token(client, "etl", "write"))) == 1
    assert ApiToken.objects.get().scope == "write"


def test_staff_without_a_roster_scope_cannot_add_tokens(db: None) -> None:
    client = staff_with_token_permissions()
    assert client.get(ADD_URL).status_code == 403
    assert add_token(client, "root", "read").status_code == 403
    assert not ApiToken.objects.exists()
