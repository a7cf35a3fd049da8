"""The test suite's settings (pyproject.toml points pytest-django here): ``backend.settings`` as
a deployment reads it, with a key made for the run and cookies that a test client sends over
plain HTTP. The processes the tests start (commands, servers) read ``backend.settings``."""

from __future__ import annotations

import copy
import os
import secrets

# Without DEBUG, backend.settings refuses a missing or weak SECRET_KEY, and with no DATABASE_URL
# it would keep one in var/: the suite signs with a strong key of its own instead.
os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)

from backend.settings import *  # noqa: F403

SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False

# A second database, "replica", for tests/test_replica.py: a real one of its own (not a test
# mirror), so a test tells which database answered by what it holds. pytest-django creates it
# only for a test that names it (django_db(databases=[...])), and the router reads from it only
# where a test sets READ_REPLICA = "replica": no other test ever touches it.
_replica = copy.deepcopy(DATABASES["default"])  # noqa: F405
if _replica["ENGINE"] == "django.db.backends.sqlite3":
    _replica["NAME"] = str(VAR_DIR / "roster_replica.sqlite3")  # noqa: F405
    _replica["TEST"] = {"NAME": str(VAR_DIR / "test_roster_replica.sqlite3")}  # noqa: F405
else:
    _replica["NAME"] = f"{_replica['NAME']}_replica"  # its test database: test_<name>_replica
DATABASES["replica"] = _replica  # noqa: F405
READ_REPLICA = ""
