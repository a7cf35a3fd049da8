"""GraphiQL in a real headless Chromium (the ``browser`` fixture, ``tests/conftest.py``): a
shared link runs its query with its token, from Roster's own files only."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from backend.auth import create_token
from backend.models import Department

RESULT = (
    "const editor = document.querySelector('.result-window .CodeMirror');"
    "return editor ? editor.CodeMirror.getValue() : '';"
)
SET_QUERY = (
    "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"
    ".setValue(arguments[0]);"
)
LOADED = "return performance.getEntriesByType('resource').map(entry => entry.name);"


@pytest.mark.django_db(transaction=True)
def test_a_shared_link_runs_its_query_with_its_token_and_nothing_from_another_origin(
    live_server, browser
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    Department.objects.create(id=7, department="Offline Research")
    Department.objects.create(id=9, department="Air-gapped Ops")
    token = create_token(name="graphiql", scope="read")
    query = "{ departments(first: 5) { totalCount nodes { id department } } }"
    headers = json.dumps({"Authorization": f"Bearer {token}"})
    link = f"{live_server.url}/graphql?{urlencode({'q': query, 'headers': headers})}"

    browser.get(link)
    assert _run(browser) == {
        "data": {
            "departments": {
                "totalCount": 2,
                "nodes": [
                    {"id": 7, "department": "Offline Research"},
                    {"id": 9, "department": "Air-gapped Ops"},
                ],
            }
        }
    }
    # The editors show the link's query and header.
    assert _editor(browser, ".graphiql-query-editor") == query
    assert json.loads(_editor(browser, "[aria-label=Headers] .graphiql-editor:not(.hidden)")) == {
        "Authorization": f"Bearer {token}"
    }

    # Editing the query updates the link, which keeps the header.
    edited = "{ jobs { totalCount } }"
    browser.execute_script(SET_QUERY, edited)
    WebDriverWait(browser, 10).until(lambda b: _link_parameters(b).get("q") == [edited])
    assert _link_parameters(browser) == {"q": [edited], "headers": [headers]}

    # Every file came from Roster (the vendored GraphiQL, React and explorer plugin, our boot
    # script), and nothing was refused by the page's policy or failed to load.
    loaded = browser.execute_script(LOADED)
    paths = {urlsplit(name).path for name in loaded}
    assert [name for name in loaded if not name.startswith(f"{live_server.url}/")] == []
    assert {
        "/static/graphiql/react.production.min.js",
        "/static/graphiql/react-dom.production.min.js",
        "/static/graphiql/graphiql.min.js",
        "/static/graphiql/graphiql.min.css",
        "/static/graphiql/plugin-explorer.umd.js",
        "/static/graphiql/plugin-explorer.css",
        "/static/roster/graphiql.js",
        "/graphql",  # the schema's introspection and the query
    } <= paths
    assert _console_errors(browser) == []


@pytest.mark.django_db(transaction=True)
def test_a_logged_in_admin_runs_the_default_query_with_no_token(live_server, browser) -> None:
    """The page sends Django's CSRF token, which a session's POST needs; the URL stays plain."""
    Department.objects.create(id=3, department="Offline Research")
    client = Client()
    client.force_login(User.objects.create_superuser("viewer", "v@example.com", "pw"))
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    # set through DevTools: WebDriver's add_cookie needs a page of the site open first, whose
    # console would then be this test's too
    cookie = {"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}
    browser.execute_cdp_cmd("Network.setCookie", cookie)

    browser.get(f"{live_server.url}/graphql")
    assert _run(browser) == {
        "data": {
            "departments": {
                "totalCount": 1,
                "nodes": [{"id": 3, "department": "Offline Research"}],
            }
        }
    }
    assert browser.current_url == f"{live_server.url}/graphql"
    assert _console_errors(browser) == []


def _run(browser: Any) -> Any:
    """Click GraphiQL's run button once it can be clicked, and read the answer it shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    run = wait.until(
        expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, ".graphiql-execute-button"))
    )
    run.click()
    return json.loads(wait.until(lambda b: b.execute_script(RESULT)))


def _editor(browser: Any, selector: str) -> str:
    script = "return document.querySelector(arguments[0] + ' .CodeMirror').CodeMirror.getValue();"
    return browser.execute_script(script, selector)


def _link_parameters(browser: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(browser.current_url).query)


def _console_errors(browser: Any) -> list[str]:
    """Console errors (a refused script or style, a failed load) and CSP reports of any level."""
    return [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" or "Content Security Policy" in entry["message"]
    ]
