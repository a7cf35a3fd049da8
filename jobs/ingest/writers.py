"""Step 4 of the pipeline: the bulk writers. ``write`` picks one; each skips the ids that exist.

- ``copy``: PostgreSQL ``COPY`` straight into the table, betting every id is new (file chunks).
- ``insert``: one multi-row ``INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id`` per page
  (on PostgreSQL a large page is copied into a staging table and inserted from there).
- ``isolate``: a page the database refused is split in halves until the bad rows stand alone,
  as pgloader does, so good rows are never lost because of a neighbour.

Rows go in id order, so concurrent batches take their locks in the same order and never
deadlock. Step 2 has locked every department and job the rows name (``references``), so on
PostgreSQL a ``COPY`` of a large batch skips the foreign keys' per-row triggers when the role
may (``foreign_key_triggers_skipped``): half the cost of a ``COPY`` into hired_employees.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from backend import dictionary
from backend.dictionary import Reason, ReasonCode, Table, Timestamp
from jobs.ingest.rules import Row

COPY_THRESHOLD = 1000
"""Rows: an API batch (at most 1000) takes one multi-row INSERT, a larger batch a ``COPY``."""
_COPY_PAGE_ROWS = 50_000

Page = list[tuple[int, Row]]
"""Rows to write, each with its index in the batch."""


@dataclass
class Written:
    """What the writers did: the ids stored (``None``: every row), and the rows the database
    refused, with why."""

    stored: set[int] | None = None
    refused: dict[int, Reason] = field(default_factory=dict)


def write(
    spec: Table, valid: dict[int, Row], order: list[int], copy_lines: dict[int, str] | None
) -> Written:
    """Write the valid rows in id order (``order`` may list rows dropped since)."""
    bulk = connection.vendor == "postgresql" and len(valid) > COPY_THRESHOLD
    if bulk and copy(spec, valid, order, copy_lines):
        return Written()
    ordered = [(index, valid[index]) for index in order if index in valid]
    stored: set[int] = set()
    refused: dict[int, Reason] = {}
    per_statement = _rows_per_statement(len(spec.columns))
    for start in range(0, len(ordered), per_statement):
        isolate(spec, ordered[start : start + per_statement], stored, refused)
    return Written(stored, refused)


def copy(
    spec: Table, valid: dict[int, Row], order: list[int], copy_lines: dict[int, str] | None
) -> bool:
    """PostgreSQL's fast path for file chunks: ``COPY`` the rows straight into the table, as
    ``psql \\copy`` would, betting that their ids are new (a first load, a restore).

    When the bet fails (an id exists already, a concurrent batch stored it first, or a check
    constraint refuses a row), the ``COPY`` is undone and ``False`` sends the chunk down the
    ``ON CONFLICT`` path, which sorts every row out, one by one if it must. A look-up of the
    chunk's ids first would cost more than the ``COPY`` it might save.
    """
    if copy_lines is None:
        copy_lines = {index: spec.copy_line(row) for index, row in valid.items()}
    payload = "".join([copy_lines[index] for index in order if index in valid])
    try:
        with (
            transaction.atomic(),
            connection.cursor() as cursor,
            connection.wrap_database_errors,
            foreign_key_triggers_skipped(spec, cursor),
        ):
            cursor.copy_expert(_copy_statement(spec, spec.name), io.StringIO(payload), len(payload))
    except IntegrityError:
        return False
    return True


def isolate(spec: Table, page: Page, stored: set[int], refused: dict[int, Reason]) -> None:
    """Insert ``page`` in a savepoint, adding its ids to ``stored``; if the database refuses
    it, insert each half the same way, down to single rows, which go to ``refused`` with the
    database's message."""
    try:
        with transaction.atomic():
            stored.update(insert(spec, [row for _, row in page]))
    except IntegrityError as error:
        if len(page) == 1:
            message = str(error).strip().splitlines()[0]
            refused[page[0][0]] = Reason(None, ReasonCode.INTEGRITY_ERROR, message)
            return
        middle = len(page) // 2
        isolate(spec, page[:middle], stored, refused)
        isolate(spec, page[middle:], stored, refused)


def insert(spec: Table, rows: list[Row]) -> list[int]:
    """Insert ``rows``, skipping the ids that exist; return the ids stored."""
    if connection.vendor == "postgresql" and len(rows) > COPY_THRESHOLD:
        return _insert_staged(spec, rows)
    quote = connection.ops.quote_name
    columns = spec.column_names
    adapt = connection.ops.adapt_datetimefield_value
    timestamps = {c.name for c in spec.columns if isinstance(c.kind, Timestamp)}
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql = (
        f"INSERT INTO {quote(spec.name)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES {', '.join([placeholders] * len(rows))} "
        f"ON CONFLICT ({quote('id')}) DO NOTHING RETURNING {quote('id')}"
    )
    params: list[Any] = []
    for row in rows:
        params.extend(adapt(row[c]) if c in timestamps else row[c] for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row_id for (row_id,) in cursor.fetchall()]


def _insert_staged(spec: Table, rows: list[Row]) -> list[int]:
    """A large page on PostgreSQL when the straight ``COPY`` met a conflict: ``COPY`` into a
    session-private staging table, then one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING
    RETURNING id`` into the table, which skips the ids that exist."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(c) for c in spec.column_names)
    stage = f"roster_stage_{spec.name}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {quote(stage)} "
            f"(LIKE {quote(spec.name)} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"DELETE FROM {quote(stage)}")
        payload = "".join([spec.copy_line(row) for row in rows])
        with connection.wrap_database_errors:
            cursor.copy_expert(_copy_statement(spec, stage), io.StringIO(payload), len(payload))
        with foreign_key_triggers_skipped(spec, cursor):  # ``isolate``'s savepoint is around
            cursor.execute(
                f"INSERT INTO {quote(spec.name)} ({columns}) SELECT {columns} FROM {quote(stage)} "
                f"ORDER BY {quote('id')} ON CONFLICT ({quote('id')}) DO NOTHING "
                f"RETURNING {quote('id')}"
            )
            stored = [row_id for (row_id,) in cursor.fetchall()]
        return stored


@contextmanager
def foreign_key_triggers_skipped(spec: Table, cursor: Any) -> Iterator[None]:
    """Run the block's statements with ``session_replication_role = replica`` when ``spec`` has
    foreign keys and the role may set it: the foreign keys' per-row triggers do not fire;
    triggers made ``ENABLE ALWAYS`` still do.

    Safe only for rows whose references step 2 found and locked in this transaction, and only
    inside a savepoint or transaction that an error rolls back: that undoes the ``SET LOCAL``
    too. Otherwise the block ends by setting ``origin`` again, so nothing else in the
    transaction (the audit, the run's progress) runs without its triggers. Where the role may
    not, the block runs as it is, and the triggers check each row at the commit.
    """
    skip = bool(spec.foreign_keys) and may_skip_foreign_key_triggers()
    if skip:
        cursor.execute("SET LOCAL session_replication_role = replica")
    yield
    if skip:
        cursor.execute("SET LOCAL session_replication_role = origin")


def may_skip_foreign_key_triggers() -> bool:
    """Whether this connection's role may set ``session_replication_role``: a superuser,
    RDS's ``rds_superuser``, or (PostgreSQL 15) a role granted ``SET ON PARAMETER``. Asked once
    per connection."""
    if connection.vendor != "postgresql":
        return False
    connection.ensure_connection()
    wrapper: Any = connection  # Django's wrapper carries the answer (forgotten on reconnect)
    if (known := getattr(wrapper, "roster_may_skip_fk_triggers", None)) is not None:
        return bool(known)
    if wrapper.pg_version >= 150000:
        granted = "has_parameter_privilege('session_replication_role', 'SET')"
    else:
        granted = "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
    rds = (
        "EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_superuser' "
        "AND pg_has_role(oid, 'MEMBER'))"
    )
    with connection.connection.cursor() as cursor:  # a setting, not one of the batch's queries
        cursor.execute(f"SELECT {granted} OR {rds}")
        (may,) = cursor.fetchone()
    wrapper.roster_may_skip_fk_triggers = bool(may)
    return bool(may)


@receiver(connection_created)
def _forget_role(sender: Any, connection: Any, **kwargs: Any) -> None:
    """A new connection may log in as another role: ask again."""
    connection.roster_may_skip_fk_triggers = None


def _copy_statement(spec: Table, target: str) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(c) for c in spec.column_names)
    return f"COPY {quote(target)} ({columns}) FROM STDIN WITH (FORMAT csv)"


def _rows_per_statement(column_count: int) -> int:
    if connection.vendor == "postgresql":
        return _COPY_PAGE_ROWS
    max_params = connection.features.max_query_params or 65535
    return max(1, min(dictionary.MAX_BATCH_ROWS, max_params // column_count))
