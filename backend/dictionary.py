"""The data dictionary: Roster's single source of truth for tables, columns and rules.

Everything else derives from this module: the Django model fields and constraints, the
validation in the ingest pipeline, the GraphQL row inputs, the CSV column order and the docs.
To change a rule, change it here (and its tests).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Any

MAX_ID = 2**31 - 1
"""Ids are positive 32-bit integers (PostgreSQL ``integer``)."""

MAX_BATCH_ROWS = 1000
"""The largest batch the API accepts in one request."""

# ISO 8601 date and time, with a ``T`` or a space between them, seconds and fraction optional,
# then an optional ``Z`` or ``±HH:MM`` / ``±HHMM`` / ``±HH`` offset.
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|z|[+-]\d{2}(:?\d{2})?)?"
)


class ReasonCode(StrEnum):
    """Every reason code a rejection can carry: stable, machine-readable, documented (their
    meanings are ``REASON_CODES``; docs/data-dictionary.md and GraphQL read both)."""

    REQUIRED = "required"
    INVALID_TYPE = "invalid_type"
    NOT_POSITIVE = "not_positive"
    OUT_OF_RANGE = "out_of_range"
    TOO_LONG = "too_long"
    CONTROL_CHARACTER = "control_character"
    INVALID_DATETIME = "invalid_datetime"
    UNKNOWN_FIELD = "unknown_field"
    INVALID_ROW = "invalid_row"
    UNKNOWN_REFERENCE = "unknown_reference"
    DUPLICATE = "duplicate"
    DUPLICATE_IN_BATCH = "duplicate_in_batch"
    BATCH_ABORTED = "batch_aborted"
    INTEGRITY_ERROR = "integrity_error"
    INVALID_ENCODING = "invalid_encoding"
    COLUMN_COUNT = "column_count"
    UNTERMINATED_QUOTE = "unterminated_quote"


class RuleViolation(Exception):
    """One broken rule on one field, carried as (code, message)."""

    def __init__(self, code: ReasonCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Reason:
    """Why a row was rejected: which field, a stable machine code, a human message."""

    field: str | None
    code: ReasonCode
    message: str

    def as_dict(self) -> dict[str, str | None]:
        return {"field": self.field, "code": str(self.code), "message": self.message}


# --- column kinds: each one knows how to clean a raw value or say why it can't -------------


@dataclass(frozen=True)
class Kind:
    """A column's type and the rules that come with it."""

    graphql: str = "String"
    avro: Any = "string"

    def clean(self, value: Any) -> Any:
        raise NotImplementedError

    def copy_text(self, value: Any) -> str:
        """A cleaned value as a field of PostgreSQL's ``COPY ... (FORMAT csv)``."""
        return str(value)


@dataclass(frozen=True)
class Integer(Kind):
    """A positive 32-bit integer. Strings of digits (CSV) are accepted; bools and floats are not."""

    graphql: str = "Int"
    avro: Any = "int"

    def clean(self, value: Any) -> int:
        if type(value) is str:
            text = value.strip()
            if text.isascii() and text.isdigit() and len(text) <= 10:  # the common case
                value = int(text)
            else:
                value = self._parse(value, text)
        elif type(value) is not int:  # bool is a subclass of int, and is refused here
            raise RuleViolation(
                ReasonCode.INVALID_TYPE, f"must be an integer, got {_json_type(value)}"
            )
        if value <= 0:
            raise RuleViolation(
                ReasonCode.NOT_POSITIVE, f"must be a positive integer, got {_shown(value)}"
            )
        if value > MAX_ID:
            raise RuleViolation(
                ReasonCode.OUT_OF_RANGE, f"must be at most {MAX_ID}, got {_shown(value)}"
            )
        return value

    @staticmethod
    def _parse(value: str, text: str) -> int:
        """Signs, leading zeros and very long numbers: the rarer spellings of an integer."""
        if not trim(text):
            raise RuleViolation(ReasonCode.REQUIRED, "is required")
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise RuleViolation(ReasonCode.INVALID_TYPE, f"must be an integer, got {_shown(value)}")
        if len(text.lstrip("+-").lstrip("0")) > len(str(MAX_ID)):  # int() refuses 4300+
            code = ReasonCode.NOT_POSITIVE if text.startswith("-") else ReasonCode.OUT_OF_RANGE
            raise RuleViolation(code, f"must be a positive integer at most {MAX_ID}")
        return int(text)


@dataclass(frozen=True)
class Text(Kind):
    """A trimmed, non-blank string of at most ``max_length`` characters, with no control
    character (see ``trim``)."""

    max_length: int = 255

    def clean(self, value: Any) -> str:
        if not isinstance(value, str):
            raise RuleViolation(
                ReasonCode.INVALID_TYPE, f"must be a string, got {_json_type(value)}"
            )
        text = value.strip()
        if not text.isprintable():  # rare: a format or control character, a surrogate...
            if not _trim_rare(text):  # nothing but spaces, format and control characters
                raise RuleViolation(ReasonCode.REQUIRED, "is required")
            text = _trim_rare(text, controls=False)  # a control character is refused, not cut
            _check_characters(text)
        if not text:
            raise RuleViolation(ReasonCode.REQUIRED, "is required")
        if len(text) > self.max_length:
            raise RuleViolation(
                ReasonCode.TOO_LONG,
                f"must be at most {self.max_length} characters, got {len(text)}",
            )
        return text

    def copy_text(self, value: str) -> str:
        if _CSV_SPECIAL.search(value) is None:
            return value
        return '"' + value.replace('"', '""') + '"'


@dataclass(frozen=True)
class Timestamp(Kind):
    """An ISO 8601 date and time. With ``Z`` or an offset it is converted to UTC; without a
    zone it is taken as UTC."""

    avro: Any = field(default_factory=lambda: {"type": "long", "logicalType": "timestamp-micros"})

    def clean(self, value: Any) -> datetime:
        if isinstance(value, datetime):  # from an AVRO backup (timestamp-micros)
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if not isinstance(value, str):
            raise RuleViolation(
                ReasonCode.INVALID_TYPE, f"must be a string, got {_json_type(value)}"
            )
        text = value.strip()
        if not _ISO_DATETIME.fullmatch(text):
            if not trim(text):
                raise RuleViolation(ReasonCode.REQUIRED, "is required")
            raise RuleViolation(
                ReasonCode.INVALID_DATETIME,
                "must be an ISO 8601 date and time such as 2021-07-27T16:02:08Z, "
                f"got {_shown(value)}",
            )
        try:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise RuleViolation(
                ReasonCode.INVALID_DATETIME, f"is not a valid date and time: {_shown(value)}"
            ) from None
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        try:
            return moment.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
            raise RuleViolation(
                ReasonCode.INVALID_DATETIME,
                f"is out of range once converted to UTC: {_shown(value)}",
            ) from None

    def copy_text(self, value: datetime) -> str:
        return value.isoformat()


_CSV_SPECIAL = re.compile(r'[,"\r\n\\]')
"""What makes a text field need quotes in CSV (a backslash only to be safe)."""


def trim(text: str) -> str:
    """``text`` without the spaces, format characters (Unicode category Cf, such as the
    zero-width space U+200B and the byte-order mark U+FEFF) and control characters (Cc) at
    either end. Inside, they stay: a zero-width joiner is part of some names."""
    text = text.strip()
    return text if text.isprintable() else _trim_rare(text)


def _trim_rare(text: str, *, controls: bool = True) -> str:
    """``trim`` for a string that ``str.strip`` left with a character that is not printable;
    with ``controls=False`` it trims spaces and format characters only.

    ``isprintable`` is false for every character ``trim`` removes but the plain space, which
    ``strip`` took already, so printable text (nearly all of it) never comes here.
    """
    trimmed = ("Cf", "Cc") if controls else ("Cf",)
    start, end = 0, len(text)
    while start < end and _trimmed(text[start], trimmed):
        start += 1
    while end > start and _trimmed(text[end - 1], trimmed):
        end -= 1
    return text[start:end]


def _trimmed(character: str, categories: tuple[str, ...]) -> bool:
    return character.isspace() or unicodedata.category(character) in categories


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""Unicode's control characters (category Cc): C0, DEL and C1."""


def _check_characters(text: str) -> None:
    """Refuse a control character inside a trimmed string, and an unpaired surrogate, which
    no database can store (PostgreSQL refuses NUL in text, and a surrogate is not UTF-8)."""
    control = _CONTROL.search(text)
    if control is not None:
        raise RuleViolation(
            ReasonCode.CONTROL_CHARACTER,
            f"must not hold a control character, got {control.group()!r} at character "
            f"{control.start() + 1}",
        )
    if not _encodes(text):
        raise RuleViolation(ReasonCode.INVALID_TYPE, "must be text without unpaired surrogates")


def _encodes(text: str) -> bool:
    """Whether ``text`` is valid Unicode, which lone surrogates (``"\\ud800"``) are not."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(value: Any, limit: int = 80) -> str:
    """A value quoted in a message, cut to ``limit`` characters: a 200,000-character field or
    a 5,000-digit integer is named, not copied into every reason of the rejection log."""
    if type(value) is int and value.bit_length() > 256:
        return "a very large integer"
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} characters)"


def _json_type(value: Any) -> str:
    """Name a value's type the way a JSON or GraphQL caller would know it."""
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    return names.get(type(value), "object" if isinstance(value, Mapping) else type(value).__name__)


# --- tables and columns ----------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column: its name, kind, doc, and the table it references, if it is a foreign key."""

    name: str
    kind: Kind
    doc: str
    references: str | None = None
    primary_key: bool = False

    @property
    def attname(self) -> str:
        """The Django model attribute (``department_id`` -> ``department``)."""
        return self.name.removesuffix("_id") if self.references else self.name


@dataclass(frozen=True)
class ForeignKey(Column):
    """A column that names a row of another table: ``references`` is that table."""

    references: str


@dataclass(frozen=True)
class Table:
    """One table: its name, the model that stores it, and its columns in CSV order."""

    name: str
    model_name: str
    doc: str
    columns: tuple[Column, ...]

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @cached_property
    def _known(self) -> frozenset[str]:
        return frozenset(self.column_names)

    @cached_property
    def _cleaners(self) -> tuple[tuple[str, Any], ...]:
        return tuple((column.name, column.kind.clean) for column in self.columns)

    @cached_property
    def _copy_formatters(self) -> tuple[tuple[str, Any], ...]:
        return tuple((column.name, column.kind.copy_text) for column in self.columns)

    def copy_line(self, row: Mapping[str, Any]) -> str:
        """A cleaned row as one line of ``COPY ... (FORMAT csv)``, columns in CSV order."""
        return ",".join([text(row[name]) for name, text in self._copy_formatters]) + "\n"

    @cached_property
    def foreign_keys(self) -> tuple[ForeignKey, ...]:
        return tuple(column for column in self.columns if isinstance(column, ForeignKey))

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name} has no column {name!r}")

    def clean(self, raw: Any) -> tuple[dict[str, Any] | None, list[Reason]]:
        """Check one raw row against every column rule, reporting every broken rule at once.

        Foreign keys and uniqueness need the database, so the ingest pipeline checks those.
        """
        if not isinstance(raw, Mapping):
            return None, [
                Reason(None, ReasonCode.INVALID_ROW, f"must be an object, got {_json_type(raw)}")
            ]
        reasons: list[Reason] = []
        if not raw.keys() <= self._known:
            reasons = [
                Reason(str(key), ReasonCode.UNKNOWN_FIELD, f"is not a column of {self.name}")
                for key in raw
                if key not in self._known
            ]
        row: dict[str, Any] = {}
        for name, clean in self._cleaners:
            value = raw.get(name)
            if value is None or (type(value) is str and not value.strip()):  # or by the kind
                reasons.append(Reason(name, ReasonCode.REQUIRED, "is required"))
                continue
            try:
                row[name] = clean(value)
            except RuleViolation as violation:
                reasons.append(Reason(name, violation.code, violation.message))
        return (None, reasons) if reasons else (row, [])


def _id(doc: str) -> Column:
    return Column("id", Integer(), doc, primary_key=True)


DEPARTMENTS = Table(
    name="departments",
    model_name="Department",
    doc="A department of the company.",
    columns=(
        _id("The department's id."),
        Column("department", Text(max_length=255), "The department's name."),
    ),
)

JOBS = Table(
    name="jobs",
    model_name="Job",
    doc="A job title.",
    columns=(
        _id("The job's id."),
        Column("job", Text(max_length=255), "The job's title."),
    ),
)

HIRED_EMPLOYEES = Table(
    name="hired_employees",
    model_name="HiredEmployee",
    doc="An employee hired into a job of a department.",
    columns=(
        _id("The employee's id."),
        Column("name", Text(max_length=255), "The employee's full name."),
        Column("datetime", Timestamp(), "Hire date and time, ISO 8601, stored in UTC."),
        ForeignKey("department_id", Integer(), "The department hired into.", "departments"),
        ForeignKey("job_id", Integer(), "The job hired for.", "jobs"),
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in (DEPARTMENTS, JOBS, HIRED_EMPLOYEES)}
"""All tables, in dependency order: a table only references tables before it."""

REFERENCED: frozenset[str] = frozenset(
    column.references for spec in TABLES.values() for column in spec.foreign_keys
)
"""The tables other tables reference: what arrives in them may unpark rows
(jobs/ingest/replay.py)."""


def table(name: str) -> Table:
    """Look a table up by name, with an error that lists the known ones."""
    try:
        return TABLES[name]
    except KeyError:
        known = ", ".join(TABLES)
        raise KeyError(f"unknown table {name!r}; expected one of: {known}") from None


_ = ReasonCode
REASON_CODES: dict[ReasonCode, str] = {
    _.REQUIRED: "The field is missing, null, or blank after trimming: nothing but spaces,"
    " format characters (such as the zero-width space U+200B or U+FEFF) and control characters.",
    _.INVALID_TYPE: "The value has the wrong type (a string where an integer belongs, say).",
    _.NOT_POSITIVE: "An id is zero or negative.",
    _.OUT_OF_RANGE: f"An id is larger than {MAX_ID}.",
    _.TOO_LONG: "A string is longer than its column allows (after trimming).",
    _.CONTROL_CHARACTER: "A string holds a control character (NUL, a line break, a tab, an"
    " escape: Unicode category Cc) once trimmed; at either end one is trimmed away.",
    _.INVALID_DATETIME: "Not an ISO 8601 date and time with a T or a space between them.",
    _.UNKNOWN_FIELD: "The row has a field that is not a column of the table.",
    _.INVALID_ROW: "The row is not an object.",
    _.UNKNOWN_REFERENCE: "department_id or job_id names a row that does not exist.",
    _.DUPLICATE: "The id exists already in the table; the stored row is never overwritten.",
    _.DUPLICATE_IN_BATCH: "The id repeats an earlier row of the same batch.",
    _.BATCH_ABORTED: "A valid row of an atomic batch that had an invalid row: nothing went in.",
    _.INTEGRITY_ERROR: "The database refused the row (a constraint the rules did not foresee).",
    _.INVALID_ENCODING: "A field of a CSV line holds bytes that are not UTF-8 (shown as \\xNN).",
    _.COLUMN_COUNT: "A CSV line has more or fewer fields than the table has columns.",
    _.UNTERMINATED_QUOTE: "A CSV line opens a quote that never closes properly; the lines"
    " after it are read as rows of their own.",
}
"""What each reason code means."""


def as_markdown() -> str:
    """The dictionary as a Markdown page: docs/data-dictionary.md is generated from this."""
    lines = [
        "# Data dictionary",
        "",
        "Generated from `backend/dictionary.py` by `python manage.py dictionary_docs`;"
        " do not edit by hand.",
        "",
        "Every field is mandatory. Strings are trimmed of spaces, format characters (such as"
        " U+200B and U+FEFF) and control characters at both ends, and may not hold a control"
        " character (a line break, a tab, NUL) inside. Ids are positive 32-bit integers,"
        " unique in their table and within a batch. Datetimes are ISO 8601 with a `T` or a"
        " space between date and time; with `Z` or an offset they are converted to UTC, and"
        " without a zone they are taken as UTC. CSV files list the columns in the order below.",
    ]
    for spec in TABLES.values():
        lines += ["", f"## {spec.name}", "", spec.doc, "", "| column | type | rule | doc |"]
        lines.append("|---|---|---|---|")
        for column in spec.columns:
            kind = type(column.kind).__name__
            rule = {
                "Integer": f"1 to {MAX_ID}",
                "Text": f"at most {getattr(column.kind, 'max_length', 0)} characters",
                "Timestamp": "ISO 8601, stored in UTC",
            }[kind]
            if column.primary_key:
                rule += ", unique"
            if column.references:
                rule += f", must exist in {column.references}.id"
            lines.append(f"| `{column.name}` | {kind.lower()} | {rule} | {column.doc} |")
    lines += ["", "## Reason codes", "", "| code | meaning |", "|---|---|"]
    lines += [f"| `{code}` | {meaning} |" for code, meaning in REASON_CODES.items()]
    return "\n".join(lines) + "\n"
