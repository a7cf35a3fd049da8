"""Replay: rows the rejection log holds go through the ingest pipeline again.

Arrival order never matters. A row whose only broken rule is a missing reference is parked
(``rejection_log``): it waits, one ``ParkedReference`` per missing id. Whenever a batch
that stored departments or jobs, or parked rows, commits (through any door), ``after_commit``
deletes the waits that what it stored, or what exists now, satisfies, and replays every row
that waits for nothing any more, in the same transaction, as a batch of source ``replay``.

Both sides check after their own commit, so a hire batch and the department batch it needs can
commit in either order, in different processes, at the same moment: whichever commits last
sees the other. Releases run one at a time (a transaction lock) and lock the rows they send,
so each row is replayed by one process, stored once (``ON CONFLICT``), and logged once. A crash
mid-release rolls its transaction back, waits included: nothing is lost between the steps.

``replay_rejections`` is the manual door, for what automatic replay cannot see (a department
added by hand in SQL): it replays every open entry of a table or batch that a replay could
store, the rows of an atomic batch together and all or nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import QuerySet

from backend import dictionary
from backend.dictionary import ReasonCode
from backend.models import Batch, Rejection, Source
from jobs.csv_files import parse_text
from jobs.ingest import pipeline
from jobs.ingest.audit import IngestResult, RejectedRow
from jobs.ingest.rejection_log import among
from jobs.ingest.rules import check_rows
from jobs.ingest.transactions import in_transaction
from jobs.locks import transaction_lock
from jobs.progress import Progress
from jobs.summary import JobSummary

logger = logging.getLogger("roster.replay")

CHUNK_ROWS = 10_000
"""Rows per replay batch (and transaction)."""

SHOWN_REJECTIONS = 1000
"""How many rows that failed again a manual replay returns; the log holds them all."""

REPLAYABLE = frozenset(
    {
        ReasonCode.UNKNOWN_REFERENCE,
        ReasonCode.BATCH_ABORTED,
        ReasonCode.DUPLICATE,
        ReasonCode.DUPLICATE_IN_BATCH,
        ReasonCode.INTEGRITY_ERROR,
    }
)
"""Reason codes that depend on the database's rows, so a later replay may store the row. A
broken rule of the row itself (a bad datetime, a blank name) stays broken: never replayed."""


class _Entry(NamedTuple):
    """What a replay needs of a log entry (a model instance per row costs more than its SQL)."""

    id: int
    table: str
    position: int
    raw: Any
    row_key: str


REPLAY_LOCK = "replay"
"""Taken by every release and manual replay transaction: one at a time."""

_local = threading.local()


def after_commit(*, table: str, arrived: list[int], parked: list[int]) -> None:
    """After a batch commits: release the waits that its stored ids (``arrived``, of
    ``table``) satisfy, and those of the rows it parked that what exists now satisfies; replay
    the rows left waiting for nothing.

    The replay's own batches commit inside this call and come back here: they join the work
    under way rather than start their own. A failure is logged, never raised: the batch that
    called is committed, and its parked rows stay open for the next replay.
    """
    queue: deque[tuple[str, list[int], list[int]]] | None = getattr(_local, "queue", None)
    if queue is not None:
        queue.append((table, arrived, parked))
        return
    _local.queue = queue = deque([(table, arrived, parked)])
    try:
        while queue:
            table, arrived, parked = queue.popleft()
            q = connection.ops.quote_name
            if arrived:
                match, values = among(q("ref_id"), arrived)
                _release(f"{q('references')} = %s AND {match}", [table, *values])
            if parked:
                exists = " OR ".join(
                    f"({q('references')} = '{name}' AND {q('ref_id')} IN "
                    f"(SELECT {q('id')} FROM {q(name)}))"
                    for name in sorted(dictionary.REFERENCED)
                )
                match, values = among(q("rejection_id"), parked)
                _release(f"{match} AND ({exists})", values)
    except Exception as error:
        logger.exception(
            "replay failed; the parked rows stay open until the next replay",
            extra={"table": table, "error": str(error)},
        )
    finally:
        _local.queue = None


def _decoded(raw: object) -> object:
    """A raw row from a plain cursor: JSON text (Django leaves jsonb unparsed, SQLite has text)."""
    return json.loads(raw) if isinstance(raw, str) else raw


def _release(where: str, params: list[Any]) -> None:
    """Delete the waits matching ``where`` and replay the
    rows that wait for nothing any more: 10,000 waits per transaction, each row replayed
    in the transaction that took its last wait away (a crash rolls both back).

    Releases run one at a time (a transaction lock), so when two of them take away a row's
    last two waits at once, the second sees the first's deletion and replays the row. The
    waits are listed first, then deleted by their ids: each chunk is primary-key look-ups,
    whatever the number of rows parked. A wait listed but gone by its chunk (another release
    took it) is simply not deleted twice.
    """
    q = connection.ops.quote_name
    waits = q("parked_references")
    with connection.cursor() as cursor:  # the waits to delete, their rows' waits together
        cursor.execute(
            f"SELECT {q('id')} FROM {waits} WHERE {where} ORDER BY {q('rejection_id')}", params
        )
        found = [wait for (wait,) in cursor.fetchall()]
        if len(found) > CHUNK_ROWS and connection.vendor == "postgresql":
            # A load that just parked many rows leaves the planner's statistics behind: with
            # them it may scan every open entry for each chunk instead of looking ids up.
            cursor.execute(f"ANALYZE {q('rejections')}, {waits}")

    def chunk(ids: list[int]) -> None:
        transaction_lock(REPLAY_LOCK)
        match, values = among(q("id"), ids)
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {waits} WHERE {match} RETURNING {q('rejection_id')}", values
            )
            touched = sorted({entry for (entry,) in cursor.fetchall()})
        if not touched:
            return
        entries = q("rejections")
        lock = " FOR UPDATE" if connection.vendor == "postgresql" else ""
        match, values = among(q("id"), touched)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {q('id')}, {q('table')}, {q('position')}, {q('raw')}, {q('row_key')} "
                f"FROM {entries} WHERE {match} AND {q('status')} = 'open' "
                f"AND {q('parked')} AND NOT EXISTS (SELECT 1 FROM {waits} "
                f"WHERE {waits}.{q('rejection_id')} = {entries}.{q('id')}) "
                f"ORDER BY {q('id')}{lock}",
                values,
            )
            ready = [
                _Entry(entry, table, position, _decoded(raw), key)
                for entry, table, position, raw, key in cursor.fetchall()
            ]
        for table, group in _by_table(ready).items():
            _send(table, group, atomic=False)

    for start in range(0, len(found), CHUNK_ROWS):
        in_transaction(partial(chunk, found[start : start + CHUNK_ROWS]))


def _locked(rows: QuerySet[Rejection]) -> QuerySet[Rejection]:
    """Rows locked for this transaction (PostgreSQL; on SQLite the database lock already lets
    one writer through at a time)."""
    return rows.select_for_update(of=("self",))


def _by_table(entries: Iterable[_Entry | Rejection]) -> dict[str, list[_Entry | Rejection]]:
    groups: dict[str, list[_Entry | Rejection]] = {}
    for entry in entries:
        groups.setdefault(entry.table, []).append(entry)
    return groups


def _send(table: str, entries: Sequence[_Entry | Rejection], *, atomic: bool) -> IngestResult:
    """One replay batch: the entries' rows as they were received, through the pipeline."""
    spec = dictionary.table(table)
    rows, faults = [], []
    for entry in entries:
        if isinstance(entry.raw, str):  # a file's line: read it again
            record = parse_text(entry.raw, spec)
            rows.append(record.raw)
            faults.append(record.faults)
        else:
            rows.append(entry.raw)
            faults.append(())
    return pipeline.store_rows(
        check_rows(table=spec, rows=rows, faults=faults),
        source=Source.REPLAY,
        atomic=atomic,
        positions=[entry.position for entry in entries],
        originals=[entry.raw for entry in entries],
        row_keys=[entry.row_key for entry in entries],
    )


# --- the manual door -------------------------------------------------------------------------


@dataclass(kw_only=True)
class ReplaySummary(JobSummary):
    """What a manual replay of one table did, over all its replay batches (``read``: the rows
    sent again)."""

    batch_ids: list[uuid.UUID] = field(default_factory=list)
    rejections: list[RejectedRow] = field(default_factory=list)
    """The first ``SHOWN_REJECTIONS`` rows that failed again."""

    @property
    def batch_id(self) -> uuid.UUID:
        """The first replay batch: a replay records at least one, even with nothing to send."""
        return self.batch_ids[0]

    def add(self, outcome: IngestResult) -> None:
        super().add(outcome)
        self.batch_ids.append(outcome.batch_id)
        room = SHOWN_REJECTIONS - len(self.rejections)
        self.rejections += outcome.rejections[: max(room, 0)]


class ReplayError(ValueError):
    """A replay asked for something that does not exist (an unknown batch)."""


def replay_rejections(
    *, table: str | None = None, batch_id: str | None = None, progress: Progress | None = None
) -> list[ReplaySummary]:
    """Replay the open entries of a table, of one batch, or of every table, that a replay could
    store (``REPLAYABLE``); each table's in batches of its own, of source ``replay``.

    Rows logged by an atomic batch are replayed together, atomically, and only when every open
    row of that batch is replayable. The rows that go in become resolved; the others stay open,
    once each, with one more attempt. A replay with nothing to send still records its (empty)
    batch, so every call leaves its trace.
    """
    origin = None
    if batch_id is not None:
        try:
            origin = Batch.objects.get(pk=uuid.UUID(str(batch_id)))
        except (ValueError, Batch.DoesNotExist):
            raise ReplayError(f"no batch {batch_id!r}") from None
        if table is not None and origin.table != table:
            raise ReplayError(f"batch {batch_id} is a batch of {origin.table}, not of {table}")
        table = origin.table
    tables = [table] if table else list(dictionary.TABLES)
    return [_replay_table(dictionary.table(name).name, origin, progress) for name in tables]


def _replay_table(table: str, origin: Batch | None, progress: Progress | None) -> ReplaySummary:
    clock = time.perf_counter()
    summary = ReplaySummary(table=table)

    def sent(outcome: IngestResult) -> None:
        summary.add(outcome)
        if progress:
            progress(table, summary.read)

    scope = Rejection.objects.filter(status=Rejection.Status.OPEN, table=table)
    if origin is not None:
        scope = scope.filter(batch=origin)
    atomic_batches: set[uuid.UUID] = set()
    last = 0
    while True:

        def chunk(after: int) -> int | None:
            transaction_lock(REPLAY_LOCK)
            rows = scope.filter(id__gt=after).select_related("batch").order_by("id")
            entries = list(_locked(rows)[:CHUNK_ROWS])
            if not entries:
                return None
            singles = []
            for entry in entries:
                if entry.batch.atomic:
                    atomic_batches.add(entry.batch_id)
                elif _replayable(entry):
                    singles.append(entry)
            if singles:
                sent(_send(table, singles, atomic=False))
            return entries[-1].id

        reached = in_transaction(partial(chunk, last))
        if reached is None:
            break
        last = reached
    for batch in sorted(atomic_batches):
        summary_of_batch = in_transaction(partial(_replay_atomic, scope, batch))
        if summary_of_batch is not None:
            sent(summary_of_batch)
    if not summary.batch_ids:  # nothing to send: the call still leaves its trace
        sent(_send(table, [], atomic=False))
    summary.seconds = time.perf_counter() - clock
    return summary


def _replay_atomic(scope: QuerySet[Rejection], batch: uuid.UUID) -> IngestResult | None:
    """An atomic batch's open rows, together and all or nothing, if a replay could store them."""
    transaction_lock(REPLAY_LOCK)
    entries = list(_locked(scope.filter(batch_id=batch).order_by("id")))
    if not entries or not all(_replayable(entry) for entry in entries):
        return None
    return _send(entries[0].table, entries, atomic=True)


def _replayable(entry: Rejection) -> bool:
    reasons = entry.reasons if isinstance(entry.reasons, list) else []
    return bool(reasons) and all(
        isinstance(reason, dict) and reason.get("code") in REPLAYABLE for reason in reasons
    )
