"""The rejection log: one entry per rejected row, open until a later batch stores the row.

A row is identified by its table and a digest of the row as received (``row_key``), so the
same row received again (a replay, a rerun, a client resending it) updates its entry rather
than adding one: ``attempts`` goes up and ``reasons`` become the latest. Entries are written
with ``INSERT ... ON CONFLICT (table, row_key) DO UPDATE``, in id order, so two batches that
reject the same rows at the same moment leave one entry each: the second waits for the first.

A batch that stores a row resolves the open entries of its id (``resolve``). A parked row
(only missing references kept it out) gets one ``ParkedReference`` per missing id; the replay
(``replay``) removes them as the ids arrive and replays the row at zero.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, models

from backend.models import Rejection

_PAGE_ROWS = 1000  # entries per statement on PostgreSQL; SQLite's parameter limit decides there
_COPY_THRESHOLD = 200  # entries; more go through COPY on PostgreSQL
_BATCH_ID: models.UUIDField[str | uuid.UUID, uuid.UUID] = models.UUIDField()


def row_key(table: str, raw: Any) -> str:
    """The identity of a rejected row: its table and the row as the log keeps it.

    A file's line is its text; an API row is its JSON with sorted keys, so key order does not
    make two rows of one.
    """
    if isinstance(raw, str):
        text = "t" + raw
    else:
        text = "j" + json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    data = f"{table}\x1f{text}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass
class LoggedRow:
    """A rejected row as the log writes it."""

    position: int
    row_id: int | None
    raw: Any
    reasons: list[dict[str, Any]]
    key: str
    waits: list[tuple[str, int]] = field(default_factory=list)
    """The missing references (table, id) of a parked row; empty for any other row."""


def record(
    *,
    table: str,
    batch_id: uuid.UUID,
    source: str,
    rows: Sequence[LoggedRow],
    atomic: bool,
    now: datetime,
) -> list[int]:
    """Log ``rows`` once each, and return the ids of the entries left parked (open, waiting).

    A row logged before updates its entry; an entry already resolved keeps its status and
    reasons (its row is stored: it was received again, nothing more). An atomic batch never
    parks its rows (storing one of them alone later would break the all-or-nothing the caller
    asked for), nor changes what an earlier attempt parked.
    """
    if not rows:
        return []
    merged: dict[str, tuple[LoggedRow, int]] = {}
    for row in rows:  # one row twice in a batch: one entry, two attempts, the later reasons
        _, count = merged.get(row.key, (row, 0))
        merged[row.key] = (row, count + 1)
    # One order for every writer (by id, then key), so that two batches logging the same rows
    # take their locks in the same order and never deadlock; a file's ids mostly follow its lines.
    ordered = sorted(
        merged.values(), key=lambda pair: (pair[0].row_id is None, pair[0].row_id or 0, pair[0].key)
    )
    parks = not atomic
    entries: dict[str, tuple[int, int, str]] = {}
    if connection.vendor == "postgresql" and len(ordered) > _COPY_THRESHOLD:
        entries = _upsert_copied(table, batch_id, source, ordered, parks, now)
    else:
        per_statement = _per_statement(len(_COLUMNS))
        for start in range(0, len(ordered), per_statement):
            page = ordered[start : start + per_statement]
            entries.update(_upsert(table, batch_id, source, page, parks, now))
    if not parks:
        return []
    renewed = [entries[row.key][0] for row, count in ordered if entries[row.key][1] > count]
    if renewed:  # entries logged before: their waits are this attempt's now
        _delete_waits(renewed)
    waits = [
        (entries[row.key][0], ref_table, ref_id)
        for row, _ in ordered
        if entries[row.key][2] == Rejection.Status.OPEN
        for ref_table, ref_id in row.waits
    ]
    _insert_waits(waits)
    return sorted({entry for entry, _, _ in waits})


def _conflict_updates(parks: bool) -> str:
    """What a row logged before changes in its entry: one more attempt (or as many as this
    batch holds), and, while it is open, the latest reasons and whether it is parked."""
    q = connection.ops.quote_name
    target = q("rejections")
    still_open = f"{target}.{q('status')} = 'open'"
    updates = [
        f"{q('attempts')} = {target}.{q('attempts')} + excluded.{q('attempts')}",
        f"{q('updated_at')} = excluded.{q('updated_at')}",
        f"{q('reasons')} = CASE WHEN {still_open} THEN excluded.{q('reasons')} "
        f"ELSE {target}.{q('reasons')} END",
    ]
    if parks:
        updates.append(
            f"{q('parked')} = CASE WHEN {still_open} THEN excluded.{q('parked')} ELSE false END"
        )
    return ", ".join(updates)


_COLUMNS = (
    "batch_id", "source", "table", "position", "row_id", "raw", "reasons", "created_at",
    "row_key", "status", "attempts", "updated_at", "parked",
)  # fmt: skip


def _upsert_copied(
    table: str,
    batch_id: uuid.UUID,
    source: str,
    rows: list[tuple[LoggedRow, int]],
    parks: bool,
    now: datetime,
) -> dict[str, tuple[int, int, str]]:
    """Many entries on PostgreSQL: ``COPY`` them into a session's staging table, then one
    ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``, in the staging order."""
    q = connection.ops.quote_name
    stage = q("roster_stage_rejections")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for seq, (row, count) in enumerate(rows):
        writer.writerow(
            [seq, row.position, "" if row.row_id is None else row.row_id, _json(row.raw),
             _json(row.reasons), row.key, count, "t" if parks and row.waits else "f"]
        )  # fmt: skip
    payload = buffer.getvalue()
    when = connection.ops.adapt_datetimefield_value(now)
    batch = _BATCH_ID.get_db_prep_value(batch_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (seq integer, position bigint, "
            "row_id integer, raw text, reasons text, row_key varchar(32), attempts bigint, "
            "parked boolean) ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"DELETE FROM {stage}")
        with connection.wrap_database_errors:
            cursor.copy_expert(
                f"COPY {stage} FROM STDIN WITH (FORMAT csv)", io.StringIO(payload), len(payload)
            )
        cursor.execute(
            f"INSERT INTO {q('rejections')} ({', '.join(q(c) for c in _COLUMNS)}) "
            f"SELECT %s, %s, %s, position, row_id, raw::jsonb, reasons::jsonb, %s, row_key, "
            f"'open', attempts, %s, parked FROM {stage} ORDER BY seq "
            f"ON CONFLICT ({q('table')}, {q('row_key')}) DO UPDATE SET {_conflict_updates(parks)} "
            f"RETURNING {q('row_key')}, {q('id')}, {q('attempts')}, {q('status')}",
            [batch, source, table, when, when],
        )
        return {key: (entry, attempts, status) for key, entry, attempts, status in cursor}


def _upsert(
    table: str,
    batch_id: uuid.UUID,
    source: str,
    page: list[tuple[LoggedRow, int]],
    parks: bool,
    now: datetime,
) -> dict[str, tuple[int, int, str]]:
    """One ``INSERT ... ON CONFLICT DO UPDATE`` for a page: each key's (entry id, attempts,
    status) after it."""
    q = connection.ops.quote_name
    columns = _COLUMNS
    when = connection.ops.adapt_datetimefield_value(now)
    batch = _BATCH_ID.get_db_prep_value(batch_id, connection)
    params: list[Any] = []
    for row, count in page:
        params += [
            batch, source, table, row.position, row.row_id, _json(row.raw), _json(row.reasons),
            when, row.key, Rejection.Status.OPEN, count, when, parks and bool(row.waits),
        ]  # fmt: skip
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql = (
        f"INSERT INTO {q('rejections')} ({', '.join(q(c) for c in columns)}) "
        f"VALUES {', '.join([row_sql] * len(page))} "
        f"ON CONFLICT ({q('table')}, {q('row_key')}) DO UPDATE SET {_conflict_updates(parks)} "
        f"RETURNING {q('row_key')}, {q('id')}, {q('attempts')}, {q('status')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {key: (entry, attempts, status) for key, entry, attempts, status in cursor}


def resolve(*, table: str, row_ids: Iterable[int], batch_id: uuid.UUID, now: datetime) -> int:
    """Mark the open entries of the ids a batch stored as resolved by it; return how many.

    A file's chunk stores dense ids: the open entries in their range are read (an index range
    scan, mostly empty) and matched here, rather than probing the index once per stored id.
    """
    ids = list(row_ids)
    if not ids:
        return 0
    q = connection.ops.quote_name
    low, high = min(ids), max(ids)
    if high - low < 4 * len(ids):
        wanted = set(ids)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {q('id')}, {q('row_id')} FROM {q('rejections')} WHERE {q('table')} = %s "
                f"AND {q('status')} = 'open' AND {q('row_id')} BETWEEN %s AND %s",
                [table, low, high],
            )
            entries = [entry for entry, row_id in cursor.fetchall() if row_id in wanted]
        column, ids = q("id"), entries
        if not ids:
            return 0
        scope = ""  # the entries' ids say it all: no other index to be tempted by
    else:
        column, scope = q("row_id"), f"{q('table')} = %s AND "
    batch = _BATCH_ID.get_db_prep_value(batch_id, connection)
    when = connection.ops.adapt_datetimefield_value(now)
    match, values = among(column, ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {q('rejections')} SET {q('status')} = 'resolved', "
            f"{q('resolved_by_id')} = %s, {q('resolved_at')} = %s, {q('parked')} = false "
            f"WHERE {scope}{q('status')} = 'open' AND {match} RETURNING {q('id')}",
            [batch, when, *([table] if scope else []), *values],
        )
        resolved = [entry for (entry,) in cursor.fetchall()]
    _delete_waits(resolved)
    return len(resolved)


def among(column: str, ids: Sequence[int]) -> tuple[str, list[Any]]:
    """``column`` among ``ids``, as one condition and its one parameter: an array on
    PostgreSQL (an index condition), a JSON array on SQLite (no parameter limit to split at)."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(ids)]
    return f"{column} IN (SELECT value FROM json_each(%s))", [json.dumps(list(ids))]


def _delete_waits(entries: list[int]) -> None:
    if not entries:
        return
    q = connection.ops.quote_name
    match, values = among(q("rejection_id"), entries)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {q('parked_references')} WHERE {match}", values)


def _insert_waits(waits: list[tuple[int, str, int]]) -> None:
    if not waits:
        return
    q = connection.ops.quote_name
    columns = f"{q('rejection_id')}, {q('references')}, {q('ref_id')}"
    if connection.vendor == "postgresql" and len(waits) > _COPY_THRESHOLD:
        payload = "".join(f"{entry},{ref_table},{ref_id}\n" for entry, ref_table, ref_id in waits)
        with connection.cursor() as cursor, connection.wrap_database_errors:
            cursor.copy_expert(
                f"COPY {q('parked_references')} ({columns}) FROM STDIN WITH (FORMAT csv)",
                io.StringIO(payload),
                len(payload),
            )
        return
    per_statement = _per_statement(3)
    with connection.cursor() as cursor:
        for start in range(0, len(waits), per_statement):
            page = waits[start : start + per_statement]
            cursor.execute(
                f"INSERT INTO {q('parked_references')} ({columns}) "
                f"VALUES {', '.join(['(%s, %s, %s)'] * len(page))}",
                [value for wait in page for value in wait],
            )


def _per_statement(columns: int) -> int:
    if connection.vendor == "postgresql":
        return _PAGE_ROWS
    max_params = connection.features.max_query_params or 999
    return max(1, min(_PAGE_ROWS, max_params // columns))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
