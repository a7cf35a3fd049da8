"""What a data job did, and the summary table the job commands print at the end.

Every job (``load_csv``, ``restore``, ``replay_rejections``) counts what it did to each table
in a ``JobSummary``: one class, so the command's table, the Lambda's answer and the GraphQL
result read the same names. A job with more to say (a load's source and run, a restore's
backup) adds its fields in a subclass beside the job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.ingest import IngestResult


@dataclass(kw_only=True)
class JobSummary:
    """What a job did to one table, as pgloader reports it: rows read, inserted, rejected."""

    table: str
    read: int = 0
    inserted: int = 0
    rejected: int = 0
    seconds: float = 0.0

    def add(self, outcome: IngestResult) -> None:
        """Count one more batch the job sent through the ingest pipeline."""
        self.read += outcome.received
        self.inserted += outcome.inserted
        self.rejected += outcome.rejected

    def as_dict(self) -> dict[str, object]:
        """Every field, the seconds to the millisecond: a Lambda's answer."""
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in vars(self).items()}


Column = tuple[str, str | Callable[[Any], object]]
"""A column of the summary table: its header, and the attribute (or function) it shows."""


def summary_table(columns: Sequence[Column], summaries: Sequence[object]) -> str:
    """The table a job command prints last: a row per summary (per table or file), seconds
    to the hundredth, text left-aligned and numbers right-aligned, like pgloader's summary."""
    rows = [[_cell(summary, value) for _, value in columns] for summary in summaries]
    return _table([header for header, _ in columns], rows)


def _cell(summary: object, value: str | Callable[[Any], object]) -> object:
    cell = value(summary) if callable(value) else getattr(summary, value)
    return f"{cell:.2f}" if isinstance(cell, float) else cell


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(_is_number(row[i]) for row in rows) and bool(rows) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(w) if num else cell.ljust(w)
            for cell, w, num in zip(row, widths, numeric, strict=True)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) or str(value).replace(".", "", 1).isdigit()
