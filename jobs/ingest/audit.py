"""Step 5 of the pipeline: the audit. Every batch leaves a ``Batch`` row, every rejected row an
entry in the rejection log (``rejection_log``), and both a structured log line."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from django.utils import timezone

from backend.dictionary import Reason, Table
from backend.models import Batch, LoadRun, Source
from jobs.ingest import rejection_log
from jobs.ingest.raw import jsonable, raw_for_log
from jobs.ingest.references import Wait
from jobs.ingest.rules import claimed_id, only_missing_references

logger = logging.getLogger("roster.ingest")


@dataclass(frozen=True)
class RejectedRow:
    """A row that was not inserted, with its position in the batch (or line in its file)."""

    position: int
    row_id: int | None
    raw: Any
    reasons: list[Reason]


@dataclass
class IngestResult:
    """What happened to one batch: the counts, and every rejected row with its reasons."""

    batch_id: uuid.UUID
    table: str
    received: int
    inserted: int
    status: str
    rejections: list[RejectedRow] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.rejections)


@dataclass(frozen=True)
class Arrival:
    """How a batch arrived: its door, its file and load run, whether it is all or nothing, and
    how the log names its rows (``positions``: line numbers for files; ``originals``: a CSV
    line's text; ``row_keys``: the entries a replay sends again)."""

    source: str
    atomic: bool
    uri: str
    run: LoadRun | None
    positions: Sequence[int]
    originals: Sequence[Any]
    row_keys: Sequence[str] | None
    started_at: datetime


@dataclass(frozen=True)
class Recorded:
    """The audit of a committed batch: its result, and what its commit may let replay."""

    result: IngestResult
    stored: list[int]
    parked: list[int]


def record_batch(
    spec: Table,
    arrival: Arrival,
    *,
    raws: Sequence[Any],
    checked_valid: Mapping[int, Mapping[str, Any]],
    reasons: dict[int, list[Reason]],
    waits: dict[int, list[Wait]],
    stored: list[int],
) -> Recorded:
    """Write the batch's ``Batch`` row, resolve the log entries of the ids it ``stored``, and
    log each rejected row once (``reasons``, by index), parking those that only wait for
    references (``waits``). A row the rules passed (``checked_valid``) is logged with its
    clean id, any other with the id it claimed, if any."""
    rejections = [
        RejectedRow(
            arrival.positions[i],
            checked_valid[i]["id"] if i in checked_valid else claimed_id(raws[i]),
            arrival.originals[i],
            reasons[i],
        )
        for i in sorted(reasons)
    ]
    atomic = arrival.atomic
    status = Batch.Status.REJECTED if atomic and rejections else Batch.Status.COMPLETED
    batch = Batch.objects.create(
        id=uuid.uuid4(),
        source=arrival.source,
        table=spec.name,
        uri=arrival.uri,
        run=arrival.run,
        atomic=atomic,
        received=len(arrival.positions),
        inserted=len(stored),
        rejected=len(rejections),
        status=status,
        started_at=arrival.started_at,
        finished_at=timezone.now(),
    )
    now = batch.finished_at
    rejection_log.resolve(table=spec.name, row_ids=stored, batch_id=batch.id, now=now)
    entries = []
    for index, rejection in zip(sorted(reasons), rejections, strict=True):
        kept = raw_for_log(rejection.raw)
        keys = arrival.row_keys
        entries.append(
            rejection_log.LoggedRow(
                position=rejection.position,
                row_id=rejection.row_id,
                raw=kept,
                reasons=_reasons_for_log(tuple(reasons[index])),
                key=keys[index] if keys is not None else rejection_log.row_key(spec.name, kept),
                waits=waits.get(index, []) if only_missing_references(reasons[index]) else [],
            )
        )
    parked = rejection_log.record(
        table=spec.name,
        batch_id=batch.id,
        source=arrival.source,
        rows=entries,
        atomic=atomic,
        now=now,
    )
    result = IngestResult(batch.id, spec.name, len(arrival.positions), len(stored), status)
    result.rejections = rejections
    return Recorded(result, stored, parked)


@functools.lru_cache(maxsize=4096)
def _reasons_for_log(reasons: tuple[Reason, ...]) -> list[dict[str, Any]]:
    """The reasons as the log keeps them; rows of a file often share theirs."""
    return cast(list[dict[str, Any]], jsonable([reason.as_dict() for reason in reasons]))


def record_failure(spec: Table, arrival: Arrival, error: Exception, *, nested: bool) -> None:
    """Leave an audit trace of a batch that rolled back on an unexpected database error.

    Inside a caller's transaction only the log line is left: that transaction is broken, and
    the caller records the failure its own way (a load run's status, a restore's error).
    """
    logger.error(
        "batch failed", extra={"table": spec.name, "source": arrival.source, "error": str(error)}
    )
    if nested:
        return
    try:
        Batch.objects.create(
            source=arrival.source,
            table=spec.name,
            uri=arrival.uri,
            atomic=arrival.atomic,
            received=len(arrival.positions),
            status=Batch.Status.FAILED,
            error=str(error)[:2000],
            started_at=arrival.started_at,
            finished_at=timezone.now(),
        )
    except Exception:  # the database itself may be what failed
        logger.exception("could not record the failed batch")


def log_result(result: IngestResult, *, source: Source | str, seconds: float) -> None:
    """One structured line per rejected row, and one for the batch. A parked row is not a
    fault yet (its references may be on their way): its line is at INFO."""
    parking = result.status != Batch.Status.REJECTED
    for rejection in result.rejections:
        parked = parking and only_missing_references(rejection.reasons)
        logger.log(
            logging.INFO if parked else logging.WARNING,
            "row parked" if parked else "row rejected",
            extra={
                "batch_id": str(result.batch_id),
                "source": str(source),
                "table": result.table,
                "position": rejection.position,
                "row_id": rejection.row_id,
                "reasons": [reason.as_dict() for reason in rejection.reasons],
            },
        )
    logger.info(
        "batch ingested",
        extra={
            "batch_id": str(result.batch_id),
            "source": str(source),
            "table": result.table,
            "received": result.received,
            "inserted": result.inserted,
            "rejected": result.rejected,
            "status": result.status,
            "seconds": round(seconds, 4),
        },
    )
