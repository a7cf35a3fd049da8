"""Reading the company's CSV files: which table a file holds, and its rows, streamed.

Files are headerless and comma-separated, in the dictionary's column order. A first row that
repeats the column names is taken as a header and skipped. UTF-8 with or without a BOM, CRLF or
LF, quoted fields with commas or newlines.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import PurePath
from typing import IO, Any, NamedTuple

from backend import dictionary

# departments.csv, jobs_2021.csv, "hired_employees (1).csv": the longest table name that
# starts the file name wins, so hired_employees is never mistaken for something shorter.
_BY_LENGTH = sorted(dictionary.TABLES, key=len, reverse=True)


class UnknownTableError(ValueError):
    """A file whose name matches no table, and no ``--table`` was given."""


def table_for(name: str) -> dictionary.Table:
    """The table a file holds, from its name (``hired_employees (1).csv`` -> hired_employees)."""
    stem = PurePath(name).name.lower()
    for table in _BY_LENGTH:
        if re.match(rf"{table}(?![a-z])", stem):
            return dictionary.TABLES[table]
    known = ", ".join(f"{t}*.csv" for t in dictionary.TABLES)
    raise UnknownTableError(f"cannot tell the table of {name!r}: expected {known}, or --table")


class CsvRow(NamedTuple):
    """One record of a file: its first line number, its fields by column, and its raw text.

    A named tuple: a million of them are made per million rows, and a tuple is the cheapest.
    """

    line: int
    raw: dict[str, Any]
    text: str


def read_rows(stream: IO[bytes], table: dictionary.Table) -> Iterator[CsvRow]:
    """Stream the records of a binary file, one at a time, with their line numbers."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    yield from parse_lines(text, table)


def parse_lines(lines: Iterable[str], table: dictionary.Table) -> Iterator[CsvRow]:
    consumed: list[str] = []
    keep = consumed.append

    def recorded() -> Iterator[str]:
        for line in lines:
            keep(line)
            yield line

    reader = csv.reader(recorded(), strict=False)
    columns = table.column_names
    width = len(columns)
    line = 1
    for fields in reader:
        start, line = line, reader.line_num + 1
        text = (consumed[0] if len(consumed) == 1 else "".join(consumed)).rstrip("\r\n")
        consumed.clear()
        if len(fields) < 2 and (not fields or not fields[0]):
            continue  # a blank line is not a row
        if start == 1 and [f.strip().lower() for f in fields] == list(columns):
            continue  # a header row
        raw: dict[str, Any] = dict(zip(columns, fields, strict=False))
        if len(fields) > width:
            for extra, value in enumerate(fields[width:], start=width + 1):
                raw[f"column_{extra}"] = value
        yield CsvRow(start, raw, text)
