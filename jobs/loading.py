"""Load a CSV file into its table through the ingest pipeline, one transaction per chunk."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from backend import dictionary
from backend.models import Source
from jobs.csv_files import CsvRow, read_rows, table_for
from jobs.ingest import ingest_rows

DEFAULT_CHUNK_SIZE = 5000


@dataclass
class LoadSummary:
    """What an operator wants at the end of a load, as pgloader prints it."""

    uri: str
    table: str
    read: int = 0
    inserted: int = 0
    rejected: int = 0
    seconds: float = 0.0


def _chunks(rows: Iterator[CsvRow], size: int) -> Iterator[list[CsvRow]]:
    while chunk := list(islice(rows, size)):
        yield chunk


def load_file(
    *,
    path: Path,
    table: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[LoadSummary], None] | None = None,
) -> LoadSummary:
    """Stream ``path`` into its table; bad rows are logged with their line numbers."""
    spec = dictionary.table(table) if table else table_for(path.name)
    summary = LoadSummary(uri=path.resolve().as_uri(), table=spec.name)
    clock = time.perf_counter()
    with path.open("rb") as stream:
        for chunk in _chunks(read_rows(stream, spec), chunk_size):
            outcome = ingest_rows(
                table=spec,
                rows=[row.raw for row in chunk],
                positions=[row.line for row in chunk],
                source=Source.CSV,
                uri=summary.uri,
            )
            summary.read += outcome.received
            summary.inserted += outcome.inserted
            summary.rejected += outcome.rejected
            if progress:
                progress(summary)
    summary.seconds = time.perf_counter() - clock
    return summary


def files_in_order(folder: Path) -> list[Path]:
    """The CSV files of a folder, departments first, then jobs, then hired_employees."""
    order = list(dictionary.TABLES)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".csv"]
    return sorted(files, key=lambda p: (order.index(table_for(p.name).name), p.name))
