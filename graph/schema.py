"""The GraphQL schema: thin resolvers over selectors (reads) and the ingest service (writes)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import strawberry
from django.conf import settings
from django.db.models import Q
from strawberry.extensions import MaskErrors
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter
from strawberry.utils.str_converters import to_camel_case

from backend import metrics, models
from backend.models import Source
from graph import selectors
from graph.documents import KnownDocuments
from graph.errors import ErrorCodes, bad_input, should_mask
from graph.execution import LeafObjectExecutionContext
from graph.limits import QueryLimits
from graph.pagination import BY_ID, MAX_PAGE, Connection, counts_only, paginate
from graph.permissions import CanRead, CanWrite, IsAdmin
from graph.replica import ReplicaReads
from graph.types import (
    ROW_INPUTS,
    SCALARS,
    Backup,
    BatchInput,
    BatchResult,
    Department,
    DepartmentFilter,
    DepartmentHires,
    HiredEmployee,
    HiredEmployeeFilter,
    HiredEmployeeOrder,
    Job,
    JobFilter,
    QuarterlyHires,
    RejectionConnection,
    RejectionStatus,
    ReplayResult,
    RestoreResult,
    TableEnum,
    backup_position,
)
from jobs import backups
from jobs.ingest import BatchSizeError, check_batch_size, ingest_rows, replay

BACKUPS_PAGE = 100
"""How many backups ``backups`` lists when ``first`` is left out."""


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[CanRead], description="Departments, by id.")
    def departments(
        self, first: int = 100, after: str | None = None, filter: DepartmentFilter | None = None
    ) -> Connection[Department]:
        rows = selectors.id_range(models.Department.objects.all(), filter.id if filter else None)
        return paginate(rows, first=first, after=after, build=selectors.department_nodes)

    @strawberry.field(permission_classes=[CanRead], description="Jobs, by id.")
    def jobs(
        self, first: int = 100, after: str | None = None, filter: JobFilter | None = None
    ) -> Connection[Job]:
        rows = selectors.id_range(models.Job.objects.all(), filter.id if filter else None)
        return paginate(rows, first=first, after=after, build=selectors.job_nodes)

    @strawberry.field(
        permission_classes=[CanRead],
        description="Hired employees, by id unless orderBy says otherwise.",
    )
    def hired_employees(
        self,
        info: strawberry.Info,
        first: int = 100,
        after: str | None = None,
        filter: HiredEmployeeFilter | None = None,
        order_by: HiredEmployeeOrder | None = None,
    ) -> Connection[HiredEmployee]:
        rows = selectors.hired_employees(filter)
        ordering = order_by.ordering() if order_by is not None else BY_ID
        columns = selectors.read_columns(info, ordering)
        return paginate(
            rows,
            first=first,
            after=after,
            ordering=ordering,
            build=lambda page: selectors.employee_nodes(page, columns),
            count=selectors.hire_total(filter, rows),
            page=not counts_only(info),
        )

    @strawberry.field(permission_classes=[CanRead], description="A department; null if none.")
    def department(self, id: int) -> Department | None:
        return selectors.one(selectors.department_nodes(models.Department.objects.filter(pk=id)))

    @strawberry.field(permission_classes=[CanRead], description="A job; null if none.")
    def job(self, id: int) -> Job | None:
        return selectors.one(selectors.job_nodes(models.Job.objects.filter(pk=id)))

    @strawberry.field(permission_classes=[CanRead], description="A hired employee; null if none.")
    def hired_employee(self, id: int) -> HiredEmployee | None:
        rows = models.HiredEmployee.objects.filter(pk=id)
        return selectors.one(selectors.employee_nodes(rows))

    @strawberry.field(
        permission_classes=[CanRead],
        description="Hires per department and job in a year (UTC), by quarter; only pairs with "
        "a hire, ordered by department then job, names compared by code point.",
    )
    def hires_by_quarter(self, year: int) -> list[QuarterlyHires]:
        return metrics.hires_by_quarter(year=_year(year))

    @strawberry.field(
        permission_classes=[CanRead],
        description="Departments that hired more in a year (UTC) than the mean of all "
        "departments (a department with no hire counts as 0); highest first, then by id.",
    )
    def departments_above_mean(self, year: int) -> list[DepartmentHires]:
        return metrics.departments_above_mean(year=_year(year))

    @strawberry.field(
        permission_classes=[IsAdmin],
        description=f"Backups, newest first, the replaced system's last: the first "
        f"{BACKUPS_PAGE} by default, at most {MAX_PAGE}. For the next page, pass the last "
        "backup's cursor as after.",
    )
    def backups(
        self,
        table: TableEnum | None = None,
        first: int = BACKUPS_PAGE,
        after: str | None = None,
    ) -> list[Backup]:
        if not 0 <= first <= MAX_PAGE:
            raise bad_input(f"'first' must be between 0 and {MAX_PAGE}, got {first}")
        position = None if after is None else backup_position(after)
        with _as_bad_input():
            listed = backups.list_backups(table and table.value, after=position, first=first)
        return [Backup.from_file(file) for file in listed]

    @strawberry.field(permission_classes=[CanRead], description="The rejection log, oldest first.")
    def rejections(
        self,
        table: TableEnum | None = None,
        batch_id: strawberry.ID | None = None,
        status: RejectionStatus | None = None,
        first: int = 100,
        after: str | None = None,
    ) -> RejectionConnection:
        rows = models.Rejection.objects.all()
        if table is not None:
            rows = rows.filter(table=table.value)
        if batch_id is not None:
            rows = rows.filter(Q(batch_id=_uuid(batch_id)))
        if status is not None:
            rows = rows.filter(status=status.value)
        page = paginate(rows, first=first, after=after, build=selectors.rejection_nodes)
        return RejectionConnection.of(page)


@contextmanager
def _as_bad_input() -> Iterator[None]:
    """A backup job's refusal (bad key, damaged file, orphaning restore) is the caller's to fix."""
    try:
        yield
    except backups.BackupError as error:
        raise bad_input(str(error)) from None


def _year(year: int) -> int:
    try:
        return metrics.parse_year(year)
    except metrics.YearError as error:
        raise bad_input(str(error)) from None


def _uuid(batch_id: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(batch_id))
    except ValueError:
        raise bad_input(f"'batchId' is not a batch id: {batch_id!r}") from None


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description="Back up tables (all by default) from one snapshot to AVRO files.",
    )
    def backup(self, tables: list[TableEnum] | None = None) -> list[Backup]:
        names = [table.value for table in tables or []]
        with _as_bad_input():
            return [Backup.from_file(file) for file in backups.backup_tables(tables=names)]

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description="Replace a table's rows with a backup (the latest by default).",
    )
    def restore(self, table: TableEnum, backup: str | None = None) -> RestoreResult:
        with _as_bad_input():
            named = {table.value: backup} if backup is not None else None  # None: the latest
            (done,) = backups.restore_tables(tables=[table.value], backups=named)
        return RestoreResult.from_summary(done)

    @strawberry.mutation(
        permission_classes=[CanWrite],
        description="Send the open rejections of a table, or of one batch, through the rules "
        "again: for what automatic replay cannot see, such as a department added by hand. Rows "
        "that a later arrival cannot fix (a bad datetime, a blank name) are left as they are; "
        "an atomic batch's rows go in together or not at all. Returns the replay's counts.",
    )
    def replay_rejections(
        self,
        table: TableEnum | None = None,
        batch_id: strawberry.ID | None = None,
    ) -> ReplayResult:
        if table is None and batch_id is None:
            raise bad_input("give a table or a batchId to replay")
        try:
            (summary,) = replay.replay_rejections(
                table=table and table.value, batch_id=batch_id and _uuid(batch_id)
            )
        except replay.ReplayError as error:
            raise bad_input(str(error)) from None
        return ReplayResult.from_summary(summary)

    @strawberry.mutation(
        permission_classes=[CanWrite],
        description="Insert 1 to 1000 rows of one table. Invalid rows are rejected and logged; "
        "with atomic: true one invalid row keeps the whole batch out.",
    )
    def insert_batch(self, input: BatchInput, atomic: bool = False) -> BatchResult:  # type: ignore[valid-type]
        table, rows = next(
            (name, rows)
            for name in ROW_INPUTS
            if (rows := getattr(input, name)) is not strawberry.UNSET and rows is not None
        )
        try:
            check_batch_size(len(rows))
        except BatchSizeError as error:
            raise bad_input(str(error)) from None
        outcome = ingest_rows(table=table, rows=rows, source=Source.GRAPHQL, atomic=atomic)
        return BatchResult.from_outcome(outcome)


class _NameConverter(NameConverter):
    """Strawberry's names, with each Python name's camel case kept once computed: Strawberry
    asks for the GraphQL name of every argument (and input field) on every resolver call (51
    times for the traversal's 13 calls), and computed it each time. The names are the schema's
    own, so the cache holds a few dozen."""

    def apply_naming_config(self, name: str) -> str:
        return _camel_case(name) if self.auto_camel_case else name


_camel_case = functools.lru_cache(maxsize=1024)(to_camel_case)


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    execution_context_class=LeafObjectExecutionContext,
    config=StrawberryConfig(scalar_map=SCALARS, name_converter=_NameConverter()),
    extensions=[
        QueryLimits,
        ErrorCodes,
        KnownDocuments,  # after the two above: it sees the rules as they will run
        ReplicaReads,
        lambda: MaskErrors(
            should_mask_error=lambda error: should_mask(error) and not settings.DEBUG
        ),
    ],
)


def sdl() -> str:
    """The schema in SDL, as committed in schema.graphql: the contract clients build on, so a
    change to it shows in review (``make schema`` rewrites the file)."""
    return print_schema(schema) + "\n"
