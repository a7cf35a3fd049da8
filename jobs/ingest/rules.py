"""Step 1 and 3 of the pipeline: the dictionary's rules, and repeated ids within a batch.

Pure Python, no database: a loader runs ``check_rows`` for its next chunk while the database
stores the previous one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backend import dictionary
from backend.dictionary import Reason, ReasonCode, Table

Row = dict[str, Any]
"""A row the rules passed: clean values keyed by the dictionary's column names."""


class BatchSizeError(ValueError):
    """An API batch with no rows, or more than the API accepts: the whole request fails."""


def check_batch_size(count: int) -> None:
    """API doors accept 1 to ``MAX_BATCH_ROWS`` rows; files are chunked by their loader."""
    limit = dictionary.MAX_BATCH_ROWS
    if not 1 <= count <= limit:
        raise BatchSizeError(
            f"a batch must hold 1 to {limit} rows, got {count}; nothing was stored"
        )


@dataclass
class CheckedRows:
    """A batch after the dictionary's rules: everything that needs no database."""

    table: Table
    raws: list[Any]
    valid: dict[int, Row]
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
    """Apply the dictionary's rules to each raw row; with ``copy_lines`` also format the valid
    rows for PostgreSQL's ``COPY`` (off the database's critical path).

    ``faults`` are a file reader's reasons to reject a line whatever its fields say (a broken
    quote, a wrong column count): such a row is rejected with them first.
    """
    spec = dictionary.table(table) if isinstance(table, str) else table
    raws = list(rows)
    valid: dict[int, Row] = {}
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


@dataclass
class Verdicts:
    """A batch's working verdicts, copied from its ``CheckedRows``: each row is valid or has
    reasons. Steps 2 to 4 of the pipeline move rows from the first to the second, through
    ``reject``, and nothing else changes them."""

    valid: dict[int, Row]
    reasons: dict[int, list[Reason]]

    @classmethod
    def of(cls, checked: CheckedRows) -> Verdicts:
        return cls(dict(checked.valid), {i: list(found) for i, found in checked.reasons.items()})

    def reject(self, index: int, *found: Reason) -> None:
        """Keep a row out (a valid one, or one already rejected: ``found`` adds reasons)."""
        self.valid.pop(index, None)
        self.reasons.setdefault(index, []).extend(found)


def reject_repeats(verdicts: Verdicts, positions: Sequence[int]) -> None:
    """The first valid row with an id claims it; later rows with the same id are rejected.
    Runs after the references, so a row they rejected claims nothing."""
    first_seen: dict[int, int] = {}
    for index, row in list(verdicts.valid.items()):
        row_id = row["id"]
        if row_id in first_seen:
            message = f"id {row_id} repeats row {positions[first_seen[row_id]]} of this batch"
            verdicts.reject(index, Reason("id", ReasonCode.DUPLICATE_IN_BATCH, message))
        else:
            first_seen[row_id] = index


def only_missing_references(reasons: Sequence[Reason]) -> bool:
    """Whether a row would go in once what it references exists: then it is parked."""
    return all(reason.code == ReasonCode.UNKNOWN_REFERENCE for reason in reasons)


def claimed_id(raw: Any) -> int | None:
    """The id a rejected row claimed, if it fits a 32-bit integer, to make the log searchable."""
    value = raw.get("id") if isinstance(raw, Mapping) else None
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,20}", value.strip()):
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31:
        return value
    return None
