"""Step 2 of the pipeline: foreign keys must name rows that exist (one query per referenced
table and page of ids).

On PostgreSQL the query also locks the rows it finds ``FOR KEY SHARE``, as the per-row
foreign-key trigger would, until the batch commits: a department or job found here cannot be
deleted (by a restore, the admin, ``psql``) before the batch's rows are in, since the delete
waits for the lock. That is what lets the bulk writer skip the per-row triggers
(``writers.foreign_key_triggers_skipped``), and it turns the other writers' race (a parent
deleted after the check failed the whole batch at its commit) into a wait.

Locks are taken in the order a restore empties the tables, children first (jobs before
departments), and by id within a table, so a loader and a restore wait for each other but do
not deadlock.
"""

from __future__ import annotations

from django.db import connection

from backend import dictionary
from backend.dictionary import ForeignKey, Reason, ReasonCode, Table
from backend.models import MODELS
from jobs.ingest.rules import Verdicts

Wait = tuple[str, int]
"""A missing reference: (table, id). A parked row waits for each of its own."""


def reject_missing_references(
    spec: Table, verdicts: Verdicts, referenced: dict[str, dict[int, list[int]]]
) -> dict[int, list[Wait]]:
    """Reject the valid rows whose foreign keys point nowhere, and return each such row's
    missing references.

    Every key of a row is checked before the row is dropped, so all its bad keys are reported,
    in the columns' order. ``referenced`` (from ``check_rows``) lists the rows that name each
    value, so only the rows with a missing value are visited.
    """
    existing: dict[str, set[int]] = {}
    for column in sorted(spec.foreign_keys, key=_lock_order):
        if groups := referenced.get(column.name):
            existing[column.name] = _existing(column, sorted(groups))
    missing: dict[int, list[Reason]] = {}
    waits: dict[int, list[Wait]] = {}
    for column in spec.foreign_keys:
        groups = referenced.get(column.name, {})
        singular = column.name.removesuffix("_id")
        for value in groups.keys() - existing.get(column.name, set()):
            reason = Reason(
                column.name, ReasonCode.UNKNOWN_REFERENCE, f"{singular} {value} does not exist"
            )
            for index in groups[value]:
                if index in verdicts.valid:
                    missing.setdefault(index, []).append(reason)
                    waits.setdefault(index, []).append((column.references, value))
    for index, found in sorted(missing.items()):
        verdicts.reject(index, *found)
    return waits


def _lock_order(column: ForeignKey) -> int:
    """Children first, as ``jobs/backups.py`` empties the tables: the later a table comes in
    the dictionary's dependency order, the earlier its rows are locked."""
    return -list(dictionary.TABLES).index(column.references)


def _existing(column: ForeignKey, ids: list[int]) -> set[int]:
    """The ``ids`` (sorted) that exist in the table ``column`` references; on PostgreSQL, each
    one found is locked ``FOR KEY SHARE`` until the transaction ends."""
    if connection.vendor != "postgresql":
        model = MODELS[column.references]
        step = connection.features.max_query_params or len(ids)
        found: set[int] = set()
        for start in range(0, len(ids), step):
            chunk = ids[start : start + step]
            found.update(model.objects.filter(id__in=chunk).values_list("id", flat=True))
        return found
    quote = connection.ops.quote_name
    lock = (
        f"SELECT {quote('id')} FROM {quote(column.references)} WHERE {quote('id')} = ANY(%s) "
        f"ORDER BY {quote('id')} FOR KEY SHARE"
    )
    with connection.cursor() as cursor:
        cursor.execute(lock, [ids])
        found = {row_id for (row_id,) in cursor.fetchall()}
        if absent := [row_id for row_id in ids if row_id not in found]:
            # A statement that waited for a row being deleted skips it, and cannot see a row
            # with the same id that the deleting transaction inserted (a restore replaces
            # every row): a second statement, with a snapshot taken after that commit, can.
            cursor.execute(lock, [absent])
            found.update(row_id for (row_id,) in cursor.fetchall())
    return found
