"""Step 4 of the pipeline: the bulk writers. ``write`` picks one; each skips the ids that exist.

- ``copy``: PostgreSQL ``COPY`` straight into the table, betting every id is new (file chunks).
- ``insert``: one multi-row ``INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id`` per page
  (on PostgreSQL a large page is copied into a staging table and inserted from there).
- ``isolate``: a page the database refused is split in halves until the bad rows stand alone,
  as pgloader does, so good rows are never lost because of a neighbour.

Rows go in id order, so concurrent batches take their locks in the same order and never
deadlock. Foreign keys are different: Django makes them ``DEFERRABLE INITIALLY DEFERRED``, so a
parent deleted after the references were checked fails the whole batch at its commit.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction

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
        with transaction.atomic(), connection.cursor() as cursor, connection.wrap_database_errors:
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
        cursor.execute(
            f"INSERT INTO {quote(spec.name)} ({columns}) SELECT {columns} FROM {quote(stage)} "
            f"ORDER BY {quote('id')} ON CONFLICT ({quote('id')}) DO NOTHING RETURNING {quote('id')}"
        )
        return [row_id for (row_id,) in cursor.fetchall()]


def _copy_statement(spec: Table, target: str) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(c) for c in spec.column_names)
    return f"COPY {quote(target)} ({columns}) FROM STDIN WITH (FORMAT csv)"


def _rows_per_statement(column_count: int) -> int:
    if connection.vendor == "postgresql":
        return _COPY_PAGE_ROWS
    max_params = connection.features.max_query_params or 65535
    return max(1, min(dictionary.MAX_BATCH_ROWS, max_params // column_count))
