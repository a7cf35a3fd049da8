"""The stakeholders' metrics, aggregated in SQL on PostgreSQL and SQLite alike.

Years and quarters are taken in UTC, the zone every hire datetime is stored in. The year's
bounds are computed here as UTC datetimes and compared with the stored column, so the database
can use the index on ``datetime`` when a year is a small part of the table. Every year a hire
can have (1 to 9999) is a valid year: the last quarter of 9999 has no upper bound, because
Python has no year 10000 to end it with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, UTC, datetime

from django.db.models import Count, Q

from backend.models import Department, HiredEmployee

MIN_YEAR, MAX_YEAR = MINYEAR, MAXYEAR  # 1 and 9999: every year a stored hire can have


class YearError(ValueError):
    """A year that is missing, not a number, or out of range."""


@dataclass(frozen=True)
class QuarterlyHires:
    """Hires for one job of one department in one year, by quarter."""

    department: str
    job: str
    q1: int
    q2: int
    q3: int
    q4: int


@dataclass(frozen=True)
class DepartmentHires:
    """One department's hires in a year."""

    id: int
    department: str
    hired: int


def parse_year(value: object) -> int:
    """The year from a query string or an argument, or a clear ``YearError``."""
    if value is None or value == "":
        raise YearError("'year' is required, e.g. year=2021")
    try:
        year = int(str(value).strip())
    except ValueError:
        raise YearError(f"'year' must be a whole number, got {value!r}") from None
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise YearError(f"'year' must be between {MIN_YEAR} and {MAX_YEAR}, got {year}")
    return year


def _quarter_starts(year: int) -> list[datetime | None]:
    """Jan 1, Apr 1, Jul 1, Oct 1 of ``year`` and Jan 1 of the next year, in UTC.

    The last is ``None`` (no upper bound) for 9999, the last year a datetime can have.
    """
    starts: list[datetime | None] = [
        datetime(year, month, 1, tzinfo=UTC) for month in (1, 4, 7, 10)
    ]
    return [*starts, datetime(year + 1, 1, 1, tzinfo=UTC) if year < MAXYEAR else None]


def _between(field: str, start: datetime | None, end: datetime | None) -> Q:
    """``start <= field < end``, leaving out a missing bound."""
    bounds = {f"{field}__gte": start, f"{field}__lt": end}
    return Q(**{lookup: value for lookup, value in bounds.items() if value is not None})


def hires_by_quarter(*, year: int) -> list[QuarterlyHires]:
    """Hires per department and job in ``year``, split by quarter; only pairs with a hire,
    ordered by department, then job. One GROUP BY query."""
    bounds = _quarter_starts(year)
    quarters = {
        f"q{n}": Count("id", filter=_between("datetime", bounds[n - 1], bounds[n]))
        for n in (1, 2, 3, 4)
    }
    rows = (
        HiredEmployee.objects.filter(_between("datetime", bounds[0], bounds[4]))
        .values("department_id", "job_id", "department__department", "job__job")
        .annotate(**quarters)
        .order_by("department__department", "job__job", "department_id", "job_id")
        .values_list("department__department", "job__job", *quarters)
    )
    return [QuarterlyHires(*row) for row in rows]


def hires_per_department(*, year: int) -> tuple[list[DepartmentHires], float]:
    """Every department's hires in ``year`` (0 for none), by id, and their mean.

    One LEFT JOIN ... GROUP BY query; the mean is over departments, not employees.
    """
    bounds = _quarter_starts(year)
    in_year = _between("hired_employees__datetime", bounds[0], bounds[4])
    rows = [
        DepartmentHires(*row)
        for row in Department.objects.annotate(hired=Count("hired_employees", filter=in_year))
        .order_by("id")
        .values_list("id", "department", "hired")
    ]
    mean = sum(row.hired for row in rows) / len(rows) if rows else 0.0
    return rows, mean


def departments_above_mean(*, year: int) -> list[DepartmentHires]:
    """Departments that hired more in ``year`` than the mean over all departments, where a
    department that hired nobody counts as 0. Highest first, then by id."""
    rows, mean = hires_per_department(year=year)
    return sorted((row for row in rows if row.hired > mean), key=lambda row: (-row.hired, row.id))
