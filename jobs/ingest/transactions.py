"""Transactions and retries: a batch is one transaction, started again after a deadlock."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, connection, transaction

logger = logging.getLogger("roster.ingest")

_DEADLOCK_RETRIES = 3

T = TypeVar("T")


def in_transaction(work: Callable[[], T]) -> T:
    """Run ``work`` in a transaction of its own, and again (up to 3 times) if PostgreSQL broke
    a deadlock or a serialization failure by rolling it back: ``work`` must be safe to repeat.

    Inside a caller's transaction ``work`` runs in a savepoint, all of it or none: only the
    outermost transaction can be started again, so the retry belongs to whoever opened it.
    """
    if connection.in_atomic_block:
        with transaction.atomic():
            return work()
    attempt = 1
    while True:
        try:
            with transaction.atomic():
                return work()
        except DatabaseError as error:
            if attempt == _DEADLOCK_RETRIES or not _is_retryable(error):
                raise
            logger.warning("transaction retried", extra={"attempt": attempt, "error": str(error)})
            time.sleep(0.05 * attempt)
            attempt += 1


def _is_retryable(error: DatabaseError) -> bool:
    """Deadlocks and serialization failures (PostgreSQL) can be retried as a whole batch."""
    return getattr(getattr(error, "__cause__", None), "pgcode", None) in {"40P01", "40001"}
