"""Deployment settings: ``check --deploy`` clean behind TLS, weak secret keys refused, HTTPS
redirects that spare the probes, and a Content-Security-Policy on every HTML page."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

ROOT = Path(django_settings.BASE_DIR)
STRONG_KEY = "k3y-" + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
BEHIND_TLS = {
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
}
_OURS = ("SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "DATABASE_URL", "ROSTER_VAR_DIR", *BEHIND_TLS)


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python manage.py ARGS`` as production runs it: DEBUG off, a strong key, SQLite in
    ``tmp_path``, and ``env`` on top (none of this process's security settings leak in)."""
    child = {name: value for name, value in os.environ.items() if name not in _OURS}
    defaults = {
        "DEBUG": "0",
        "SECRET_KEY": STRONG_KEY,
        "ALLOWED_HOSTS": "roster.example.com",
        "ROSTER_VAR_DIR": str(tmp_path),
        "LOG_LEVEL": "ERROR",
    }
    child.update({**defaults, **env})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=child,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- check --deploy --------------------------------------------------------------------------


def test_check_deploy_is_clean_behind_tls(tmp_path: Path) -> None:
    ran = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **BEHIND_TLS)
    assert (ran.returncode, ran.stdout, ran.stderr) == (
        0,
        "System check identified no issues (0 silenced).\n",
        "",
    )


def test_check_deploy_without_the_tls_settings_warns_about_hsts_and_the_redirect(
    tmp_path: Path,
) -> None:
    ran = manage(tmp_path, "check", "--deploy")
    assert ran.returncode == 0
    assert re.findall(r"\(security\.(W\d+)\)", ran.stderr) == ["W004", "W008"]


def test_the_tls_settings_come_from_the_environment(tmp_path: Path) -> None:
    show = (
        "from django.conf import settings as s; print(s.SECURE_HSTS_SECONDS, "
        "s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, s.SECURE_SSL_REDIRECT, "
        "s.SECURE_PROXY_SSL_HEADER, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
    )
    on = manage(tmp_path, "shell", "--no-imports", "-c", show, **BEHIND_TLS)
    assert on.stdout == "31536000 True True True ('HTTP_X_FORWARDED_PROTO', 'https') True True\n"
    off = manage(tmp_path, "shell", "--no-imports", "-c", show)
    assert off.stdout == "0 False False False None True True\n"


def test_secure_cookies_off_lets_cookies_travel_over_plain_http(tmp_path: Path) -> None:
    show = (
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
    )
    ran = manage(tmp_path, "shell", "--no-imports", "-c", show, SECURE_COOKIES="0")
    assert (ran.returncode, ran.stdout) == (0, "False False\n")


def test_the_suite_reads_the_test_settings_and_what_it_starts_the_deployed_ones(
    tmp_path: Path,
) -> None:
    """pytest-django loads backend.settings_test (pyproject.toml); a command or a server that a
    test starts reads backend.settings, as it does when deployed (tests/conftest.py)."""
    here = (django_settings.SETTINGS_MODULE, django_settings.SESSION_COOKIE_SECURE)
    assert here == ("backend.settings_test", False)
    show = (
        "from django.conf import settings as s; print(s.SETTINGS_MODULE, s.SESSION_COOKIE_SECURE)"
    )
    ran = manage(tmp_path, "shell", "--no-imports", "-c", show)
    assert (ran.returncode, ran.stdout) == (0, "backend.settings True\n")


def test_a_malformed_proxy_ssl_header_is_refused_in_one_line(tmp_path: Path) -> None:
    ran = manage(tmp_path, "check", SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO")
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines() == [
        "error: SECURE_PROXY_SSL_HEADER must be 'HEADER,value', e.g. HTTP_X_FORWARDED_PROTO,https."
    ]


# --- SECRET_KEY ------------------------------------------------------------------------------

HOW = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("bench", "has 5 characters; it needs at least 50"),
        ("test-only-secret", "has 16 characters; it needs at least 50"),
        ("…", "has 1 characters; it needs at least 50"),
        ("x" * 50, "has 1 different characters; it needs at least 5"),
        ("abcd" * 20, "has 4 different characters; it needs at least 5"),
        ("django-insecure-" + secrets.token_urlsafe(50), "is a django-insecure- development key"),
    ],
    ids=["short", "test-only-secret", "readme-placeholder", "one-char", "four-chars", "insecure"],
)
def test_a_weak_secret_key_is_refused_when_debug_is_off(tmp_path: Path, key: str, why: str) -> None:
    ran = manage(tmp_path, "check", SECRET_KEY=key)
    assert ran.returncode == 1
    assert ran.stdout == ""
    assert ran.stderr.strip().splitlines() == [f"error: SECRET_KEY {why} (DEBUG is off); {HOW}"]
    assert key not in ran.stderr  # the key itself is never printed


def test_a_weak_secret_key_is_fine_with_debug_on_and_a_strong_one_always(tmp_path: Path) -> None:
    assert manage(tmp_path, "check", SECRET_KEY="bench", DEBUG="1").returncode == 0
    strong = manage(tmp_path, "check", SECRET_KEY=secrets.token_urlsafe(50))
    assert (strong.returncode, strong.stderr) == (0, "")


def test_a_missing_secret_key_is_still_refused_where_a_database_is_configured(
    tmp_path: Path,
) -> None:
    database = f"sqlite:///{tmp_path / 'deployed.sqlite3'}"
    ran = manage(tmp_path, "check", SECRET_KEY="", DATABASE_URL=database)
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines() == ["error: SECRET_KEY must be set when DEBUG is off."]
    assert not (tmp_path / "secret_key").exists()


def test_the_embedded_default_keeps_a_generated_key_in_var(tmp_path: Path) -> None:
    """A developer's first run (no DEBUG, no DATABASE_URL, no SECRET_KEY) needs no key by hand:
    one is generated into var/secret_key, private, and the next run reads the same one."""
    show = ["shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)"]
    first = manage(tmp_path, *show, SECRET_KEY="")
    second = manage(tmp_path, *show, SECRET_KEY="")

    kept = tmp_path / "secret_key"
    assert (first.returncode, second.returncode) == (0, 0), first.stderr
    key = kept.read_text().strip()
    assert first.stdout.split()[-1] == second.stdout.split()[-1] == key
    assert len(key) >= 50
    assert kept.stat().st_mode & 0o777 == 0o600


def test_an_unwritable_var_folder_for_the_key_is_one_line(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    ran = manage(tmp_path, "check", SECRET_KEY="", ROSTER_VAR_DIR=str(blocked))
    assert ran.returncode == 1
    (line,) = ran.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot keep a generated SECRET_KEY in {blocked}/secret_key (")


# --- HTTPS redirects -------------------------------------------------------------------------


@pytest.fixture
def behind_tls(settings) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def test_behind_tls_plain_http_is_redirected_but_the_probes_answer(db, behind_tls) -> None:
    client = Client()  # built after the settings: its middleware reads them
    redirected = client.get("/dashboard/?year=2021")
    assert redirected.status_code == 301
    assert redirected["Location"] == "https://testserver/dashboard/?year=2021"
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200

    over_tls = client.get("/admin/login/", headers={"X-Forwarded-Proto": "https"})
    assert over_tls.status_code == 200
    assert over_tls["Strict-Transport-Security"] == "max-age=3600"


# --- Content-Security-Policy -----------------------------------------------------------------


def directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    parsed = {}
    for directive in policy.split(";"):
        name, *values = directive.split()
        parsed[name] = values
    return parsed


LOCKED_DOWN = {
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}


def page_policy(nonce: str) -> dict[str, list[str]]:
    return {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", f"'nonce-{nonce}'"],
        "img-src": ["'self'", "data:"],
        **LOCKED_DOWN,
    }


def style_nonce(page: str) -> str:
    (nonce,) = re.findall(r'<style nonce="([^"]+)">', page)
    return nonce


@pytest.fixture
def read_token(db: None) -> str:
    from backend.auth import create_token

    return create_token(name="csp", scope="read")


def test_the_dashboard_has_a_strict_policy_and_a_fresh_nonce(client: Client, read_token) -> None:
    auth = {"Authorization": f"Bearer {read_token}"}
    first = client.get("/dashboard/?year=2021", headers=auth)
    second = client.get("/dashboard/?year=nope", headers=auth)  # the 400 page too
    assert (first.status_code, second.status_code) == (200, 400)
    nonces = []
    for response in (first, second):
        page = response.content.decode()
        nonce = style_nonce(page)
        assert directives(response) == page_policy(nonce)
        # Nothing the policy would block: no inline script, no style attribute.
        assert "<script" not in page
        assert "style=" not in page
        nonces.append(nonce)
    assert nonces[0] != nonces[1]
    assert len(nonces[0]) >= 16


def test_the_admin_login_has_the_page_policy(client: Client, db) -> None:
    response = client.get("/admin/login/")
    assert response.status_code == 200
    policy = directives(response)
    nonce = policy["style-src"][1].removeprefix("'nonce-").removesuffix("'")
    assert policy == page_policy(nonce)
    page = response.content.decode()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []  # every script is a file
    assert "style=" not in page


def test_graphiql_loads_only_roster_files_and_has_the_page_policy_with_data_fonts(
    client: Client, db
) -> None:
    response = client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    page = response.content.decode()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []  # every script is a file
    assert "style=" not in page
    loaded = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert [url for url in loaded if not url.startswith("/static/")] == ["data:,"]  # the icon
    nonce = style_nonce(page)
    assert directives(response) == {**page_policy(nonce), "font-src": ["'self'", "data:"]}
    assert "http" not in response["Content-Security-Policy"]  # no other origin


def test_json_and_csv_answers_carry_no_policy(client: Client, read_token) -> None:
    auth = {"Authorization": f"Bearer {read_token}"}
    answers = [
        client.post(
            "/graphql",
            data='{"query": "{ jobs { totalCount } }"}',
            content_type="application/json",
            headers=auth,
        ),
        client.get("/graphql", {"query": "{ jobs { totalCount } }"}, headers=auth),
        client.post("/graphql", data="{}", content_type="application/json"),  # 401
        client.get("/api/metrics/hires-by-quarter?year=2021", headers=auth),
        client.get("/api/metrics/hires-by-quarter?year=2021&format=csv", headers=auth),
        client.get("/api/employees/jobs", headers=auth),
        client.get("/healthz"),
    ]
    assert [a.status_code for a in answers] == [200, 200, 401, 200, 200, 200, 200]
    for answer in answers:
        assert not answer["Content-Type"].startswith("text/html")
        assert "Content-Security-Policy" not in answer


def test_djangos_debug_pages_keep_working_without_a_policy(client: Client, db, settings) -> None:
    settings.DEBUG = True
    missing = client.get("/no-such-page/")
    assert missing.status_code == 404
    assert "<style" in missing.content.decode()  # the technical 404 page, styled inline
    assert "Content-Security-Policy" not in missing
    assert "Content-Security-Policy" in client.get("/admin/login/")
