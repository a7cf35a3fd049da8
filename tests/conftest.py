"""Shared fixtures: API tokens of each scope, a GraphQL caller, and the sample data.

The suite runs on the database named by DATABASE_URL: SQLite by default, PostgreSQL with
``DATABASE_URL=postgres://postgres@127.0.0.1:5432/roster`` (``make test`` runs both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from backend.auth import create_token
from backend.models import Scope
from jobs.loading import files_in_order, load_file

SAMPLE_DIR = Path(settings.BASE_DIR) / "data" / "sample"


@pytest.fixture
def tokens(db: None) -> dict[str, str]:
    """One token per scope: ``tokens["read"]``, ``tokens["write"]``, ``tokens["admin"]``."""
    return {scope: create_token(name=f"test-{scope}", scope=scope) for scope in Scope.values}


@dataclass
class GraphQLAnswer:
    status: int
    body: dict[str, Any]

    @property
    def data(self) -> dict[str, Any] | None:
        return self.body.get("data")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.body.get("errors") or []

    @property
    def codes(self) -> list[str | None]:
        return [error.get("extensions", {}).get("code") for error in self.errors]


class GraphQLCaller:
    """Posts GraphQL to /graphql through Django's test client, as a real HTTP caller would."""

    def __init__(self, client: Client, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens

    def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        scope: str | None = "admin",
        token: str | None = None,
    ) -> GraphQLAnswer:
        headers = {}
        bearer = token if token is not None else (self.tokens[scope] if scope else None)
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        response = self.client.post(
            "/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}),
            content_type="application/json",
            headers=headers,
        )
        return GraphQLAnswer(response.status_code, response.json())


@pytest.fixture
def gql(client: Client, tokens: dict[str, str]) -> GraphQLCaller:
    return GraphQLCaller(client, tokens)


@pytest.fixture
def sample_data(db: None) -> None:
    """The challenge's sample files, loaded through the real CSV loader and pipeline."""
    for path in files_in_order(SAMPLE_DIR):
        load_file(path=path)
