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

from backend import hire_summary
from backend.models import Department, HireCount, Job
from backend.replica import read_connection

MIN_YEAR, MAX_YEAR = MINYEAR, MAXYEAR  # 1 and 9999: every year a stored hire can have


class YearError(ValueError):
    """A year that is missing, not a number, or out of range."""


# The answers are plain (not frozen) dataclasses: a frozen one's __init__ goes through
# object.__setattr__ field by field, five times as slow, which a year of 2,000 rows felt.
@dataclass(slots=True)
class QuarterlyHires:
    """Hires for one job of one department in one year, by quarter."""

    department: str
    job: str
    q1: int
    q2: int
    q3: int
    q4: int


@dataclass(slots=True)
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


_YEAR_AND_NAMES = """
SELECT department_id, job_id, {quarters}, CAST(NULL AS TEXT) FROM {hire_counts} WHERE year = %s
UNION ALL SELECT id, NULL, {nothing}, {department} FROM {departments}
UNION ALL SELECT NULL, id, {nothing}, {job} FROM {jobs}
"""


def hires_by_quarter(*, year: int) -> list[QuarterlyHires]:
    """Hires per department and job in ``year``, split by quarter; only pairs with a hire,
    ordered by department, then job (names compared by code point, as Python and SQLite
    compare them, whatever the database's collation), then by ids.

    One statement, so one snapshot: the summary's rows of that year (one per pair and stripe
    that wrote it, with the quarters as columns), then every department's and job's name. The
    stripes are summed, the names matched and the pairs sorted here: the database took twice
    as long to aggregate, join and sort a year's 2,000 pairs by name as to hand them over
    (docs/benchmarks.md), and that part grows with the answer while the request's does not.
    """
    db = read_connection(HireCount)
    quote = db.ops.quote_name
    sql = _YEAR_AND_NAMES.format(
        quarters=", ".join(hire_summary.QUARTERS),
        nothing=", ".join("NULL" for _ in hire_summary.QUARTERS),
        hire_counts=quote(HireCount._meta.db_table),
        departments=quote(Department._meta.db_table),
        jobs=quote(Job._meta.db_table),
        department=quote("department"),
        job=quote("job"),
    )
    with db.cursor() as cursor:
        cursor.execute(sql, [year])
        rows = cursor.fetchall()
    pairs: dict[tuple[int, int], list[int]] = {}
    departments: dict[int, str] = {}
    jobs: dict[int, str] = {}
    for department_id, job_id, q1, q2, q3, q4, name in rows:
        if name is not None:  # a department's or a job's name
            if job_id is None:
                departments[department_id] = name
            else:
                jobs[job_id] = name
        elif (counts := pairs.get((department_id, job_id))) is None:
            pairs[(department_id, job_id)] = [q1, q2, q3, q4]
        else:  # another stripe's row of the pair
            counts[0] += q1
            counts[1] += q2
            counts[2] += q3
            counts[3] += q4
    named = sorted(
        (departments[department_id], jobs[job_id], department_id, job_id, counts)
        for (department_id, job_id), counts in pairs.items()
        if sum(counts) > 0
    )
    return [QuarterlyHires(department, job, *counts) for department, job, _, _, counts in named]


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
