"""GraphQL types. Node fields carry the dictionary's docs; row inputs are built from it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.schema.name_converter import NameConverter

from backend import dictionary, metrics
from backend.dictionary import DEPARTMENTS, HIRED_EMPLOYEES, JOBS
from jobs.ingest import BatchResult as BatchOutcome

Table = strawberry.enum(
    enum.Enum("Table", {name.upper(): name for name in dictionary.TABLES}),
    description="A table of Roster's data.",
)


def _doc(table: dictionary.Table, column: str) -> str:
    return table.column(column).doc


@strawberry.type(description=DEPARTMENTS.doc)
class Department:
    id: int = strawberry.field(description=_doc(DEPARTMENTS, "id"))
    department: str = strawberry.field(description=_doc(DEPARTMENTS, "department"))


@strawberry.type(description=JOBS.doc)
class Job:
    id: int = strawberry.field(description=_doc(JOBS, "id"))
    job: str = strawberry.field(description=_doc(JOBS, "job"))


@strawberry.type(description=HIRED_EMPLOYEES.doc)
class HiredEmployee:
    id: int = strawberry.field(description=_doc(HIRED_EMPLOYEES, "id"))
    name: str = strawberry.field(description=_doc(HIRED_EMPLOYEES, "name"))
    datetime: datetime = strawberry.field(description=_doc(HIRED_EMPLOYEES, "datetime"))
    department_id: int = strawberry.field(description=_doc(HIRED_EMPLOYEES, "department_id"))
    job_id: int = strawberry.field(description=_doc(HIRED_EMPLOYEES, "job_id"))
    department: Department
    job: Job


@strawberry.type(description="One broken rule.")
class Reason:
    field: str | None = strawberry.field(description="The column, or null for the whole row.")
    code: str = strawberry.field(description="A stable code, such as required or duplicate.")
    message: str


@strawberry.type(description="A row of a batch that was not inserted.")
class RowRejection:
    index: int = strawberry.field(description="The row's 0-based index in the batch.")
    id: int | None = strawberry.field(description="The id the row carried, if any.")
    reasons: list[Reason]


@strawberry.type(description="What happened to a batch.")
class BatchResult:
    table: Table  # type: ignore[valid-type]
    received: int
    inserted: int
    rejected: int
    batch_id: strawberry.ID
    rejections: list[RowRejection]

    @classmethod
    def from_outcome(cls, outcome: BatchOutcome) -> BatchResult:
        return cls(
            table=Table(outcome.table),
            received=outcome.received,
            inserted=outcome.inserted,
            rejected=outcome.rejected,
            batch_id=strawberry.ID(str(outcome.batch_id)),
            rejections=[
                RowRejection(
                    index=r.position,
                    id=r.row_id,
                    reasons=[
                        Reason(field=x.field, code=x.code, message=x.message) for x in r.reasons
                    ],
                )
                for r in outcome.rejections
            ],
        )


@strawberry.type(description="An entry of the rejection log: a row that was never inserted.")
class Rejection:
    id: strawberry.ID
    source: str = strawberry.field(description="graphql, rest, csv or restore.")
    table: Table  # type: ignore[valid-type]
    batch_id: strawberry.ID
    index: int = strawberry.field(description="Index in the batch, or line number in a file.")
    row_id: int | None = strawberry.field(description="The id the row carried, if any.")
    raw: JSON = strawberry.field(description="The row exactly as received.")
    reasons: list[Reason]
    created_at: datetime

    @classmethod
    def from_model(cls, row: Any) -> Rejection:
        return cls(
            id=strawberry.ID(str(row.id)),
            source=row.source,
            table=Table(row.table),
            batch_id=strawberry.ID(str(row.batch_id)),
            index=row.position,
            row_id=row.row_id,
            raw=row.raw,
            reasons=[Reason(**reason) for reason in row.reasons],
            created_at=row.created_at,
        )


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


@strawberry.input
class HiredEmployeeFilter:
    id: IdRange | None = None
    department_id: int | None = None
    job_id: int | None = None
    hired_between: DateTimeRange | None = None


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
    definition = cls.__strawberry_definition__
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
    table: Table  # type: ignore[valid-type]
    key: str = strawberry.field(description="The file's key in the backup storage.")
    rows: int = strawberry.field(
        description="Rows in the file; -1 when it has no manifest (the replaced system's "
        "backups) or a damaged one."
    )
    sha256: str
    schema_fingerprint: str
    roster_version: str
    snapshot_time: str = strawberry.field(description="When the snapshot was taken (UTC).")
    codec: str
    size: int
    problem: str | None = strawberry.field(
        default=None,
        description="Why the file cannot be trusted (a damaged manifest, an unreadable file); "
        "null for an intact backup. Such a file is never the default restore.",
    )

    @classmethod
    def from_file(cls, file: Any) -> Backup:
        names = [name for name in cls.__annotations__ if name not in ("table", "problem")]
        fields = {name: getattr(file, name) for name in names}
        return cls(table=Table(file.table), problem=file.problem or None, **fields)


@strawberry.type(description="What a restore did to one table.")
class RestoreResult:
    table: Table  # type: ignore[valid-type]
    backup: str
    read: int
    inserted: int
    rejected: int
    replaced: int = strawberry.field(description="Rows the table held before.")


# The metrics' rows are plain dataclasses in backend.metrics; the schema exposes them as they are.
QuarterlyHires = strawberry.type(
    metrics.QuarterlyHires,
    description="Hires for one job of one department in a year, by quarter (UTC).",
)
DepartmentHires = strawberry.type(
    metrics.DepartmentHires, description="A department's hires in a year."
)
