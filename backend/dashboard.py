"""``/dashboard/?year=2021``: the metrics as a page, charts drawn as SVG on the server.

No JavaScript and no CDN, so the page works offline. It shows the same numbers as the API:
both come from ``backend.metrics``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from backend import metrics
from backend.auth import AccessDenied, require_principal, require_scope
from backend.models import HiredEmployee, Scope

WIDTH, HEIGHT, MARGIN = 960, 320, 40
QUARTER_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759")


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str
    group: str
    series: str
    colour: str


@require_GET
def view(request: HttpRequest) -> HttpResponse:
    try:
        require_scope(require_principal(request), Scope.READ)
    except AccessDenied as denied:
        if denied.status == 401 and "Authorization" not in request.headers:
            return redirect_to_login(request.get_full_path())
        return HttpResponse(denied.message, status=denied.status, content_type="text/plain")
    years = [d.year for d in HiredEmployee.objects.datetimes("datetime", "year", tzinfo=UTC)]
    picker = {"years": years, "min_year": metrics.MIN_YEAR, "max_year": metrics.MAX_YEAR}
    try:
        year = metrics.parse_year(request.GET.get("year") or default_year(years))
    except metrics.YearError as error:
        return render(request, "roster/dashboard.html", {"error": str(error), **picker}, status=400)
    quarterly = metrics.hires_by_quarter(year=year)
    departments, mean = metrics.hires_per_department(year=year)
    return render(
        request,
        "roster/dashboard.html",
        {
            **picker,
            "year": year,
            "quarterly": quarterly,
            "above_mean": metrics.departments_above_mean(year=year),
            "quarter_bars": _quarter_bars(quarterly),
            "department_bars": _department_bars(departments),
            "mean": mean,
            "mean_y": _scale_y(mean, max([d.hired for d in departments] + [mean, 1])),
            "width": WIDTH,
            "height": HEIGHT,
            "margin": MARGIN,
            "colours": list(zip(("Q1", "Q2", "Q3", "Q4"), QUARTER_COLOURS, strict=True)),
        },
    )


def default_year(years: list[int]) -> int:
    """The year shown when none is asked for: the latest year with hires up to this one, so a
    single hire dated 9999 does not hide the present; else the first year with hires (all are
    in the future); else this year. Always a valid year."""
    this_year = timezone.now().year
    past = [year for year in years if year <= this_year]
    return past[-1] if past else years[0] if years else this_year


def _scale_y(value: float, top: float) -> float:
    return HEIGHT - MARGIN - (HEIGHT - 2 * MARGIN) * value / top


def _quarter_bars(rows: list[metrics.QuarterlyHires]) -> list[Bar]:
    """Hires per quarter by department: four bars per department."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in rows:
        for i, count in enumerate((row.q1, row.q2, row.q3, row.q4)):
            totals[row.department][i] += count
    top = max([max(q) for q in totals.values()] + [1])
    slot = (WIDTH - 2 * MARGIN) / max(len(totals), 1)
    width = slot * 0.8 / 4
    bars = []
    for n, (department, quarters) in enumerate(totals.items()):
        for q, count in enumerate(quarters):
            y = _scale_y(count, top)
            x = MARGIN + n * slot + slot * 0.1 + q * width
            bars.append(Bar(x, y, width, HEIGHT - MARGIN - y, count, f"{department} Q{q + 1}",
                            department, f"Q{q + 1}", QUARTER_COLOURS[q]))  # fmt: skip
    return bars


def _department_bars(departments: list[metrics.DepartmentHires]) -> list[Bar]:
    """Each department's hires, one bar each, on the same scale as the mean line."""
    top = max([d.hired for d in departments] + [sum(d.hired for d in departments) /
              max(len(departments), 1), 1])  # fmt: skip
    slot = (WIDTH - 2 * MARGIN) / max(len(departments), 1)
    bars = []
    for n, row in enumerate(departments):
        y = _scale_y(row.hired, top)
        bars.append(Bar(MARGIN + n * slot + slot * 0.15, y, slot * 0.7, HEIGHT - MARGIN - y,
                        row.hired, row.department, row.department, "hired", "#76b7b2"))  # fmt: skip
    return bars
