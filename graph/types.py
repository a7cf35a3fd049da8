"""GraphQL types. Node fields carry the dictionary's docs; row inputs are built from it."""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from datetime import UTC, datetime
from typing import Any, NewType, Protocol

import strawberry
from strawberry.scalars import JSON
from strawberry.schema.name_converter import NameConverter
from strawberry.types.base import get_object_definition
from strawberry.types.scalar import ScalarDefinition

from backend import dictionary, metrics
from backend.dictionary import DEPARTMENTS, HIRED_EMPLOYEES, JOBS
from graph.errors import bad_input
from graph.pagination import Connection, OrderDirection, Ordering
from jobs.backups import BackupFile, Position, RestoreSummary
from jobs.ingest import IngestResult, RejectedRow
from jobs.ingest.replay import SHOWN_REJECTIONS, ReplaySummary


@strawberry.enum(name="Table", description="A table of Roster's data.")
class TableEnum(enum.Enum):
    """The dictionary's tables, written out so that the type checker knows them."""

    DEPARTMENTS = DEPARTMENTS.name
    JOBS = JOBS.name
    HIRED_EMPLOYEES = HIRED_EMPLOYEES.name


def _parse_big_int(value: Any) -> int:
    """A BigInt from a variable or a literal: a string of decimal digits, or an integer."""
    if type(value) is int:
        return value
    if type(value) is str and re.fullmatch(r"-?[0-9]{1,19}", value):
        return int(value)
    raise ValueError(f"BigInt must be an integer or a string of decimal digits: {value!r:.40}")


BigInt = NewType("BigInt", int)
"""An integer wider than GraphQL's Int; the schema maps it to the scalar in ``SCALARS``."""

SCALARS: dict[object, ScalarDefinition] = {
    BigInt: strawberry.scalar(
        name="BigInt",
        serialize=lambda value: str(int(value)),
        parse_value=_parse_big_int,
        description="An integer that may not fit in GraphQL's 32-bit Int, such as a file size "
        'in bytes or a row count, sent as a string of decimal digits ("3221225472") so that '
        "every JSON client reads it exactly. As input, a string of digits or an integer.",
    )
}
"""The schema's own scalars (``StrawberryConfig.scalar_map``)."""


def _doc(table: dictionary.Table, column: str) -> str:
    return table.column(column).doc


class ChildPages(Protocol):
    """The hires of every department (or job) of one page, loaded at once for all of them when
    the first asks, so that a nested page costs the same queries for 1 parent or 1000."""

    def hired_employees(
        self,
        parent_id: int,
        *,
        first: int,
        after: str | None,
        where: HiredEmployeeFilter | None,
        order: HiredEmployeeOrder | None,
        info: strawberry.Info | None = None,
    ) -> Connection[HiredEmployee]: ...


_HIRES_ARGS = "first, after, filter and orderBy work as in the top-level hiredEmployees"


def _hires_of(
    root: Department | Job,
    info: strawberry.Info,
    first: int = 100,
    after: str | None = None,
    filter: HiredEmployeeFilter | None = None,
    order_by: HiredEmployeeOrder | None = None,
) -> Connection[HiredEmployee]:
    """A department's or a job's hires: one resolver for both, through their siblings."""
    return root._children.hired_employees(
        root.id, first=first, after=after, where=filter, order=order_by, info=info
    )


@strawberry.type(description=DEPARTMENTS.doc)
class Department:
    id: int = strawberry.field(description=_doc(DEPARTMENTS, "id"))
    department: str = strawberry.field(description=_doc(DEPARTMENTS, "department"))
    _children: strawberry.Private[ChildPages]
    hired_employees: Connection[HiredEmployee] = strawberry.field(
        resolver=_hires_of, description=f"The department's hired employees ({_HIRES_ARGS})."
    )


@strawberry.type(description=JOBS.doc)
class Job:
    id: int = strawberry.field(description=_doc(JOBS, "id"))
    job: str = strawberry.field(description=_doc(JOBS, "job"))
    _children: strawberry.Private[ChildPages]
    hired_employees: Connection[HiredEmployee] = strawberry.field(
        resolver=_hires_of, description=f"The hired employees in this job ({_HIRES_ARGS})."
    )


@strawberry.type(description=HIRED_EMPLOYEES.doc)
class HiredEmployee:
    id: int = strawberry.field(description=_doc(HIRED_EMPLOYEES, "id"))
    name: str = strawberry.field(description=_doc(HIRED_EMPLOYEES, "name"))
    datetime: datetime = strawberry.field(description=_doc(HIRED_EMPLOYEES, "datetime"))
    department_id: int = strawberry.field(description=_doc(HIRED_EMPLOYEES, "department_id"))
    job_id: int = strawberry.field(description=_doc(HIRED_EMPLOYEES, "job_id"))
    department: Department
    job: Job


@strawberry.type(name="Reason", description="One broken rule.")
class ReasonType:
    field: str | None = strawberry.field(description="The column, or null for the whole row.")
    code: str = strawberry.field(
        description="A stable code: "
        + ", ".join(code.value for code in dictionary.ReasonCode)
        + " (docs/data-dictionary.md says what each means)."
    )
    message: str


@strawberry.type(description="A row of a batch that was not inserted.")
class RowRejection:
    index: int = strawberry.field(description="The row's 0-based index in the batch.")
    id: int | None = strawberry.field(description="The id the row carried, if any.")
    reasons: list[ReasonType]


@strawberry.type(description="What happened to a batch.")
class BatchResult:
    table: TableEnum
    received: int = strawberry.field(description="Rows in the batch: 1 to 1000.")
    inserted: int
    rejected: int
    batch_id: strawberry.ID
    rejections: list[RowRejection]

    @classmethod
    def from_outcome(cls, outcome: IngestResult) -> BatchResult:
        return cls(
            table=TableEnum(outcome.table),
            received=outcome.received,
            inserted=outcome.inserted,
            rejected=outcome.rejected,
            batch_id=strawberry.ID(str(outcome.batch_id)),
            rejections=[
                RowRejection(index=r.position, id=r.row_id, reasons=_reasons(r))
                for r in outcome.rejections
            ],
        )


def _reasons(row: RejectedRow) -> list[ReasonType]:
    return [ReasonType(field=x.field, code=str(x.code), message=x.message) for x in row.reasons]


@strawberry.type(description="A row that a replay sent again and that was rejected again.")
class ReplayRejection:
    index: BigInt = strawberry.field(
        description="Where the row was first received: its index in its batch, or its line "
        "in its file (as the log's index)."
    )
    id: int | None = strawberry.field(description="The id the row carried, if any.")
    reasons: list[ReasonType]


@strawberry.type(
    description="What a manual replay did to a table, over all its replay batches. A replay "
    "sends every open entry it can, so its counts are BigInts, as the log's are."
)
class ReplayResult:
    table: TableEnum
    received: BigInt = strawberry.field(description="The rows sent through the rules again.")
    inserted: int = strawberry.field(description="The rows stored.")
    rejected: BigInt = strawberry.field(description="The rows rejected again, still open.")
    batch_id: strawberry.ID = strawberry.field(
        description="The first replay batch (a replay records one even with nothing to send)."
    )
    rejections: list[ReplayRejection] = strawberry.field(
        description=f"The first {SHOWN_REJECTIONS} rows rejected again; the log holds them all."
    )

    @classmethod
    def from_summary(cls, summary: ReplaySummary) -> ReplayResult:
        return cls(
            table=TableEnum(summary.table),
            received=BigInt(summary.read),
            inserted=summary.inserted,
            rejected=BigInt(summary.rejected),
            batch_id=strawberry.ID(str(summary.batch_id)),
            rejections=[
                ReplayRejection(index=BigInt(r.position), id=r.row_id, reasons=_reasons(r))
                for r in summary.rejections
            ],
        )


@strawberry.enum(description="Whether a logged row is still out of its table.")
class RejectionStatus(enum.Enum):
    OPEN = strawberry.enum_value("open", description="The row is not stored.")
    RESOLVED = strawberry.enum_value(
        "resolved", description="A later batch stored a row with its id (see resolvedBy)."
    )


@strawberry.type(
    description="An entry of the rejection log: a row that was not inserted, logged once "
    "however often it was received.",
    name="Rejection",
)
class RejectionType:
    id: strawberry.ID
    source: str = strawberry.field(description="graphql, rest, csv, restore or replay.")
    table: TableEnum
    batch_id: strawberry.ID = strawberry.field(description="The batch that first logged it.")
    index: BigInt = strawberry.field(description="Index in the batch, or line number in a file.")
    row_id: int | None = strawberry.field(description="The id the row carried, if any.")
    raw: JSON = strawberry.field(description="The row exactly as received.")
    reasons: list[ReasonType] = strawberry.field(description="Why, at the latest attempt.")
    created_at: datetime
    status: RejectionStatus
    resolved_by: strawberry.ID | None = strawberry.field(
        description="The batch that stored the row; null while it is open."
    )
    attempts: BigInt = strawberry.field(
        description="How often the row was received: replays, reruns and resends included, "
        "and each identical line of a file."
    )
    parked: bool = strawberry.field(
        description="Only missing references keep it out: it goes in by itself when they arrive."
    )

    @classmethod
    def from_model(cls, row: Any) -> RejectionType:
        return cls(
            id=strawberry.ID(str(row.id)),
            source=row.source,
            table=TableEnum(row.table),
            batch_id=strawberry.ID(str(row.batch_id)),
            index=BigInt(row.position),
            row_id=row.row_id,
            raw=row.raw,
            reasons=[ReasonType(**reason) for reason in row.reasons],
            created_at=row.created_at,
            status=RejectionStatus(row.status),
            resolved_by=strawberry.ID(str(row.resolved_by_id)) if row.resolved_by_id else None,
            attempts=BigInt(row.attempts),
            parked=row.parked and row.status == "open",
        )


@strawberry.type(name="RejectionConnection", description="One page of the rejection log.")
class RejectionConnection(Connection[RejectionType]):
    """A page of the log: its totalCount is a BigInt, as the log's ids are 64-bit and a file
    need not obey any rule, so the entries can pass Int's 2,147,483,647."""

    @strawberry.field(description="How many entries match the filters, over all pages.")
    def total_count(self) -> BigInt:
        return BigInt(self._count())

    @classmethod
    def of(cls, page: Connection[RejectionType]) -> RejectionConnection:
        return cls(nodes=page.nodes, page_info=page.page_info, _count=page._count)


# --- filters ---------------------------------------------------------------------------------


@strawberry.input(description="An inclusive id range.")
class IdRange:
    gte: int | None = None
    lte: int | None = None


@strawberry.input(description="A time range: from gte (inclusive) up to lt (exclusive).")
class DateTimeRange:
    gte: datetime | None = None
    lt: datetime | None = None


@strawberry.input
class DepartmentFilter:
    id: IdRange | None = None


@strawberry.input
class JobFilter:
    id: IdRange | None = None


@strawberry.input(
    description="Case-insensitive text matches; given both, a row must match both. On "
    "PostgreSQL every letter's case is folded; on SQLite only ASCII letters'."
)
class TextFilter:
    starts_with: str | None = None
    contains: str | None = None


@strawberry.input
class HiredEmployeeFilter:
    id: IdRange | None = None
    department_id: int | None = None
    job_id: int | None = None
    hired_between: DateTimeRange | None = None
    name: TextFilter | None = None


@strawberry.enum(description="A column hired employees can be ordered by.")
class HiredEmployeeOrderField(enum.Enum):
    ID = "id"
    DATETIME = "datetime"
    NAME = "name"


@strawberry.input(
    description="An order of hired employees: a column, then id, both in one direction, so "
    "pages never skip or repeat a row. A page's cursors work only with the order that made "
    "them. Names sort by the database's collation: by code point on SQLite and on a PostgreSQL "
    "database created with the C collation."
)
class HiredEmployeeOrder:
    field: HiredEmployeeOrderField = HiredEmployeeOrderField.ID
    direction: OrderDirection = OrderDirection.ASC

    def ordering(self) -> Ordering:
        return Ordering(column=self.field.value, direction=self.direction)


# --- batch inputs, derived from the dictionary -----------------------------------------------

_SCALARS: dict[str, type] = {"Int": int, "String": str}


def _row_input(table: dictionary.Table) -> type:
    """A row input with every column nullable, so one bad row is rejected on its own.

    Strawberry hands the resolver each row as a plain dict keyed by the dictionary's column
    names (its ``from_input`` hook), exactly what the ingest pipeline takes, rather than
    building an object per row only for the resolver to take it apart again.
    """
    namespace: dict[str, Any] = {"__annotations__": {}}
    for column in table.columns:
        namespace["__annotations__"][column.name] = _SCALARS[column.kind.graphql] | None
        namespace[column.name] = strawberry.field(default=None, description=column.doc)
    cls = strawberry.input(
        type(f"{table.model_name}Input", (), namespace),
        description=f"{table.doc} Every field is required by the rules.",
    )
    definition = get_object_definition(cls, strict=True)
    names = [(NameConverter().from_field(f), f.python_name) for f in definition.fields]
    definition.from_input = lambda _cls, value, _context: {
        column: value.get(graphql_name) for graphql_name, column in names
    }
    return cls


ROW_INPUTS: dict[str, type] = {name: _row_input(spec) for name, spec in dictionary.TABLES.items()}


def _batch_input() -> type:
    namespace: dict[str, Any] = {"__annotations__": {}}
    for name, row_input in ROW_INPUTS.items():
        namespace["__annotations__"][name] = list[row_input] | None  # type: ignore[valid-type]
        namespace[name] = strawberry.field(
            default=strawberry.UNSET,
            description=f"1 to {dictionary.MAX_BATCH_ROWS} rows for {name}.",
        )
    return strawberry.input(
        type("BatchInput", (), namespace),
        one_of=True,
        description="Exactly one table's rows.",
    )


BatchInput = _batch_input()


@strawberry.type(description="One table's backup file and its manifest.")
class Backup:
    table: TableEnum
    key: str = strawberry.field(description="The file's key in the backup storage.")
    rows: BigInt = strawberry.field(
        description="Rows in the file; -1 when it has no manifest (the replaced system's "
        "backups) or a damaged one."
    )
    sha256: str
    schema_fingerprint: str
    roster_version: str
    snapshot_time: datetime = strawberry.field(
        description="When the snapshot was taken, in UTC. A file whose manifest is damaged or "
        "missing gives the time its name holds (<table>/<UTC time>.avro), or "
        "1970-01-01T00:00:00+00:00 when its name holds none (the replaced system's files)."
    )
    codec: str
    size: BigInt = strawberry.field(description="The file's size in bytes.")
    problem: str | None = strawberry.field(
        default=None,
        description="Why the file cannot be trusted (a damaged manifest, an unreadable file); "
        "null for an intact backup. Such a file is never the default restore.",
    )
    cursor: str = strawberry.field(
        default="",
        description="Where this backup is in the list: pass it as backups' after to list the "
        "backups that follow it.",
    )

    @classmethod
    def from_file(cls, file: BackupFile) -> Backup:
        own = ("table", "snapshot_time", "problem", "cursor")
        fields = {name: getattr(file, name) for name in cls.__annotations__ if name not in own}
        return cls(
            table=TableEnum(file.table),
            snapshot_time=file.snapshot or NO_SNAPSHOT_TIME,
            problem=file.problem or None,
            cursor=backup_cursor(file.position),
            **fields,
        )


NO_SNAPSHOT_TIME = datetime(1970, 1, 1, tzinfo=UTC)
"""The snapshotTime of a file that tells none, since the field is never null: the Unix epoch,
a time no Roster backup has, and older than all of them, as such files list last."""


_BACKUP_CURSOR = "roster:backup:v1:"


def backup_cursor(position: Position) -> str:
    """An opaque cursor for a backup's place in the listing (see ``jobs.backups.Position``)."""
    return base64.urlsafe_b64encode(f"{_BACKUP_CURSOR}{json.dumps(position)}".encode()).decode()


def backup_position(cursor: str) -> Position:
    """The position a ``backup_cursor`` holds; ``BAD_USER_INPUT`` for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not text.startswith(_BACKUP_CURSOR):
            raise ValueError
        roster, name, table = json.loads(text.removeprefix(_BACKUP_CURSOR))
        if type(roster) is not bool or type(name) is not str or type(table) is not str:
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise bad_input(
            f"'after' is not a backup cursor this API returned: {cursor!r:.200}"
        ) from None
    return (roster, name, table)


@strawberry.type(description="What a restore did to one table.")
class RestoreResult:
    table: TableEnum
    backup: str
    read: BigInt = strawberry.field(description="Rows in the file.")
    inserted: int = strawberry.field(description="Rows stored.")
    rejected: BigInt = strawberry.field(description="Rows of the file that broke a rule.")
    replaced: int = strawberry.field(description="Rows the table held before.")

    @classmethod
    def from_summary(cls, summary: RestoreSummary) -> RestoreResult:
        return cls(
            table=TableEnum(summary.table),
            backup=summary.key,
            read=BigInt(summary.read),
            inserted=summary.inserted,
            rejected=BigInt(summary.rejected),
            replaced=summary.replaced,
        )


# The metrics' rows are plain dataclasses in backend.metrics; the schema exposes them as they are
# (strawberry.type marks the classes themselves).
QuarterlyHires = metrics.QuarterlyHires
DepartmentHires = metrics.DepartmentHires
strawberry.type(
    QuarterlyHires,
    description="Hires for one job of one department in a year, by quarter (UTC).",
)
strawberry.type(DepartmentHires, description="A department's hires in a year.")
