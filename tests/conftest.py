"""Shared fixtures: API tokens of each scope, a GraphQL caller, the sample data, S3 and a
headless Chromium.

The suite runs on the database named by DATABASE_URL: SQLite by default, PostgreSQL with
``DATABASE_URL=postgres://postgres@127.0.0.1:5432/roster`` (``make test`` runs both).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from backend.auth import create_token
from backend.models import Scope
from jobs.loading import load_sources

SAMPLE_DIR = Path(settings.BASE_DIR) / "data" / "sample"
pytest_plugins = ["tests.pg_cluster"]

# pytest-django has configured this process from backend.settings_test (pyproject.toml) and
# exported that name. The commands and servers the tests start are deployments in miniature:
# they read backend.settings, as manage.py, gunicorn and the Lambda handlers do when deployed.
os.environ["DJANGO_SETTINGS_MODULE"] = "backend.settings"


def employee(row_id: Any, **changes: Any) -> dict[str, Any]:
    """A valid hired_employees row (department 1, job 1) as a JSON caller sends it."""
    row: dict[str, Any] = {
        "id": row_id,
        "name": f"Employee {row_id}",
        "datetime": "2021-07-27T16:02:08Z",
        "department_id": 1,
        "job_id": 1,
    }
    row.update(changes)
    return row


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
    load_sources([str(SAMPLE_DIR)])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 API over HTTP (moto's server in a thread); boto3 finds it through
    AWS_ENDPOINT_URL, exactly as it would find any S3-compatible store."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _S3_ENV}
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_S3_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


@pytest.fixture
def bucket(s3_server: str) -> Iterator[str]:
    """A fresh, empty bucket on the S3 test server."""
    import uuid

    import boto3

    name = f"roster-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=name)
    yield name
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=name, Key=item["Key"])
    client.delete_bucket(Bucket=name)


# --- a real browser, for the pages (the dashboard, GraphiQL) ---------------------------------

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[object]:
    """Headless Chromium driven by Selenium; CI installs both (a missing one fails, not skips)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download a driver

    assert shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER), (
        "apt-get install chromium chromium-driver"
    )
    profile = tempfile.mkdtemp(prefix="roster-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}", "--window-size=1200,1600"]  # fmt: skip
    for flag in flags:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console: CSP reports
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def csp_violations(browser: Any) -> list[str]:
    """The browser console's Content-Security-Policy reports since the last read."""
    return [
        entry["message"]
        for entry in browser.get_log("browser")
        if "Content Security Policy" in entry["message"]
    ]
