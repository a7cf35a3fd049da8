"""Roster's tables. Columns, types and rules come from the data dictionary."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models.functions import Trim

from backend.dictionary import (
    DEPARTMENTS,
    HIRED_EMPLOYEES,
    JOBS,
    MAX_ID,
    Column,
    Integer,
    Table,
    Text,
    Timestamp,
)


def _field(column: Column) -> models.Field:
    """Build the Django field for a dictionary column: every column is NOT NULL."""
    if column.references:
        model = {"departments": "Department", "jobs": "Job"}[column.references]
        return models.ForeignKey(
            model,
            on_delete=models.PROTECT,
            related_name="hired_employees",
            db_column=column.name,
            db_index=False,  # the (reference, id) index of KEYSET_INDEXES serves its lookups
            help_text=column.doc,
        )
    if column.primary_key:
        return models.IntegerField(primary_key=True, help_text=column.doc)
    if isinstance(column.kind, Text):
        return models.CharField(max_length=column.kind.max_length, help_text=column.doc)
    if isinstance(column.kind, Timestamp):
        return models.DateTimeField(help_text=column.doc)  # indexed by KEYSET_INDEXES
    if isinstance(column.kind, Integer):
        return models.IntegerField(help_text=column.doc)
    raise TypeError(f"no model field for {column.kind!r}")


def _constraints(table: Table) -> list[models.BaseConstraint]:
    """Database checks that mirror the dictionary's rules, so no writer can bypass them."""
    checks: list[models.BaseConstraint] = []
    for column in table.columns:
        name = f"{table.name}_{column.name}"
        if isinstance(column.kind, Integer) and not column.references:  # FKs: the key checks
            lookup = f"{column.name}__range"
            checks.append(
                models.CheckConstraint(
                    condition=models.Q(**{lookup: (1, MAX_ID)}), name=f"{name}_positive"
                )
            )
        if isinstance(column.kind, Text):
            checks.append(
                models.CheckConstraint(
                    condition=models.Q(**{f"{column.name}__gt": ""})
                    & models.Q(**{f"{column.name}__exact": Trim(column.name)}),
                    name=f"{name}_trimmed_not_blank",
                )
            )
    return checks


class Department(models.Model):
    id = _field(DEPARTMENTS.column("id"))
    department = _field(DEPARTMENTS.column("department"))

    class Meta:
        db_table = DEPARTMENTS.name
        ordering = ["id"]
        constraints = _constraints(DEPARTMENTS)

    def __str__(self) -> str:
        return self.department


class Job(models.Model):
    id = _field(JOBS.column("id"))
    job = _field(JOBS.column("job"))

    class Meta:
        db_table = JOBS.name
        ordering = ["id"]
        constraints = _constraints(JOBS)

    def __str__(self) -> str:
        return self.job


KEYSET_INDEXES = (("department", "id"), ("job", "id"), ("datetime", "id"), ("name", "id"))
"""The hires' secondary indexes, one per way to page them: a department's or a job's hires in
id order (also what the foreign keys' checks look up), and every hire by time or by name. Each
ends with id, the tie-break, so a keyset page is one index range scan. The trigram index that
serves name filters is PostgreSQL's only (migration 0003)."""


class HiredEmployee(models.Model):
    id = _field(HIRED_EMPLOYEES.column("id"))
    name = _field(HIRED_EMPLOYEES.column("name"))
    datetime = _field(HIRED_EMPLOYEES.column("datetime"))
    department = _field(HIRED_EMPLOYEES.column("department_id"))
    job = _field(HIRED_EMPLOYEES.column("job_id"))

    class Meta:
        db_table = HIRED_EMPLOYEES.name
        ordering = ["id"]
        constraints = _constraints(HIRED_EMPLOYEES)
        indexes = [
            models.Index(fields=list(columns), name=f"hires_by_{columns[0]}")
            for columns in KEYSET_INDEXES
        ]

    def __str__(self) -> str:
        return self.name


def _summary_parent(model: type[models.Model], related_name: str) -> models.ForeignKey:
    """A summary row's department or job. No constraint (the hires' own foreign keys guard it)
    and no index of its own: every read goes by year, the primary key's first column."""
    return models.ForeignKey(
        model,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name=related_name,
    )


class _SummaryRow(models.Model):
    """What every table of the hires summary holds besides its key (``backend/hire_summary.py``)."""

    year = models.IntegerField(help_text="The hire's year, in UTC.")
    stripe = models.SmallIntegerField(default=0, help_text="Which writer's row (0 to 3).")
    hires = models.BigIntegerField()

    class Meta:
        abstract = True


def _quarter(n: int) -> models.BigIntegerField:
    return models.BigIntegerField(default=0, help_text=f"Hires in Q{n}, in UTC.")


class HireCount(_SummaryRow):
    """The hires summary (``backend/hire_summary.py``): hires per year, department and job, with
    a column per quarter, kept exact by the database's triggers in the same transaction as the
    rows. The metrics and ``totalCount`` read it. A key has a row per stripe that wrote it
    (concurrent writers take different stripes, so they never wait for each other); its hires
    are their sum, which is never negative, though one stripe's row may be. A key whose hires
    all went may stay, at 0."""

    pk = models.CompositePrimaryKey("year", "department", "job", "stripe")
    department = _summary_parent(Department, "hire_counts")
    job = _summary_parent(Job, "hire_counts")
    q1, q2, q3, q4 = (_quarter(n) for n in (1, 2, 3, 4))
    hires = models.GeneratedField(
        expression=models.F("q1") + models.F("q2") + models.F("q3") + models.F("q4"),
        output_field=models.BigIntegerField(),
        db_persist=True,
        help_text="Hires in the year: the quarters' sum.",
    )

    class Meta:
        db_table = "hire_counts"

    def __str__(self) -> str:
        quarters = " ".join(str(n) for n in (self.q1, self.q2, self.q3, self.q4))
        return f"{self.year} {self.department_id}/{self.job_id} (stripe {self.stripe}): {quarters}"


class DepartmentYear(_SummaryRow):
    """A department's hires in a year: a rollup of ``HireCount``, kept by the same triggers, in
    stripes as it is. ``departmentsAboveMean`` and ``totalCount`` sum these few rows."""

    pk = models.CompositePrimaryKey("year", "department", "stripe")
    department = _summary_parent(Department, "hire_years")

    class Meta:
        db_table = "department_years"

    def __str__(self) -> str:
        return f"{self.year} {self.department_id} (stripe {self.stripe}): {self.hires}"


class JobYear(_SummaryRow):
    """A job's hires in a year, across departments: a rollup of ``HireCount`` as
    ``DepartmentYear`` is. ``totalCount`` filtered by job sums these rows."""

    pk = models.CompositePrimaryKey("year", "job", "stripe")
    job = _summary_parent(Job, "hire_years")

    class Meta:
        db_table = "job_years"

    def __str__(self) -> str:
        return f"{self.year} {self.job_id} (stripe {self.stripe}): {self.hires}"


MODELS: dict[str, type[Department | Job | HiredEmployee]] = {
    DEPARTMENTS.name: Department,
    JOBS.name: Job,
    HIRED_EMPLOYEES.name: HiredEmployee,
}


class Source(models.TextChoices):
    """Where a batch of rows came from."""

    GRAPHQL = "graphql"
    REST = "rest"
    CSV = "csv"
    RESTORE = "restore"
    REPLAY = "replay"  # parked rows sent through the pipeline again (jobs/ingest/replay.py)


class Batch(models.Model):
    """The audit record of one ingest batch (an API call, or one chunk of a file run)."""

    class Status(models.TextChoices):
        COMPLETED = "completed"  # valid rows stored, invalid rows logged
        REJECTED = "rejected"  # atomic batch with an invalid row: nothing stored
        FAILED = "failed"  # an unexpected error: rolled back

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.CharField(max_length=16, choices=Source.choices)
    table = models.CharField(max_length=32)
    uri = models.CharField(max_length=1024, blank=True, default="", help_text="File or S3 URI.")
    run = models.ForeignKey(
        "LoadRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="batches"
    )
    atomic = models.BooleanField(default=False)
    received = models.PositiveIntegerField(default=0)
    inserted = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices)
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()

    class Meta:
        db_table = "batches"
        ordering = ["-started_at"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return f"{self.source} {self.table} {self.id}"


class Rejection(models.Model):
    """One rejected row: never inserted, always logged with every reason, and logged once.

    An entry is ``open`` while its row is not stored and ``resolved`` once a later batch stores
    a row with its id. The same row received again (a replay, a rerun, a client resending it)
    updates its entry: ``attempts`` counts the receptions, ``reasons`` are the latest.

    A row whose only broken rule is a missing reference is ``parked``, with one
    ``ParkedReference`` per missing id; when the last of them goes, the row is replayed.
    """

    class Status(models.TextChoices):
        OPEN = "open"  # the row is not stored
        RESOLVED = "resolved"  # a later batch stored it

    batch = models.ForeignKey(
        Batch,
        on_delete=models.CASCADE,
        related_name="rejections",
        help_text="The batch that first logged the row.",
    )
    source = models.CharField(max_length=16, choices=Source.choices)
    table = models.CharField(max_length=32)
    position = models.PositiveBigIntegerField(
        help_text="The row's index in its batch (API) or its line number (CSV)."
    )
    row_id = models.IntegerField(null=True, blank=True, help_text="The row's id, if it had one.")
    raw = models.JSONField(help_text="The row exactly as received.")
    reasons = models.JSONField(help_text="A list of {field, code, message}: the latest attempt's.")
    created_at = models.DateTimeField(auto_now_add=True)
    row_key = models.CharField(
        max_length=32, help_text="A digest of the table and the raw row: one entry per row."
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    attempts = models.PositiveBigIntegerField(
        default=1, help_text="How often the row was received."
    )
    updated_at = models.DateTimeField(null=True, blank=True, help_text="The latest attempt.")
    resolved_by = models.ForeignKey(
        Batch,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="resolved_rejections",
        help_text="The batch that stored the row.",
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    parked = models.BooleanField(
        default=False, help_text="Only missing references kept it out: replayed when they arrive."
    )

    class Meta:
        db_table = "rejections"
        ordering = ["id"]
        indexes = [
            models.Index(fields=["table", "id"]),
            models.Index(fields=["batch", "id"]),
            models.Index(fields=["status", "table", "id"]),
            models.Index(
                fields=["table", "row_id"],
                condition=models.Q(status="open"),
                name="rejections_open_row_ids",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["table", "row_key"], name="rejections_one_per_row")
        ]

    def __str__(self) -> str:
        return f"{self.table} #{self.position}"


class ParkedReference(models.Model):
    """A reference a parked row is waiting for: deleted when the referenced row arrives."""

    rejection = models.ForeignKey(Rejection, on_delete=models.CASCADE, related_name="waits")
    references = models.CharField(max_length=32, help_text="The referenced table.")
    ref_id = models.IntegerField(help_text="The missing id.")

    class Meta:
        db_table = "parked_references"
        indexes = [models.Index(fields=["references", "ref_id"])]

    def __str__(self) -> str:
        return f"{self.references} {self.ref_id}"


class Scope(models.TextChoices):
    """What a token may do. Each scope includes the ones below it."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


class ApiToken(models.Model):
    """A bearer token. Only its SHA-256 is stored; the token itself is shown once."""

    name = models.CharField(max_length=100, unique=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scope = models.CharField(max_length=8, choices=Scope.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "api_tokens"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.scope})"


class LoadRun(models.Model):
    """One load of one source file: what was read, how far it got, and how it ended.

    A rerun of an unchanged source (same URI, size and fingerprint) that completed is a no-op;
    a run that was killed resumes after ``last_line``, the last line of its last committed chunk.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"

    uri = models.CharField(max_length=1024)
    table = models.CharField(max_length=32)
    size = models.BigIntegerField()
    fingerprint = models.CharField(max_length=128, help_text="S3 ETag or local SHA-256.")
    status = models.CharField(max_length=16, choices=Status.choices)
    read = models.PositiveBigIntegerField(default=0)
    inserted = models.PositiveBigIntegerField(default=0)
    rejected = models.PositiveBigIntegerField(default=0)
    last_line = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "load_runs"
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["uri", "fingerprint"])]

    def __str__(self) -> str:
        return f"{self.uri} ({self.status})"
