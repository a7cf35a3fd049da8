"""The stakeholders' metrics, read from the hires summary (``backend/hire_summary.py``), so they
cost the same at 10 million hires as at 10 thousand.

Years and quarters are taken in UTC, the zone every hire datetime is stored in. Every year a
hire can have (1 to 9999) is a valid year.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR

from django.db.models import FilteredRelation, Q, Sum
from django.db.models.functions import Coalesce

from backend.models import Department, HireCount, Job
from backend.replica import read_connection

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


_BY_QUARTER = """
SELECT d.{department}, j.{job}, s.q1, s.q2, s.q3, s.q4 FROM (
    SELECT department_id, job_id, {quarters} FROM {hire_counts}
    WHERE year = %s GROUP BY department_id, job_id HAVING SUM(hires) > 0
) AS s
JOIN {departments} AS d ON d.id = s.department_id JOIN {jobs} AS j ON j.id = s.job_id
ORDER BY d.{department}, j.{job}, s.department_id, s.job_id
"""


def hires_by_quarter(*, year: int) -> list[QuarterlyHires]:
    """Hires per department and job in ``year``, split by quarter; only pairs with a hire,
    ordered by department, then job.

    One query over the summary's rows of that year (every stripe's). It sums them per pair by
    id first and joins the names after, so the database sorts one row per pair by name, not
    one per quarter: a quarter of the rows, a fifth of the time at 10M hires
    (docs/benchmarks.md).
    """
    db = read_connection(HireCount)
    quote = db.ops.quote_name
    sql = _BY_QUARTER.format(
        quarters=", ".join(
            f"CAST(SUM(CASE WHEN quarter = {n} THEN hires ELSE 0 END) AS BIGINT) AS q{n}"
            for n in (1, 2, 3, 4)
        ),
        hire_counts=quote(HireCount._meta.db_table),
        departments=quote(Department._meta.db_table),
        jobs=quote(Job._meta.db_table),
        department=quote("department"),
        job=quote("job"),
    )
    with db.cursor() as cursor:
        cursor.execute(sql, [year])
        return [QuarterlyHires(*row) for row in cursor.fetchall()]


def hires_per_department(*, year: int) -> tuple[list[DepartmentHires], float]:
    """Every department's hires in ``year`` (0 for none), by id, and their mean.

    One query: the departments, each joined to its rows of that year in the summary's rollup
    per department and year (one per stripe that wrote it, so a few dozen rows at any size);
    the mean is over departments, not employees.
    """
    rows = [
        DepartmentHires(*row)
        for row in Department.objects.annotate(
            in_year=FilteredRelation("hire_years", condition=Q(hire_years__year=year)),
            hired=Coalesce(Sum("in_year__hires"), 0),
        )
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
