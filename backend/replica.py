"""Read replicas: which database answers a read.

With ``DATABASE_REPLICA_URL`` set (``settings.READ_REPLICA`` names its alias), a read of the
data tables goes to the replica when all of these hold:

- the door said it may (``replica_reads``): around a GraphQL query operation's execution, never
  a mutation's (``graph/replica.py``), and around a REST GET (``backend/rest.py``);
- the model is one of ``REPLICA_MODELS``: departments, jobs, hired employees and their summary;
- the default connection is not inside a transaction: what a write reads (references,
  duplicates, the rows it locks) comes from the primary it writes to.

Everything else reads the primary: the rejection log and its batches, parked references and
load runs (a client looks there right after a write), API tokens and users (a revoked token
must not live on through the replica's lag), and every read outside the doors above. Every
write goes to the primary. The replica is a physical replica: ``manage.py migrate`` migrates
default, as it always did, and the replica follows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model

from backend.timeouts import statement_timeout

REPLICA_MODELS = frozenset(
    {
        "backend.Department",
        "backend.Job",
        "backend.HiredEmployee",
        "backend.HireCount",
        "backend.DepartmentYear",
        "backend.JobYear",
    }
)
"""The models a replica may answer, by ``app_label.ModelName`` (``Model._meta.label``)."""

_may_read_replica: ContextVar[bool] = ContextVar("roster_may_read_replica", default=False)


@contextmanager
def replica_reads(allowed: bool = True) -> Iterator[None]:
    """Inside the block, reads of ``REPLICA_MODELS`` may go to the replica (``allowed``), or
    may not. The replica's statements get the request's ``STATEMENT_TIMEOUT_MS`` too.

    Also a decorator (``@replica_reads()``), for a read-only view.
    """
    token = _may_read_replica.set(allowed)
    try:
        if allowed and settings.READ_REPLICA:
            with statement_timeout(settings.READ_REPLICA):
                yield
        else:
            yield
    finally:
        _may_read_replica.reset(token)


def read_connection(model: type[Model]) -> BaseDatabaseWrapper:
    """The connection that reads ``model`` now, for raw SQL: the ORM asks the router itself,
    a cursor must be taken from the right connection by hand."""
    return connections[router.db_for_read(model)]


class ReplicaRouter:
    """``DATABASE_ROUTERS``: reads of the data tables to the replica when the module's rules
    allow, everything else to default."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        replica = settings.READ_REPLICA
        if (
            replica
            and _may_read_replica.get()
            and model._meta.label in REPLICA_MODELS
            and not connections[DEFAULT_DB_ALIAS].in_atomic_block
        ):
            return replica
        return DEFAULT_DB_ALIAS

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool | None:
        """A row read from the replica is the primary's row: it may refer to one read there."""
        aliases = {DEFAULT_DB_ALIAS, settings.READ_REPLICA}
        return True if {obj1._state.db, obj2._state.db} <= aliases else None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        """Every alias may be migrated: ``manage.py migrate`` migrates default (a physical
        replica follows it, and refuses writes of its own); the tests' replica is a database of
        its own, migrated like default."""
        return True
