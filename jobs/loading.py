"""Load CSV sources into their tables: streamed, chunked, recorded, idempotent and resumable.

Each chunk goes through the ingest pipeline in one transaction together with the run's
progress (``last_line``), so a run killed at any point resumes after its last committed chunk
and ends with exactly the rows and rejections of a clean run.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from urllib.parse import unquote

from django.db import DatabaseError, connection
from django.utils import timezone

from backend import dictionary
from backend.models import LoadRun, Source
from jobs.csv_files import CsvRow, read_rows, table_for
from jobs.ingest import (
    CheckedRows,
    IngestResult,
    check_rows,
    in_transaction,
    ingest_rows,
    store_rows,
)
from jobs.locks import transaction_lock, work_lock
from jobs.progress import Progress
from jobs.read_ahead import read_ahead
from jobs.sources import SourceFile, in_dependency_order, resolve
from jobs.summary import JobSummary

logger = logging.getLogger("roster.loading")

DEFAULT_CHUNK_SIZE = 20_000
"""Rows per transaction. Each chunk pays a fixed cost (its audit row, the run's progress, the
foreign-key look-ups, the ``COPY`` savepoint, the hires summary's upserts and the commit),
which a larger chunk spreads over more rows; memory stays flat either way, since a chunk is all
a load holds. A random chunk of 20,000 hires upserts fewer summary rows per hire than one of
10,000, and with one chunk read ahead (``READ_AHEAD``) a load holds at most three chunks: at
10M rows, 0.97x the time of psql's copy and 134 MB, against 1.03x and 106 MB for chunks of
10,000 rows and two read ahead (docs/benchmarks.md)."""

READ_AHEAD = 1
"""Chunks checked ahead of the one being stored: one is enough to keep the database busy."""


@dataclass(kw_only=True)
class LoadSummary(JobSummary):
    """A load of one source: its URI and run, and the rows an earlier run had committed."""

    uri: str
    skipped: int = 0
    """Rows committed by an earlier, interrupted run (resumed), or by the completed run of an
    unchanged source."""
    status: str = LoadRun.Status.RUNNING
    unchanged: bool = False
    run_id: int | None = None


@dataclass
class _Chunk:
    """A chunk of a file, checked: made in the read-ahead thread, stored in the caller's."""

    checked: CheckedRows
    lines: list[int]
    texts: list[str]

    @classmethod
    def check(cls, table: dictionary.Table, rows: list[CsvRow], for_copy: bool) -> _Chunk:
        lines, raws, texts, faults = (list(column) for column in zip(*rows, strict=True))
        found = faults if any(faults) else None  # a line the reader could not take as a row
        checked = check_rows(table=table, rows=raws, copy_lines=for_copy, faults=found)
        # A valid row is written from its clean values, and logged, if the database refuses
        # it, with its line's text and clean id: its raw fields (a dict of strings, about half
        # of what a checked row holds) are never read again.
        for index in checked.valid:
            checked.raws[index] = None
        return cls(checked, lines, texts)


def _chunks(rows: Iterator[CsvRow], size: int) -> Iterator[list[CsvRow]]:
    while chunk := list(islice(rows, size)):
        yield chunk


def _start_run(file: SourceFile, table: str, force: bool) -> tuple[LoadRun, bool]:
    """The run to carry on (a killed or failed one resumes) or a new one; ``True`` when it is
    done already. The caller holds the source's lock, so a ``running`` run found here belongs
    to a process that died: no live process is loading it."""
    previous = (
        LoadRun.objects.filter(uri=file.uri, size=file.size, fingerprint=file.fingerprint)
        .order_by("-started_at", "-id")
        .first()
    )
    if previous is not None and not force:
        if previous.status == LoadRun.Status.COMPLETED:
            return previous, True
        previous.status = LoadRun.Status.RUNNING
        previous.error = ""
        previous.finished_at = None
        previous.save(update_fields=["status", "error", "finished_at"])
        return previous, False
    run = LoadRun.objects.create(
        uri=file.uri,
        table=table,
        size=file.size,
        fingerprint=file.fingerprint,
        status=LoadRun.Status.RUNNING,
        started_at=timezone.now(),
    )
    return run, False


def _source_lock_name(file: SourceFile) -> str:
    """The identity two loads of the same source share: its URI and fingerprint."""
    return f"load:{file.uri}@{file.fingerprint}"


def _record_failure(run_id: int, error: BaseException) -> None:
    """Mark the run failed, with its error. The error may have taken the connection with it
    (the database restarted), so a second attempt runs on a fresh connection. If the database
    is still gone, the run stays ``running`` and the next run resumes it all the same."""
    message = (f"{type(error).__name__}: {error}".strip())[:2000]
    for attempt in (1, 2):
        try:
            LoadRun.objects.filter(pk=run_id).update(
                status=LoadRun.Status.FAILED, error=message, finished_at=timezone.now()
            )
            return
        except DatabaseError as failure:
            if attempt == 2 or connection.in_atomic_block:
                logger.error(
                    "could not record the failed run",
                    extra={"run_id": run_id, "error": message, "cause": str(failure)},
                )
                return
            connection.close()


def load_source(
    *,
    file: SourceFile,
    table: dictionary.Table,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    force: bool = False,
    progress: Progress | None = None,
) -> LoadSummary:
    """Load one file into ``table``; rerunning an unchanged, completed file is a no-op."""
    if chunk_size < 1:
        raise ValueError("the chunk size must be at least 1")
    with work_lock(_source_lock_name(file)):
        return _load_locked(file=file, table=table, chunk_size=chunk_size, force=force,
                            progress=progress)  # fmt: skip


def _load_locked(
    *,
    file: SourceFile,
    table: dictionary.Table,
    chunk_size: int,
    force: bool,
    progress: Progress | None,
) -> LoadSummary:
    """``load_source``'s work, with the source's lock held."""
    clock = time.perf_counter()
    run, done = _start_run(file, table.name, force)
    summary = LoadSummary(uri=file.uri, table=table.name, run_id=run.id)
    if done:
        summary.unchanged, summary.skipped, summary.status = True, run.read, run.status
        return summary
    summary.skipped = run.read  # rows committed by an earlier, interrupted attempt

    def store(chunk: _Chunk) -> None:
        """One chunk: its rows, its rejections and the run's progress commit together."""
        before = (run.read, run.inserted, run.rejected, run.last_line)

        def write() -> IngestResult:  # repeatable: the counts start from ``before`` each time
            outcome = store_rows(
                chunk.checked,
                originals=chunk.texts,
                positions=chunk.lines,
                source=Source.CSV,
                uri=file.uri,
                run=run,
            )
            run.read = before[0] + outcome.received
            run.inserted = before[1] + outcome.inserted
            run.rejected = before[2] + outcome.rejected
            run.last_line = chunk.lines[-1]
            run.save(update_fields=["read", "inserted", "rejected", "last_line"])
            return outcome

        try:
            outcome = in_transaction(write)
        except BaseException:
            run.read, run.inserted, run.rejected, run.last_line = before
            raise
        summary.add(outcome)
        if progress:
            progress(summary.uri, summary.read)

    try:
        with file.open() as stream:
            resume_after, for_copy = run.last_line, connection.vendor == "postgresql"
            rows = (row for row in read_rows(stream, table) if row.line > resume_after)
            chunks = (_Chunk.check(table, part, for_copy) for part in _chunks(rows, chunk_size))
            with read_ahead(chunks, depth=READ_AHEAD) as ready:
                for chunk in ready:
                    store(chunk)
    except Exception as error:
        _record_failure(run.pk, error)
        raise
    run.status = LoadRun.Status.COMPLETED
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "finished_at"])
    summary.status = run.status
    summary.seconds = time.perf_counter() - clock
    return summary


def load_sources(
    sources: list[str],
    *,
    table: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    force: bool = False,
    progress: Progress | None = None,
) -> list[LoadSummary]:
    """Resolve every source first (so a bad one fails before anything loads), then load them
    in dependency order: departments, then jobs, then hired_employees."""
    files = [file for source in sources for file in resolve(source)]
    return [
        load_source(file=file, table=spec, chunk_size=chunk_size, force=force, progress=progress)
        for file, spec in in_dependency_order(files, table)
    ]


def load_chunk(
    *, uri: str, fingerprint: str, table: dictionary.Table, rows: list[tuple[int, dict]]
) -> LoadSummary:
    """Load one chunk of a large file (a Distributed Map batch): ``rows`` are (line, fields).

    The chunk is its own run, keyed by the file's URI, fingerprint and line range, committed
    with its rows in one transaction, so a retried chunk is a no-op and never a duplicate.
    """
    rows = [
        (line, raw)
        for line, raw in rows
        if not (
            line == 1 and [str(v).strip().lower() for v in raw.values()] == list(table.column_names)
        )
    ]  # a header row of the file
    first, last = (rows[0][0], rows[-1][0]) if rows else (0, 0)
    chunk_uri = f"{uri}#lines={first}-{last}"
    summary = LoadSummary(uri=chunk_uri, table=table.name)
    clock = time.perf_counter()

    def write() -> tuple[LoadRun, bool]:  # repeatable: everything it writes rolls back together
        # A retried chunk may run while the first attempt is still storing it: whoever comes
        # second waits here, then finds the chunk's completed run.
        transaction_lock(f"load:{chunk_uri}@{fingerprint}")
        done = LoadRun.objects.filter(
            uri=chunk_uri, fingerprint=fingerprint, status=LoadRun.Status.COMPLETED
        ).first()
        if done is not None:
            return done, True
        run = LoadRun.objects.create(
            uri=chunk_uri,
            table=table.name,
            size=0,
            fingerprint=fingerprint,
            status=LoadRun.Status.COMPLETED,
            started_at=timezone.now(),
            last_line=last,
        )
        outcome = ingest_rows(
            table=table,
            rows=[raw for _, raw in rows],
            positions=[line for line, _ in rows],
            source=Source.CSV,
            uri=uri,
            run=run,
        )
        run.read, run.inserted, run.rejected = outcome.received, outcome.inserted, outcome.rejected
        run.finished_at = timezone.now()
        run.save(update_fields=["read", "inserted", "rejected", "finished_at"])
        return run, False

    run, unchanged = in_transaction(write)
    if unchanged:
        summary.unchanged, summary.skipped, summary.run_id = True, run.read, run.id
        summary.status = run.status
        return summary
    summary.read, summary.inserted, summary.rejected = run.read, run.inserted, run.rejected
    summary.status, summary.run_id = run.status, run.id
    summary.seconds = time.perf_counter() - clock
    return summary


def record_failed_load(*, uri: str, error: str) -> int:
    """Note a load that failed outside the loader (a timeout, a crash) as a failed run."""
    table = ""
    with contextlib.suppress(ValueError):  # a key of no table: the run is recorded all the same
        table = table_for(unquote(uri.rsplit("/", 1)[-1])).name
    run = LoadRun.objects.create(
        uri=uri,
        table=table,
        size=0,
        fingerprint="",
        status=LoadRun.Status.FAILED,
        error=error[:2000],
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    return run.id
