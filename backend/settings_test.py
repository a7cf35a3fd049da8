"""The test suite's settings (pyproject.toml points pytest-django here): ``backend.settings`` as
a deployment reads it, with a key made for the run and cookies that a test client sends over
plain HTTP. The processes the tests start (commands, servers) read ``backend.settings``."""

from __future__ import annotations

import os
import secrets

# Without DEBUG, backend.settings refuses a missing or weak SECRET_KEY, and with no DATABASE_URL
# it would keep one in var/: the suite signs with a strong key of its own instead.
os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)

from backend.settings import *  # noqa: F403

SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
