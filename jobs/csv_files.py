"""Reading the company's CSV files: which table a file holds, and its rows, streamed.

Files are headerless and comma-separated, in the dictionary's column order. A first row that
repeats the column names is taken as a header and skipped. UTF-8 with or without a BOM, CRLF or
LF, quoted fields with commas or newlines. Line numbers are physical lines of the file.

Reading never loses a line silently. A line the reader cannot take as a row is still yielded,
with ``faults``: reasons (codes in ``dictionary.REASON_CODES``) that the loader puts before the
dictionary's own, and that reject the line whatever its fields say. The lines around it load:

- ``invalid_encoding``: bytes that are not UTF-8. They are decoded with ``surrogateescape``
  and shown as ``\\xNN`` in the row's fields and raw text, so no unpaired surrogate reaches
  the rules, the database or JSON.
- ``column_count``: more or fewer fields than the table has columns (the dictionary adds
  ``unknown_field`` for each extra ``column_N``, or ``required`` for each missing one).
- ``unterminated_quote``: a quoted field that runs over the line's end is a true record only if
  it is well-formed CSV (``strict``) with exactly the table's columns and closes before the file
  ends. Otherwise only its first line is rejected, and the lines after it are read again as
  rows of their own: rows are never merged.

Fields have no length limit here (the 255-character rule rejects a long one), so this module
raises ``csv.field_size_limit`` for the process. A row's raw text keeps at most
``RAW_TEXT_CHARS`` characters (65,536) and is then marked truncated, so the rejection log
never stores megabytes. A quote still open ``QUOTE_LINES`` lines (10,000) or ``QUOTE_CHARS``
characters (1 MiB) after the line that opened it fails the file with a ``CsvFormatError`` that
names that line: memory stays bounded, and a file broken that far is the operator's to fix.
One physical line is always read whole.
"""

from __future__ import annotations

import csv
import io
import re
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import PurePath
from typing import IO, Any, NamedTuple

from backend import dictionary
from backend.dictionary import Reason, ReasonCode

QUOTE_LINES = 10_000
"""How many lines past its own a quoted field may run before the file is refused."""

QUOTE_CHARS = 1 << 20
"""How many characters past its first line a quoted field may run before the file is refused."""

RAW_TEXT_CHARS = 1 << 16
"""The characters of a row's raw text kept for the rejection log; a longer one is truncated."""

csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))  # the rules judge a field's length

# departments.csv, jobs_2021.csv, "hired_employees (1).csv": the longest table name that
# starts the file name wins, so hired_employees is never mistaken for something shorter.
_BY_LENGTH = sorted(dictionary.TABLES, key=len, reverse=True)

_UNDECODED = re.compile("[\udc80-\udcff]+")
"""Bytes that were not UTF-8, as ``surrogateescape`` decodes them."""


class UnknownTableError(ValueError):
    """A file whose name matches no table, and no ``--table`` was given."""


class CsvFormatError(ValueError):
    """A file whose quoting is broken past recovery; the message names the line to fix."""


def table_for(name: str) -> dictionary.Table:
    """The table a file holds, from its name (``hired_employees (1).csv`` -> hired_employees)."""
    stem = PurePath(name).name.lower()
    for table in _BY_LENGTH:
        if re.match(rf"{table}(?![a-z])", stem):
            return dictionary.TABLES[table]
    known = ", ".join(f"{t}*.csv" for t in dictionary.TABLES)
    raise UnknownTableError(f"cannot tell the table of {name!r}: expected {known}, or --table")


class CsvRow(NamedTuple):
    """One record of a file: its first line number, its fields by column, its raw text, and
    the reader's reasons to reject it whatever its fields say (none for a well-formed line).

    A named tuple: a million of them are made per million rows, and a tuple is the cheapest.
    """

    line: int
    raw: dict[str, Any]
    text: str
    faults: tuple[Reason, ...] = ()


def read_rows(stream: IO[bytes], table: dictionary.Table) -> Iterator[CsvRow]:
    """Stream the records of a binary file, one at a time, with their line numbers."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    yield from parse_lines(text, table)


def parse_lines(lines: Iterable[str], table: dictionary.Table) -> Iterator[CsvRow]:
    """The records of ``lines`` (each with its line ending, as a file gives them)."""
    columns = table.column_names
    width = len(columns)
    upcoming = iter(lines)
    again: deque[str] = deque()  # lines to read again, after a line with a broken quote
    consumed: list[str] = []  # the lines of the record being read
    keep = consumed.append
    number = 1  # the line the record being read starts on
    span = 0  # the characters of the record being read, past its first line
    cut_short = False  # the file ended inside a quoted field

    def runs_on(line: str) -> None:
        """A quoted field runs on to ``line``: refuse the file once it has run too far."""
        nonlocal span
        span += len(line)
        if len(consumed) > QUOTE_LINES or span > QUOTE_CHARS:
            far = f"{QUOTE_LINES:,} lines" if span <= QUOTE_CHARS else f"{QUOTE_CHARS:,} characters"
            raise CsvFormatError(
                f"line {number}: a quote opened on this line is still open {far} later; "
                "the file's quoting is broken past recovery, fix that line"
            )

    def physical() -> Iterator[str]:
        nonlocal cut_short
        for line in upcoming:
            if again:  # read the lines to read again first, in their order
                again.append(line)
                line = again.popleft()
            if consumed:  # a quoted field runs on
                runs_on(line)
            keep(line)
            yield line
        while again:
            line = again.popleft()
            if consumed:
                runs_on(line)
            keep(line)
            yield line
        if consumed:
            cut_short = True

    while True:
        try:
            for fields in csv.reader(physical(), strict=False):
                start, count, broken = number, len(consumed), False
                if count == 1 and not cut_short:
                    text = consumed[0].rstrip("\r\n")
                elif not cut_short and _well_formed(consumed, width):
                    text = "".join(consumed).rstrip("\r\n")
                    span = 0
                else:  # reject the first line alone, and read the next ones again
                    again.extendleft(reversed(consumed[1:]))
                    count, span, cut_short, broken = 1, 0, False, True
                    text = consumed[0].rstrip("\r\n")
                    fields = next(csv.reader([text]))
                consumed.clear()
                number += count
                if not broken:
                    if len(fields) < 2 and (not fields or not fields[0]):
                        continue  # a blank line is not a row
                    if start == 1 and [f.strip().lower() for f in fields] == list(columns):
                        continue  # a header row
                raw: dict[str, Any] = dict(zip(columns, fields, strict=False))
                if (
                    broken
                    or len(fields) != width
                    or len(text) > RAW_TEXT_CHARS
                    or not text.isascii()
                ):
                    yield _inspected(table, start, raw, fields, text, broken)
                else:
                    yield CsvRow(start, raw, text)
        except csv.Error as error:  # not expected with these settings: still one clear line
            raise CsvFormatError(f"line {number}: {error}") from None
        if not again:
            return
        # the file ended inside a broken quote: read its other lines again


def parse_text(text: str, table: dictionary.Table) -> CsvRow:
    """A record's text, as the rejection log keeps it, read again as one row (a replay)."""
    fields = next(csv.reader([text]), [])
    raw: dict[str, Any] = dict(zip(table.column_names, fields, strict=False))
    if len(fields) != len(table.column_names) or len(text) > RAW_TEXT_CHARS or not text.isascii():
        return _inspected(table, 1, raw, fields, text, False)
    return CsvRow(1, raw, text)


def _well_formed(lines: list[str], width: int) -> bool:
    """Whether a record over several lines is a true one: strict CSV, the table's columns."""
    try:
        return len(next(csv.reader(lines, strict=True), ())) == width
    except csv.Error:  # a stray quote, or the file ends inside the field
        return False


def _inspected(
    table: dictionary.Table,
    line: int,
    raw: dict[str, Any],
    fields: list[str],
    text: str,
    broken: bool,
) -> CsvRow:
    """A record that needs a closer look: a broken quote, a wrong column count, text that is
    not ASCII (it may hold bytes that were not UTF-8), or a raw text too long to keep whole."""
    columns, faults = table.column_names, []
    width = len(columns)
    if broken:
        where = columns[len(fields) - 1] if len(fields) <= width else f"column_{len(fields)}"
        faults.append(
            Reason(
                where,
                ReasonCode.UNTERMINATED_QUOTE,
                "opens a quote that does not close properly before the next row; the lines "
                "after it are read as rows of their own",
            )
        )
    if len(fields) > width:
        for extra, value in enumerate(fields[width:], start=width + 1):
            raw[f"column_{extra}"] = value
    if len(fields) != width:
        faults.append(
            Reason(
                None,
                ReasonCode.COLUMN_COUNT,
                f"the line has {len(fields)} field{'s' * (len(fields) != 1)}, expected "
                f"{width}: {', '.join(columns)}",
            )
        )
    if not text.isascii() and _UNDECODED.search(text):
        for name, value in list(raw.items()):
            bad = _UNDECODED.findall(value)
            if bad:
                shown = _escaped("".join(bad))
                shown = shown if len(shown) <= 40 else shown[:40] + "..."
                faults.append(
                    Reason(name, ReasonCode.INVALID_ENCODING, f"is not UTF-8: bytes {shown}")
                )
                raw[name] = _escaped(value)
        text = _escaped(text)
    if len(text) > RAW_TEXT_CHARS:
        text = f"{text[:RAW_TEXT_CHARS]}... [truncated: {len(text):,} characters in all]"
    return CsvRow(line, raw, text, tuple(faults))


def _escaped(text: str) -> str:
    """``text`` with the bytes that were not UTF-8 shown as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
