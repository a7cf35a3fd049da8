"""Django's PostgreSQL backend, whose every new connection signs in with a fresh IAM token.

Selected by ``DATABASE_IAM_AUTH`` (``backend/settings.py``), for RDS Proxy or RDS with IAM
database authentication. An IAM token is valid for 15 minutes and a connection may live for
longer (``CONN_MAX_AGE``, a Lambda container's life), so the token is made each time a
connection opens, never once in the settings: a connection already open stays open when its
token expires, and the next one gets a new token.

``generate_db_auth_token`` signs the token locally with the process's AWS credentials (a
Lambda's or a server's role): no network call. The token is a password, so it only travels
over TLS: ``sslmode`` is ``require`` unless ``DATABASE_URL`` asks for a verifying mode
(``verify-ca``, ``verify-full`` with ``sslrootcert``), and a weaker one is refused.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import boto3
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base

if TYPE_CHECKING:
    from mypy_boto3_rds import RDSClient

DEFAULT_PORT = 5432
TLS_MODES = ("require", "verify-ca", "verify-full")
"""The libpq ``sslmode`` values that never send the token in clear."""


@functools.cache
def rds_client() -> RDSClient:
    """One client per process: it only signs, and its credentials refresh themselves. A session
    of its own, since boto3's default session must not be shared between threads."""
    session = boto3.session.Session()
    if not session.region_name:  # the token is signed for a region: refused without one
        raise ImproperlyConfigured(
            "DATABASE_IAM_AUTH needs an AWS region: set AWS_DEFAULT_REGION (a Lambda has it)"
        )
    return session.client("rds")


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        """Django's parameters, with an IAM token for this connection as the password."""
        params = super().get_connection_params()
        if self.settings_dict["PASSWORD"]:
            raise ImproperlyConfigured(
                "DATABASE_IAM_AUTH is on: DATABASE_URL must carry no password (each "
                "connection's password is a fresh IAM token)"
            )
        mode = params.setdefault("sslmode", "require")
        if mode not in TLS_MODES:
            raise ImproperlyConfigured(
                f"DATABASE_IAM_AUTH sends a token as the password: sslmode must be one of "
                f"{', '.join(TLS_MODES)}, not {mode!r}"
            )
        host, user = params.get("host"), params.get("user")
        if not (host and user):
            raise ImproperlyConfigured(
                "DATABASE_IAM_AUTH needs the host and the user in DATABASE_URL "
                "(postgres://user@host:5432/name): the token is signed for both"
            )
        client = rds_client()
        params["password"] = client.generate_db_auth_token(
            DBHostname=host,
            Port=int(params.get("port") or DEFAULT_PORT),
            DBUsername=user,
            Region=client.meta.region_name,
        )
        return params
