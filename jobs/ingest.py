"""The ingest pipeline: every row that enters Roster comes through ``ingest_rows``.

rows -> dictionary rules -> foreign keys -> repeats in the batch -> bulk INSERT ... ON CONFLICT
-> rejection log, all in one transaction per batch. The GraphQL mutation, the REST route, the
CSV loader and the restore all call it, so a rule is enforced the same way everywhere.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from backend import dictionary
from backend.dictionary import Reason, Table, Timestamp
from backend.models import MODELS, Batch, LoadRun, Source
from jobs import rejection_log, replay
from jobs.rejection_log import row_key

logger = logging.getLogger("roster.ingest")

_DEADLOCK_RETRIES = 3
_COPY_THRESHOLD = 1000  # rows; an API batch (at most 1000) takes one multi-row INSERT
_COPY_PAGE_ROWS = 50_000


@dataclass(frozen=True)
class RowRejection:
    """A row that was not inserted, with its position in the batch (or line in its file)."""

    position: int
    row_id: int | None
    raw: Any
    reasons: list[Reason]


@dataclass
class BatchResult:
    """What happened to one batch: the counts, and every rejected row with its reasons."""

    batch_id: uuid.UUID
    table: str
    received: int
    inserted: int
    status: str
    rejections: list[RowRejection] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.rejections)


class BatchSizeError(ValueError):
    """An API batch with no rows, or more than the API accepts: the whole request fails."""


def check_batch_size(count: int) -> None:
    """API doors accept 1 to ``MAX_BATCH_ROWS`` rows; files are chunked by their loader."""
    limit = dictionary.MAX_BATCH_ROWS
    if not 1 <= count <= limit:
        raise BatchSizeError(
            f"a batch must hold 1 to {limit} rows, got {count}; nothing was stored"
        )


class _AbortAtomicBatch(Exception):
    """Raised inside the insert savepoint to undo an atomic batch that hit a duplicate."""


@dataclass
class CheckedRows:
    """A batch after the dictionary's rules: everything that needs no database."""

    table: Table
    raws: list[Any]
    valid: dict[int, dict[str, Any]]
    reasons: dict[int, list[Reason]]
    order: list[int]
    """The valid rows' indexes in id order: the order they are written in."""
    referenced: dict[str, dict[int, list[int]]]
    """For each foreign key, the valid rows (indexes) that name each value."""
    repeats: bool
    """Whether an id appears on more than one valid row."""
    copy_lines: dict[int, str] | None
    """Each valid row as a line of PostgreSQL ``COPY`` CSV, when the caller asked for them."""

    def __post_init__(self) -> None:
        if len(self.order) != len(self.valid):  # a row missing here would never be written
            raise ValueError("order must list every valid row: build CheckedRows with check_rows")


def check_rows(
    *,
    table: str | Table,
    rows: Iterable[Any],
    copy_lines: bool = False,
    faults: Sequence[Sequence[Reason]] | None = None,
) -> CheckedRows:
    """Apply the dictionary's rules to each raw row. Pure Python: a loader can run it for the
    next chunk while the database stores the previous one, and with ``copy_lines`` it also
    formats the valid rows for PostgreSQL's ``COPY`` there.

    ``faults`` are a file reader's reasons to reject a line whatever its fields say (a broken
    quote, a wrong column count): such a row is rejected with them first.
    """
    spec = dictionary.table(table) if isinstance(table, str) else table
    raws = list(rows)
    valid: dict[int, dict[str, Any]] = {}
    reasons: dict[int, list[Reason]] = {}
    clean = spec.clean
    for index, raw in enumerate(raws):
        row, broken = clean(raw)
        if faults is not None and faults[index]:
            reasons[index] = [*faults[index], *broken]
        elif row is None:
            reasons[index] = broken
        else:
            valid[index] = row
    order = sorted(valid, key=lambda index: valid[index]["id"])
    referenced: dict[str, dict[int, list[int]]] = {}
    for column in spec.foreign_keys:
        groups: dict[int, list[int]] = {}
        name = column.name
        for index, row in valid.items():
            groups.setdefault(row[name], []).append(index)
        referenced[name] = groups
    repeats = len({valid[index]["id"] for index in order}) < len(order)
    lines = None
    if copy_lines:
        line = spec.copy_line
        lines = {index: line(row) for index, row in valid.items()}
    return CheckedRows(spec, raws, valid, reasons, order, referenced, repeats, lines)


def ingest_rows(*, table: str | Table, rows: Iterable[Any], **options: Any) -> BatchResult:
    """Validate ``rows``, bulk-insert the valid ones and log the rejected ones, in one transaction.

    ``rows`` are mappings keyed by the dictionary's column names, exactly as received. The
    options are those of ``store_rows``.
    """
    return store_rows(check_rows(table=table, rows=rows), **options)


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
) -> BatchResult:
    """Store a checked batch: foreign keys, repeats, the bulk insert and the rejection log.

    With ``atomic`` any invalid row keeps the whole batch out, and every row is logged.
    ``positions`` numbers the rows for the rejection log (line numbers for files); the default
    is 0, 1, 2... ``originals`` is what the log keeps as each row's raw form when it differs
    from the row (a CSV line's text). ``run`` ties the batch to the file load it is a chunk of.
    ``row_keys`` are the log entries a replay sends again (``jobs/replay.py``).

    Once the batch commits, the rows it parked and the parked rows waiting for what it stored
    are replayed (``jobs.replay.after_commit``).
    """
    spec, raws = checked.table, checked.raws
    numbers = positions if positions is not None else range(len(raws))
    logged = originals if originals is not None else raws
    if not len(numbers) == len(logged) == len(raws) or (
        row_keys is not None and len(row_keys) != len(raws)
    ):
        raise ValueError("positions, originals and row_keys must cover every row")
    started_at = timezone.now()
    clock = time.perf_counter()
    # Inside a caller's transaction (a file chunk with its run's progress, a restore), that
    # transaction is the unit: the batch takes no savepoint of its own (two round trips), and
    # the caller's ``in_transaction`` starts the whole unit again after a deadlock.
    nested = connection.in_atomic_block

    def write() -> BatchResult:
        with transaction.atomic(savepoint=False):
            return _write_batch(
                spec=spec,
                raws=raws,
                logged=logged,
                numbers=numbers,
                valid=dict(checked.valid),
                reasons={i: list(r) for i, r in checked.reasons.items()},
                checked=checked,
                source=str(source),
                atomic=atomic,
                uri=uri,
                run=run,
                started_at=started_at,
                row_keys=row_keys,
            )

    try:
        result = write() if nested else in_transaction(write)
    except DatabaseError as error:
        _record_failure(spec, source, atomic, uri, len(raws), started_at, error, nested)
        raise

    _log(result, source=str(source), seconds=time.perf_counter() - clock)
    return result


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


def _write_batch(
    *,
    spec: Table,
    raws: list[Any],
    logged: Sequence[Any],
    numbers: Sequence[int],
    valid: dict[int, dict[str, Any]],
    reasons: dict[int, list[Reason]],
    checked: CheckedRows,
    source: str,
    atomic: bool,
    uri: str,
    run: LoadRun | None,
    started_at: datetime,
    row_keys: Sequence[str] | None,
) -> BatchResult:
    """Everything that needs the database, inside the batch's transaction."""
    missing = _check_references(spec, valid, reasons, checked.referenced)
    if checked.repeats:
        _check_repeats(valid, reasons, numbers)

    inserted = 0
    if valid and not (atomic and reasons):
        try:
            # Only an atomic batch may need to undo its insert (the batch's own transaction
            # still holds everything); a savepoint is a round trip per batch.
            with transaction.atomic() if atomic else contextlib.nullcontext():
                stored_ids, failures = _insert(spec, valid, checked.order, checked.copy_lines)
                conflicts = (
                    []
                    if stored_ids is None
                    else [index for index, row in valid.items() if row["id"] not in stored_ids]
                )
                for index in conflicts:
                    if index not in failures:
                        row_id = valid[index]["id"]
                        failures[index] = Reason(
                            "id", "duplicate", f"id {row_id} already exists in {spec.name}"
                        )
                for index, reason in failures.items():
                    reasons.setdefault(index, []).append(reason)
                    del valid[index]
                if atomic and failures:
                    raise _AbortAtomicBatch
                inserted = len(valid)
        except _AbortAtomicBatch:
            inserted = 0

    if atomic and reasons:
        for index in valid:
            reasons[index] = [
                Reason(None, "batch_aborted", "not inserted: the atomic batch has invalid rows")
            ]

    clean = checked.valid  # a row the rules passed has a clean id: the log keeps that one
    rejections = [
        RowRejection(
            numbers[i], clean[i]["id"] if i in clean else _row_id(raws[i]), logged[i], reasons[i]
        )
        for i in sorted(reasons)
    ]
    status = Batch.Status.REJECTED if atomic and rejections else Batch.Status.COMPLETED
    batch = Batch.objects.create(
        id=uuid.uuid4(),
        source=source,
        table=spec.name,
        uri=uri,
        run=run,
        atomic=atomic,
        received=len(raws),
        inserted=inserted,
        rejected=len(rejections),
        status=status,
        started_at=started_at,
        finished_at=timezone.now(),
    )
    now = batch.finished_at
    stored = [valid[index]["id"] for index in valid] if inserted else []
    rejection_log.resolve(table=spec.name, row_ids=stored, batch_id=batch.id, now=now)
    logged_rows = []
    for index, rejection in zip(sorted(reasons), rejections, strict=True):
        kept = _raw_for_log(logged[index])
        logged_rows.append(
            rejection_log.LoggedRow(
                position=rejection.position,
                row_id=rejection.row_id,
                raw=kept,
                reasons=_reasons_for_log(tuple(reasons[index])),
                key=row_keys[index] if row_keys is not None else row_key(spec.name, kept),
                waits=missing.get(index, []) if _parks(reasons[index]) else [],
            )
        )
    parked = rejection_log.record(
        table=spec.name, batch_id=batch.id, source=source, rows=logged_rows, atomic=atomic, now=now
    )
    arrived = stored if spec.name in dictionary.REFERENCED else []
    if parked or arrived:
        transaction.on_commit(partial(replay.after_commit, table=spec.name, arrived=arrived,
                                      parked=parked))  # fmt: skip
    return BatchResult(batch.id, spec.name, len(raws), inserted, status, rejections)


@functools.lru_cache(maxsize=4096)
def _reasons_for_log(reasons: tuple[Reason, ...]) -> list[dict[str, Any]]:
    """The reasons as the log keeps them; rows of a file often share theirs."""
    return _jsonable([reason.as_dict() for reason in reasons])


def _parks(reasons: list[Reason]) -> bool:
    """Whether a row waits for what it references: missing references are all that is wrong."""
    return all(reason.code == "unknown_reference" for reason in reasons)


def _check_references(
    spec: Table,
    valid: dict[int, dict[str, Any]],
    reasons: dict[int, list[Reason]],
    referenced: dict[str, dict[int, list[int]]],
) -> dict[int, list[tuple[str, int]]]:
    """Reject rows whose foreign keys point nowhere: one query per referenced table. Return
    each such row's missing references, as (table, id).

    Every key of a row is checked before the row is dropped, so all its bad keys are reported.
    ``referenced`` (from ``check_rows``) lists the rows that name each value, so only the rows
    with a missing value are visited.
    """
    missing: dict[int, list[Reason]] = {}
    waits: dict[int, list[tuple[str, int]]] = {}
    for column in spec.foreign_keys:
        groups = referenced.get(column.name, {})
        if not groups:
            continue
        model = MODELS[column.references]
        ids = sorted(groups)
        step = connection.features.max_query_params or len(ids)
        existing: set[int] = set()
        for start in range(0, len(ids), step):
            chunk = ids[start : start + step]
            existing.update(model.objects.filter(id__in=chunk).values_list("id", flat=True))
        singular = column.name.removesuffix("_id")
        for value in groups.keys() - existing:
            reason = Reason(column.name, "unknown_reference", f"{singular} {value} does not exist")
            for index in groups[value]:
                if index in valid:
                    missing.setdefault(index, []).append(reason)
                    waits.setdefault(index, []).append((column.references, value))
    for index, found in sorted(missing.items()):
        del valid[index]
        reasons.setdefault(index, []).extend(found)
    return waits


def _check_repeats(
    valid: dict[int, dict[str, Any]], reasons: dict[int, list[Reason]], numbers: Sequence[int]
) -> None:
    """The first valid row with an id claims it; later rows with the same id are rejected."""
    first_seen: dict[int, int] = {}
    for index in list(valid):
        row_id = valid[index]["id"]
        if row_id in first_seen:
            del valid[index]
            message = f"id {row_id} repeats row {numbers[first_seen[row_id]]} of this batch"
            reasons.setdefault(index, []).append(Reason("id", "duplicate_in_batch", message))
        else:
            first_seen[row_id] = index


def _insert(
    spec: Table,
    valid: dict[int, dict[str, Any]],
    order: list[int],
    copy_lines: dict[int, str] | None = None,
) -> tuple[set[int] | None, dict[int, Reason]]:
    """Bulk-insert the valid rows in id order (``order`` may list rows dropped since),
    skipping ids that exist already; return the ids stored (``None``: every row), and the
    rows the database refused, with why.

    One multi-row ``INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id`` per page, rows in id
    order so that concurrent batches take their locks in the same order and never deadlock. A
    page that still fails (a constraint the dictionary's rules did not foresee) is split until
    the bad rows are isolated, as pgloader does, so good rows are never lost because of a
    neighbour. Foreign keys are different: Django makes them ``DEFERRABLE INITIALLY DEFERRED``,
    so a parent deleted after ``_check_references`` fails the whole batch at its commit.
    """
    copy = connection.vendor == "postgresql" and len(valid) > _COPY_THRESHOLD
    if copy and _copy_new_rows(spec, valid, order, copy_lines):
        return None, {}
    ordered = [(index, valid[index]) for index in order if index in valid]
    per_statement = _rows_per_statement(len(spec.columns))
    stored: set[int] = set()
    failures: dict[int, Reason] = {}
    for start in range(0, len(ordered), per_statement):
        _insert_isolating(spec, ordered[start : start + per_statement], stored, failures)
    return stored, failures


def _insert_isolating(
    spec: Table,
    page: list[tuple[int, dict[str, Any]]],
    stored: set[int],
    failures: dict[int, Reason],
) -> None:
    try:
        with transaction.atomic():
            stored.update(_insert_page(spec, [row for _, row in page]))
    except IntegrityError as error:
        if len(page) == 1:
            message = str(error).strip().splitlines()[0]
            failures[page[0][0]] = Reason(None, "integrity_error", message)
            return
        middle = len(page) // 2
        _insert_isolating(spec, page[:middle], stored, failures)
        _insert_isolating(spec, page[middle:], stored, failures)


def _insert_page(spec: Table, rows: list[dict[str, Any]]) -> list[int]:
    if connection.vendor == "postgresql" and len(rows) > _COPY_THRESHOLD:
        return _copy_page(spec, rows)
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


def _copy_new_rows(
    spec: Table,
    valid: dict[int, dict[str, Any]],
    order: list[int],
    copy_lines: dict[int, str] | None,
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


def _copy_statement(spec: Table, target: str) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(c) for c in spec.column_names)
    return f"COPY {quote(target)} ({columns}) FROM STDIN WITH (FORMAT csv)"


def _copy_page(spec: Table, rows: list[dict[str, Any]]) -> list[int]:
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


def _rows_per_statement(column_count: int) -> int:
    if connection.vendor == "postgresql":
        return _COPY_PAGE_ROWS
    max_params = connection.features.max_query_params or 65535
    return max(1, min(dictionary.MAX_BATCH_ROWS, max_params // column_count))


def _is_retryable(error: DatabaseError) -> bool:
    """Deadlocks and serialization failures (PostgreSQL) can be retried as a whole batch."""
    return getattr(getattr(error, "__cause__", None), "pgcode", None) in {"40P01", "40001"}


def _row_id(raw: Any) -> int | None:
    """The id a rejected row claimed, if it fits a 32-bit integer, to make the log searchable."""
    value = raw.get("id") if isinstance(raw, Mapping) else None
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,20}", value.strip()):
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31:
        return value
    return None


def _jsonable(raw: Any) -> Any:
    """The raw row as JSON: mappings and lists as they are, anything else as its text."""
    if isinstance(raw, float) and not math.isfinite(raw):
        return str(raw)  # NaN and Infinity are not JSON
    if isinstance(raw, str):  # jsonb refuses NUL, and no database takes a lone surrogate
        return raw.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode()
    if raw is None or isinstance(raw, bool | int | float):
        return raw
    if isinstance(raw, Mapping):
        return {_jsonable(str(k)): _jsonable(v) for k, v in raw.items()}
    if isinstance(raw, list | tuple):
        return [_jsonable(v) for v in raw]
    return str(raw)


# --- the rejection log's raw rows: as received, within bounds ----------------------------------

RAW_MAX_DEPTH = 32
"""Arrays and objects nested deeper are kept as their JSON text."""
RAW_MAX_STRING = 8192
"""Characters kept of a string inside a row (and of such a JSON text)."""
RAW_MAX_CHARS = 65536
"""Characters kept of a whole row: its JSON, or its text (a file's line, whose reader bounds it
the same way, ``jobs/csv_files.py``). A larger row is kept as its JSON text, cut."""
RAW_INT_BITS = 64
"""Integers wider than a signed 64-bit one are kept as their decimal text."""
_INT_RANGE = range(-(2 ** (RAW_INT_BITS - 1)), 2 ** (RAW_INT_BITS - 1))
_TRUNCATED = re.compile(r"\.\.\. \[truncated: [0-9,]+ characters in all\]\Z")


def _raw_for_log(raw: Any) -> Any:
    """The row as the log keeps it: exactly as received while it is within the bounds above,
    so that every reader (and orjson, which refuses wider integers and deeper nesting) can have
    it back. Beyond them the excess is kept as text; a text that was cut ends with
    ``... [truncated: N characters in all]``. NUL and lone surrogates are escaped (no database
    takes them)."""
    if isinstance(raw, str):
        return _log_text(raw, limit=RAW_MAX_CHARS)
    value, size = _bounded(raw, 0)
    if size <= RAW_MAX_CHARS:
        return value
    return _log_text(*_json_text(raw, RAW_MAX_CHARS), limit=RAW_MAX_CHARS)


def _bounded(raw: Any, depth: int) -> tuple[Any, int]:
    """``raw`` within the bounds, and about how many characters of JSON it takes; the walk
    stops once the row is over ``RAW_MAX_CHARS``, which is then kept as text anyway."""
    if raw is None or isinstance(raw, bool):
        return raw, 5
    if isinstance(raw, int):
        if raw in _INT_RANGE:
            return raw, 20
        return _bounded(_digits(raw), depth)
    if isinstance(raw, float):
        return (raw, 24) if math.isfinite(raw) else (str(raw), 10)
    if isinstance(raw, str):
        text = _log_text(raw, limit=RAW_MAX_STRING)
        return text, len(text) + 2
    if not isinstance(raw, Mapping | list | tuple):
        return _bounded(str(raw), depth)
    if depth >= RAW_MAX_DEPTH:
        text = _log_text(*_json_text(raw, RAW_MAX_STRING), limit=RAW_MAX_STRING)
        return text, len(text) + 2
    size = 2
    if isinstance(raw, Mapping):
        mapping: dict[str, Any] = {}
        for key, item in raw.items():
            name, key_size = _bounded(str(key), depth)
            mapping[name], item_size = _bounded(item, depth + 1)
            size += key_size + item_size + 2
            if size > RAW_MAX_CHARS:
                return None, size
        return mapping, size
    items = []
    for item in raw:
        value, item_size = _bounded(item, depth + 1)
        items.append(value)
        size += item_size + 1
        if size > RAW_MAX_CHARS:
            return None, size
    return items, size


def _log_text(text: str, total: int | None = None, *, limit: int) -> str:
    """``text`` (the start of one ``total`` characters long) escaped, and cut to ``limit``
    characters and marked if it is longer. A text its reader cut already is left as it is."""
    text = text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode()
    total = len(text) if total is None else total
    if total <= limit or (len(text) <= limit + 64 and _TRUNCATED.search(text)):
        return text
    return f"{text[:limit]}... [truncated: {total:,} characters in all]"


def _digits(number: int) -> str:
    try:
        return str(number)
    except ValueError:  # Python writes at most 4,300 digits; JSON parsing refuses more anyway
        return hex(number)


class _Token(str):
    """Text the JSON writer copies as it is."""


def _json_text(value: Any, limit: int) -> tuple[str, int]:
    """The compact JSON text of ``value``, written without recursion (the value may nest as
    deeply as the request parser allowed): its first ``limit`` characters, and its length."""
    out: list[str] = []
    size = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Token):
            piece = str(item)
        elif isinstance(item, Mapping):
            entries = list(item.items())
            stack.append(_Token("}"))
            for index in range(len(entries) - 1, -1, -1):
                key, child = entries[index]
                stack.append(child)
                stack.append(_Token(json.dumps(str(key), ensure_ascii=False) + ":"))
                if index:
                    stack.append(_Token(","))
            piece = "{"
        elif isinstance(item, list | tuple):
            stack.append(_Token("]"))
            for index in range(len(item) - 1, -1, -1):
                stack.append(item[index])
                if index:
                    stack.append(_Token(","))
            piece = "["
        elif isinstance(item, int) and not isinstance(item, bool):
            piece = _digits(item)
        elif item is None or isinstance(item, bool | float | str):
            piece = json.dumps(item, ensure_ascii=False)
        else:
            piece = json.dumps(str(item), ensure_ascii=False)
        if size < limit:
            out.append(piece)
        size += len(piece)
    return "".join(out)[:limit], size


def _record_failure(
    spec: Table,
    source: Source | str,
    atomic: bool,
    uri: str,
    received: int,
    started_at: datetime,
    error: Exception,
    nested: bool,
) -> None:
    """Leave an audit trace of a batch that rolled back on an unexpected database error.

    Inside a caller's transaction only the log line is left: that transaction is broken, and
    the caller records the failure its own way (a load run's status, a restore's error).
    """
    logger.error(
        "batch failed", extra={"table": spec.name, "source": str(source), "error": str(error)}
    )
    if nested:
        return
    try:
        Batch.objects.create(
            source=str(source),
            table=spec.name,
            uri=uri,
            atomic=atomic,
            received=received,
            status=Batch.Status.FAILED,
            error=str(error)[:2000],
            started_at=started_at,
            finished_at=timezone.now(),
        )
    except Exception:  # the database itself may be what failed
        logger.exception("could not record the failed batch")


def _log(result: BatchResult, *, source: str, seconds: float) -> None:
    """One structured line per rejected row, and one for the batch. A parked row is not a
    fault yet (its references may be on their way): its line is at INFO."""
    parking = result.status != Batch.Status.REJECTED
    for rejection in result.rejections:
        parked = parking and _parks(rejection.reasons)
        logger.log(
            logging.INFO if parked else logging.WARNING,
            "row parked" if parked else "row rejected",
            extra={
                "batch_id": str(result.batch_id),
                "source": source,
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
            "source": source,
            "table": result.table,
            "received": result.received,
            "inserted": result.inserted,
            "rejected": result.rejected,
            "status": result.status,
            "seconds": round(seconds, 4),
        },
    )
