"""Reads for the GraphQL queries: filters as querysets, and pages built as plain nodes."""

from __future__ import annotations

from django.db.models import QuerySet

from backend import models
from graph.types import Department, HiredEmployee, HiredEmployeeFilter, IdRange, Job


def id_range(rows: QuerySet, bounds: IdRange | None) -> QuerySet:
    if bounds is None:
        return rows
    if bounds.gte is not None:
        rows = rows.filter(pk__gte=bounds.gte)
    if bounds.lte is not None:
        rows = rows.filter(pk__lte=bounds.lte)
    return rows


def hired_employees(where: HiredEmployeeFilter | None) -> QuerySet:
    rows = models.HiredEmployee.objects.all()
    if where is None:
        return rows
    rows = id_range(rows, where.id)
    if where.department_id is not None:
        rows = rows.filter(department_id=where.department_id)
    if where.job_id is not None:
        rows = rows.filter(job_id=where.job_id)
    if where.hired_between is not None:
        if where.hired_between.gte is not None:
            rows = rows.filter(datetime__gte=where.hired_between.gte)
        if where.hired_between.lt is not None:
            rows = rows.filter(datetime__lt=where.hired_between.lt)
    return rows


_EMPLOYEE_COLUMNS = (
    "id", "name", "datetime", "department_id", "job_id", "department__department", "job__job"
)  # fmt: skip


def employee_nodes(page: QuerySet) -> list[HiredEmployee]:
    """One joined query, straight into GraphQL nodes: no model instances on the hot path."""
    departments: dict[int, Department] = {}
    jobs: dict[int, Job] = {}
    nodes = []
    for row_id, name, hired, department_id, job_id, department, job in page.values_list(
        *_EMPLOYEE_COLUMNS
    ):
        if department_id not in departments:
            departments[department_id] = Department(id=department_id, department=department)
        if job_id not in jobs:
            jobs[job_id] = Job(id=job_id, job=job)
        nodes.append(
            HiredEmployee(
                id=row_id,
                name=name,
                datetime=hired,
                department_id=department_id,
                job_id=job_id,
                department=departments[department_id],
                job=jobs[job_id],
            )
        )
    return nodes
