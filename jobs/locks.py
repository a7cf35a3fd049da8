"""Locks that let one process at a time own a piece of work across several transactions.

A CSV load commits chunk after chunk, so no single transaction can guard it: two processes
started on the same source (two ``load_csv``, or S3 delivering one event twice) would both
load it. A lock named after the work is held for the whole run instead:

- PostgreSQL: a session advisory lock (``pg_advisory_lock``), which the server drops by
  itself when the connection ends, so a killed process never leaves it behind.
- SQLite: ``flock`` on a lock file beside the database file. Every process that can open the
  database shares its folder, and the kernel drops the lock when the process dies.

A second process waits for the first to finish, then finds the work done (or resumes it, if
the first one died).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.db import DatabaseError, connection

logger = logging.getLogger("roster.locks")


def lock_id(name: str) -> int:
    """A stable signed 64-bit number for ``name``: PostgreSQL's advisory lock key."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def work_lock(name: str) -> Iterator[None]:
    """Hold the lock called ``name`` for the duration; wait while another process holds it."""
    if connection.vendor == "postgresql":
        with _advisory_lock(lock_id(name), name):
            yield
    else:
        with _file_lock(name):
            yield


def transaction_lock(name: str) -> None:
    """Inside a transaction, take the lock called ``name`` until the transaction ends.

    On SQLite the transaction itself is the lock: writers start with ``BEGIN IMMEDIATE`` and
    queue on the database, so there is nothing more to take.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id(name)])


@contextlib.contextmanager
def _advisory_lock(key: int, name: str) -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        if not cursor.fetchone()[0]:
            logger.info("waiting for another process", extra={"lock": name})
            cursor.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        yield
    finally:
        # If the connection died, the server has dropped the lock with it.
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def _lock_folder() -> Path:
    name = str(connection.settings_dict["NAME"])
    if name == ":memory:" or name.startswith("file:"):  # one process's database
        return Path(tempfile.gettempdir()) / f"roster-{os.getpid()}.locks"
    database = Path(name)
    return database.parent / f"{database.name}.locks"


@contextlib.contextmanager
def _file_lock(name: str) -> Iterator[None]:
    folder = _lock_folder()
    folder.mkdir(exist_ok=True)  # beside the database file, whose folder must exist
    path = folder / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.lock"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another process", extra={"lock": name})
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing the descriptor releases the lock
