"""IAM authentication to PostgreSQL (``DATABASE_IAM_AUTH``, ``backend/db/postgresql_iam``): each
new connection's password is an IAM token signed for its host, port, user and region, and it
never travels without TLS.

A token is signed locally (no AWS call), so these tests sign real tokens with made-up
credentials and check them as RDS would: the query string, and the signature itself.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import ConnectionHandler

from backend.db.postgresql_iam.base import rds_client

ROOT = Path(settings.BASE_DIR)
PROXY = "roster-db.proxy-c0ffee0example.eu-west-1.rds.amazonaws.com"
REGION = "eu-west-1"
KEY_ID = "AKIAROSTEREXAMPLE001"
SECRET = "roster/example/secret/access/key/0000000"
SIGNING_ENV = {
    "AWS_ACCESS_KEY_ID": KEY_ID,
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
OTHER_AWS = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL")


def deployed(tmp_path: Path, script: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a process that reads ``backend.settings`` from ``env`` (None: unset),
    as a Lambda does, with made-up AWS credentials and none of this process's AWS settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DATABASE_"))}
    clean |= SIGNING_ENV | {
        "DJANGO_SETTINGS_MODULE": "backend.settings",
        "SECRET_KEY": "k" * 40 + "0123456789",
        "ROSTER_VAR_DIR": str(tmp_path),
    }
    clean |= env
    setup = "import django, json; django.setup(); from django.db import connection\n"
    return subprocess.run(
        [sys.executable, "-c", setup + script], capture_output=True, text=True, cwd=ROOT,
        env={name: value for name, value in clean.items() if value is not None}, timeout=60,
    )  # fmt: skip


def signature(token: str, *, secret: str) -> str:
    """The SigV4 signature RDS expects for ``token``'s query string, made from ``secret``:
    a presigned ``GET /`` to the host and port, signing only the host, with an empty body."""
    address, query = token.split("/?", 1)
    fields = sorted((k, v) for k, v in parse_qsl(query) if k != "X-Amz-Signature")
    encode = functools.partial(quote, safe="-_.~")
    canonical_query = "&".join(f"{encode(k)}={encode(v)}" for k, v in fields)
    empty_body = hashlib.sha256(b"").hexdigest()
    request = f"GET\n/\n{canonical_query}\nhost:{address}\n\nhost\n{empty_body}"
    values = dict(fields)
    scope = values["X-Amz-Credential"].split("/", 1)[1]
    date, region, service, _ = scope.split("/")
    request_hash = hashlib.sha256(request.encode()).hexdigest()
    to_sign = "\n".join(["AWS4-HMAC-SHA256", values["X-Amz-Date"], scope, request_hash])
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_a_deployment_with_iam_auth_signs_each_connection_with_a_fresh_token(tmp_path) -> None:
    url = f"postgres://roster@{PROXY}:5432/roster"
    ran = deployed(
        tmp_path,
        "params = connection.get_connection_params()\n"
        "names = ('host', 'port', 'user', 'dbname', 'sslmode', 'password')\n"
        "print(json.dumps({'engine': connection.settings_dict['ENGINE'],\n"
        "    'kept': connection.settings_dict['PASSWORD'], **{k: params.get(k) for k in names}}))",
        DATABASE_URL=url, DATABASE_IAM_AUTH="1",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)
    token = seen.pop("password")

    assert seen == {
        "engine": "backend.db.postgresql_iam",
        "kept": "",  # the token is made for the connection, never kept in the settings
        "host": PROXY,
        "port": 5432,
        "user": "roster",
        "dbname": "roster",
        "sslmode": "require",
    }
    address, query = token.split("/?", 1)
    fields = dict(parse_qsl(query))
    signed_at = datetime.strptime(fields.pop("X-Amz-Date"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert address == f"{PROXY}:5432"
    assert fields.pop("X-Amz-Signature") == signature(token, secret=SECRET)
    assert fields == {
        "Action": "connect",
        "DBUser": "roster",
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{KEY_ID}/{signed_at:%Y%m%d}/{REGION}/rds-db/aws4_request",
        "X-Amz-Expires": "900",
        "X-Amz-SignedHeaders": "host",
    }
    assert abs(datetime.now(UTC) - signed_at) < timedelta(minutes=2)  # signed as it connects


def test_iam_auth_refuses_sqlite_and_a_deployment_without_a_region(tmp_path) -> None:
    sqlite = deployed(tmp_path, "", DATABASE_URL="sqlite:////tmp/x.sqlite3", DATABASE_IAM_AUTH="1")
    no_region = deployed(
        tmp_path, "connection.get_connection_params()",
        DATABASE_URL=f"postgres://roster@{PROXY}:5432/roster", DATABASE_IAM_AUTH="1",
        AWS_DEFAULT_REGION=None,
    )  # fmt: skip

    assert sqlite.returncode == 1
    assert sqlite.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: "
        "DATABASE_IAM_AUTH needs a postgres:// DATABASE_URL."
    )
    assert no_region.returncode == 1
    assert no_region.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: DATABASE_IAM_AUTH needs an AWS region: "
        "set AWS_DEFAULT_REGION (a Lambda has it)"
    )


@pytest.fixture
def signing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process signs with the made-up credentials, through a client made for them."""
    for name in OTHER_AWS:
        monkeypatch.delenv(name, raising=False)
    for name, value in SIGNING_ENV.items():
        monkeypatch.setenv(name, value)
    rds_client.cache_clear()
    yield
    rds_client.cache_clear()


def wrapper(**database: Any) -> BaseDatabaseWrapper:
    """A connection of the IAM backend, as Django builds it from a ``DATABASES`` entry."""
    entry = {"ENGINE": "backend.db.postgresql_iam", "NAME": "roster", "USER": "roster"} | database
    return ConnectionHandler({"default": entry})["default"]


@pytest.mark.parametrize(
    ("database", "message"),
    [
        ({"HOST": PROXY, "PASSWORD": "hunter2"},
         "DATABASE_IAM_AUTH is on: DATABASE_URL must carry no password (each connection's "
         "password is a fresh IAM token)"),
        ({"HOST": PROXY, "OPTIONS": {"sslmode": "prefer"}},
         "DATABASE_IAM_AUTH sends a token as the password: sslmode must be one of require, "
         "verify-ca, verify-full, not 'prefer'"),
        ({"HOST": ""},
         "DATABASE_IAM_AUTH needs the host and the user in DATABASE_URL "
         "(postgres://user@host:5432/name): the token is signed for both"),
    ],
)  # fmt: skip
def test_iam_auth_refuses_a_password_a_mode_without_tls_or_no_host(
    signing: None, database: dict[str, Any], message: str
) -> None:
    with pytest.raises(ImproperlyConfigured) as raised:
        wrapper(**database).get_connection_params()

    assert str(raised.value) == message


def test_a_verifying_tls_mode_is_kept(signing: None) -> None:
    options = {"sslmode": "verify-full", "sslrootcert": "/opt/rds/global-bundle.pem"}

    params = wrapper(HOST=PROXY, PORT="6432", OPTIONS=options).get_connection_params()

    assert (params["sslmode"], params["sslrootcert"]) == ("verify-full", options["sslrootcert"])
    assert params["password"].startswith(f"{PROXY}:6432/?Action=connect&DBUser=roster&")


def test_the_token_never_goes_to_a_server_without_tls(
    signing: None, pg_cluster, django_db_blocker
) -> None:
    """A real PostgreSQL without TLS (the tests' own cluster): the connection is refused before
    the client sends anything but its request for TLS."""
    database = wrapper(HOST="127.0.0.1", PORT=str(pg_cluster.port), USER="postgres")

    with django_db_blocker.unblock(), pytest.raises(OperationalError) as raised:
        database.ensure_connection()

    assert str(raised.value).strip().endswith("server does not support SSL, but SSL was required")
    database.close()
