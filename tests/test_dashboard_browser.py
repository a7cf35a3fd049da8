"""The dashboard in a real headless Chromium (the ``browser`` fixture, ``tests/conftest.py``)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from backend import metrics
from tests.conftest import csp_violations


@pytest.mark.django_db(transaction=True)
def test_dashboard_renders_charts_with_the_api_numbers(live_server, browser, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    from jobs.loading import load_sources
    from tests.conftest import SAMPLE_DIR

    load_sources([str(SAMPLE_DIR)])
    client = Client()
    client.force_login(User.objects.create_superuser("viewer", "v@example.com", "pw"))
    session = client.cookies[settings.SESSION_COOKIE_NAME].value

    browser.get(f"{live_server.url}/admin/login/")
    browser.add_cookie({"name": settings.SESSION_COOKIE_NAME, "value": session, "path": "/"})
    browser.get(f"{live_server.url}/dashboard/?year=2021")
    browser.save_screenshot(str(tmp_path / "dashboard.png"))

    assert browser.find_element(By.TAG_NAME, "h1").text == "Hires in 2021"
    assert (
        browser.find_element(By.CSS_SELECTOR, "#year-picker input[name=year]").get_attribute(
            "value"
        )
        == "2021"
    )

    quarterly = metrics.hires_by_quarter(year=2021)
    table = _cells(browser, "#hires-by-quarter tbody tr")
    assert table == [[r.department, r.job, str(r.q1), str(r.q2), str(r.q3), str(r.q4)]
                     for r in quarterly]  # fmt: skip

    departments = {r.department for r in quarterly}
    bars = _bars(browser, "#quarter-chart rect.bar")
    assert len(bars) == 4 * len(departments)
    assert sum(value for _, value, _ in bars) == sum(r.q1 + r.q2 + r.q3 + r.q4 for r in quarterly)
    assert all(height >= 0 for _, _, height in bars)

    per_department, mean = metrics.hires_per_department(year=2021)
    hired = browser.find_elements(By.CSS_SELECTOR, "#mean-chart rect.bar")
    assert [
        (b.get_attribute("data-department"), int(b.get_attribute("data-value"))) for b in hired
    ] == [(d.department, d.hired) for d in per_department]
    line = browser.find_element(By.CSS_SELECTOR, "#mean-chart line.mean")
    assert float(line.get_attribute("data-value")) == pytest.approx(mean)

    above = _cells(browser, "#departments-above-mean tbody tr")
    assert above == [[str(d.id), d.department, str(d.hired)]
                     for d in metrics.departments_above_mean(year=2021)]  # fmt: skip

    # The Content-Security-Policy blocks nothing on the page: its nonce'd stylesheet applies.
    assert csp_violations(browser) == []
    style = "return getComputedStyle(document.querySelector(arguments[0])).borderCollapse;"
    assert browser.execute_script(style, "#hires-by-quarter") == "collapse"


def _cells(browser, rows: str) -> list[list[str]]:
    """Every cell's text in one round trip (one WebDriver call per cell is far too slow)."""
    script = (
        "return [...document.querySelectorAll(arguments[0])]"
        ".map(row => [...row.cells].map(cell => cell.textContent.trim()));"
    )
    return browser.execute_script(script, rows)


def _bars(browser, selector: str) -> list[tuple[str, int, float]]:
    script = (
        "return [...document.querySelectorAll(arguments[0])].map(bar => "
        "[bar.dataset.department, Number(bar.dataset.value), bar.height.baseVal.value]);"
    )
    return [
        (name, int(value), height)
        for name, value, height in browser.execute_script(script, selector)
    ]
