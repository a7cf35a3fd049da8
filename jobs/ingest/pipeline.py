"""The pipeline's one function, ``_ingest``: its five steps, in one transaction per batch."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from backend import dictionary
from backend.dictionary import Reason, ReasonCode, Table
from backend.models import LoadRun, Source
from jobs.ingest import audit, replay, writers
from jobs.ingest.audit import Arrival, IngestResult
from jobs.ingest.references import reject_missing_references
from jobs.ingest.rules import CheckedRows, Verdicts, check_rows, reject_repeats
from jobs.ingest.transactions import in_transaction


def ingest_rows(
    *,
    table: str | Table,
    rows: Iterable[Any],
    source: Source | str,
    atomic: bool = False,
    positions: Sequence[int] | None = None,
    uri: str = "",
    run: LoadRun | None = None,
) -> IngestResult:
    """Validate ``rows``, bulk-insert the valid ones and log the rejected ones, in one
    transaction. ``rows`` are mappings keyed by the dictionary's column names, as received;
    with ``atomic`` any invalid row keeps the whole batch out. The other options are those of
    ``store_rows``."""
    checked = check_rows(table=table, rows=rows)
    return store_rows(checked, source=source, atomic=atomic, positions=positions, uri=uri, run=run)


def store_rows(
    checked: CheckedRows,
    *,
    source: Source | str,
    atomic: bool = False,
    positions: Sequence[int] | None = None,
    originals: Sequence[Any] | None = None,
    uri: str = "",
    run: LoadRun | None = None,
    row_keys: Sequence[str] | None = None,
) -> IngestResult:
    """Store a batch that went through the rules (``check_rows``): steps 2 to 5.

    ``positions`` numbers the rows for the rejection log (line numbers for files; the default
    is 0, 1, 2...). ``originals`` is what the log keeps as each row's raw form when it differs
    from the row (a CSV line's text). ``run`` ties the batch to the file load it is a chunk of.
    ``row_keys`` are the log entries a replay sends again (``jobs/ingest/replay.py``).
    """
    raws = checked.raws
    arrival = Arrival(
        source=str(source),
        atomic=atomic,
        uri=uri,
        run=run,
        positions=positions if positions is not None else range(len(raws)),
        originals=originals if originals is not None else raws,
        row_keys=row_keys,
        started_at=timezone.now(),
    )
    if not len(arrival.positions) == len(arrival.originals) == len(raws) or (
        row_keys is not None and len(row_keys) != len(raws)
    ):
        raise ValueError("positions, originals and row_keys must cover every row")
    clock = time.perf_counter()
    # Inside a caller's transaction (a file chunk with its run's progress, a restore), that
    # transaction is the unit: the batch takes no savepoint of its own (two round trips), and
    # the caller's ``in_transaction`` starts the whole unit again after a deadlock.
    nested = connection.in_atomic_block
    work = partial(_ingest, checked, arrival)
    try:
        result = work() if nested else in_transaction(work)
    except DatabaseError as error:
        audit.record_failure(checked.table, arrival, error, nested=nested)
        raise
    audit.log_result(result, source=source, seconds=time.perf_counter() - clock)
    return result


def _ingest(checked: CheckedRows, arrival: Arrival) -> IngestResult:
    """The five steps, inside the batch's transaction. Step 1, the dictionary's rules, ran in
    ``check_rows``; each later step rejects rows through the batch's ``Verdicts``."""
    with transaction.atomic(savepoint=False):
        spec = checked.table
        verdicts = Verdicts.of(checked)
        # 2. Foreign keys: a row whose department or job does not exist waits for it.
        waits = reject_missing_references(spec, verdicts, checked.referenced)
        # 3. Ids repeated within the batch: the first row claims the id.
        if checked.repeats:
            reject_repeats(verdicts, arrival.positions)
        # 4. The bulk write, skipping (and rejecting) ids that exist already.
        stored = _write(checked, verdicts, atomic=arrival.atomic)
        # 5. The audit: the batch, the rejection log, and replay once this commits.
        recorded = audit.record_batch(
            spec, arrival, raws=checked.raws, checked_valid=checked.valid,
            reasons=verdicts.reasons, waits=waits, stored=stored,
        )  # fmt: skip
        arrived = stored if spec.name in dictionary.REFERENCED else []
        if recorded.parked or arrived:
            transaction.on_commit(partial(replay.after_commit, table=spec.name, arrived=arrived,
                                          parked=recorded.parked))  # fmt: skip
        return recorded.result


class _AbortAtomicBatch(Exception):
    """Raised inside the insert savepoint to undo an atomic batch that hit a duplicate."""


def _write(checked: CheckedRows, verdicts: Verdicts, *, atomic: bool) -> list[int]:
    """Write the valid rows and return the ids stored. A row whose id exists already, or that
    the database refused, is rejected. An atomic batch stores all its rows or none: if any was
    rejected, each valid one is rejected as ``batch_aborted``."""
    spec = checked.table
    valid, reasons = verdicts.valid, verdicts.reasons
    stored: list[int] = []
    if valid and not (atomic and reasons):
        try:
            # Only an atomic batch may need to undo its insert (the batch's own transaction
            # still holds everything); a savepoint is a round trip per batch.
            with transaction.atomic() if atomic else contextlib.nullcontext():
                written = writers.write(spec, valid, checked.order, checked.copy_lines)
                refused = written.refused
                for index, row in valid.items():
                    if written.stored is not None and row["id"] not in written.stored:
                        message = f"id {row['id']} already exists in {spec.name}"
                        refused.setdefault(index, Reason("id", ReasonCode.DUPLICATE, message))
                for index, reason in refused.items():
                    verdicts.reject(index, reason)
                if atomic and refused:
                    raise _AbortAtomicBatch
                stored = [row["id"] for row in valid.values()]
        except _AbortAtomicBatch:
            stored = []
    if atomic and reasons:
        aborted = Reason(
            None, ReasonCode.BATCH_ABORTED, "not inserted: the atomic batch has invalid rows"
        )
        for index in list(valid):
            verdicts.reject(index, aborted)
    return stored
