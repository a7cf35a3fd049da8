"""Django settings. Everything that differs between machines comes from the environment: the
README's "Settings" table lists every variable, its default and its meaning (tests/test_docs.py
checks that none is missing). The test suite reads ``backend.settings_test``, which imports these.
"""

from __future__ import annotations

import os
import re
import secrets
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("ROSTER_VAR_DIR", BASE_DIR / "var"))


def _flag(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def _list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = _flag("DEBUG")


def weak_secret_key(key: str) -> str | None:
    """Why ``key`` is too weak to sign sessions in production, or ``None``: Django's own rule
    (security.W009), which also refuses the README's placeholder and startproject's key."""
    if key.startswith("django-insecure-"):
        return "is a django-insecure- development key"
    if len(key) < 50:
        return f"has {len(key)} characters; it needs at least 50"
    if len(set(key)) < 5:
        return f"has {len(set(key))} different characters; it needs at least 5"
    return None


def _kept_secret_key(path: Path) -> str:
    """The embedded default's key: generated on first use into ``var/`` (mode 0600) and read
    back after, so sessions and tokens' pages survive a restart on a developer's machine."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # made earlier, or by a process starting at the same moment
            key = path.read_text(encoding="ascii").strip()
            if key:
                return key
            raise ImproperlyConfigured(f"{path} is empty: delete it, or set SECRET_KEY") from None
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            key = secrets.token_urlsafe(50)
            file.write(key + "\n")
        return key
    except OSError as error:
        raise ImproperlyConfigured(
            f"cannot keep a generated SECRET_KEY in {path} ({error.strerror}); set SECRET_KEY"
        ) from None


SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not (SECRET_KEY or DEBUG or os.environ.get("DATABASE_URL")):
    # the embedded default (SQLite in var/) on a developer's machine: no key to set by hand
    SECRET_KEY = _kept_secret_key(VAR_DIR / "secret_key")
if not DEBUG:
    if not SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")  # a deployment
    if weakness := weak_secret_key(SECRET_KEY):
        raise ImproperlyConfigured(
            f"SECRET_KEY {weakness} (DEBUG is off); generate one with: python -c "
            "'import secrets; print(secrets.token_urlsafe(50))'"
        )
if not SECRET_KEY:
    SECRET_KEY = secrets.token_urlsafe(50)

ALLOWED_HOSTS = _list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = _list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "backend",
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "backend.csp.ContentSecurityPolicyMiddleware",
    "backend.middleware.RequestSizeLimitMiddleware",
    "backend.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "backend.urls"
WSGI_APPLICATION = "backend.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database --------------------------------------------------------------------------------


def _database(url: str, *, sqlite_test_file: str) -> dj_database_url.DBConfig:
    """A database from its URL, with Roster's rules for its engine: the primary and the read
    replica are configured alike."""
    database = dj_database_url.parse(
        url, conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")), conn_health_checks=True
    )
    if database["ENGINE"] == "django.db.backends.postgresql":
        # A server that does not answer fails the request in seconds (a 503) instead of
        # hanging it. ?connect_timeout=N in the URL overrides it.
        database.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    if database["ENGINE"] == "django.db.backends.sqlite3":
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        database["CONN_MAX_AGE"] = 0
        database["OPTIONS"] = {
            # Writers take the lock when their transaction starts, so two writers queue instead
            # of failing with "database is locked" half-way through a batch.
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        # Tests use a file (not :memory:) so that concurrent threads share one real database.
        database["TEST"] = {"NAME": str(VAR_DIR / sqlite_test_file)}
    return database


DATABASES = {
    "default": _database(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'roster.sqlite3'}",
        sqlite_test_file="test_roster.sqlite3",
    )
}
# The alias GraphQL queries and REST GETs read the data tables from (backend/replica.py); empty
# without DATABASE_REPLICA_URL, and then every read goes to default.
READ_REPLICA = ""
if replica_url := os.environ.get("DATABASE_REPLICA_URL"):
    READ_REPLICA = "replica"
    DATABASES[READ_REPLICA] = _database(replica_url, sqlite_test_file="test_roster_replica.sqlite3")
    if DATABASES[READ_REPLICA]["ENGINE"] != DATABASES["default"]["ENGINE"]:
        raise ImproperlyConfigured(
            "DATABASE_REPLICA_URL must name a database of the same engine as DATABASE_URL "
            "(a replica of it)"
        )
DATABASE_ROUTERS = ["backend.replica.ReplicaRouter"]
# Through RDS Proxy (lambdas/template.yaml) no password is kept anywhere: each new connection,
# to the primary or the replica, signs in with a fresh IAM token, over TLS
# (backend/db/postgresql_iam).
DATABASE_IAM_AUTH = _flag("DATABASE_IAM_AUTH")
if DATABASE_IAM_AUTH:
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_IAM_AUTH needs a postgres:// DATABASE_URL.")
    for database in DATABASES.values():
        database["ENGINE"] = "backend.db.postgresql_iam"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- i18n, time ------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

LOGIN_URL = "admin:login"

# --- static files: WhiteNoise serves them (the admin's, GraphiQL's), DEBUG on or off ---------
STATIC_URL = "static/"
# Straight from the apps' static/ folders: no collectstatic step, no web server for /static/.
WHITENOISE_USE_FINDERS = True
# Only for ``collectstatic``, to hand the files to a proxy or a CDN. WhiteNoise looks there
# too, and warns at each start that the folder is missing when nobody collected: not a fault.
STATIC_ROOT = VAR_DIR / "static"
warnings.filterwarnings("ignore", message=f"No directory at: {re.escape(str(STATIC_ROOT))}")

# --- backups: an S3 bucket when BACKUP_BUCKET is set, else a local folder -------------------
BACKUP_BUCKET = os.environ.get("BACKUP_BUCKET", "")
BACKUP_DIR = Path(os.environ.get("BACKUP_DIR", VAR_DIR / "backups"))
BACKUP_KEEP = int(os.environ.get("BACKUP_KEEP", "0"))
if BACKUP_KEEP < 0:
    raise ImproperlyConfigured(f"BACKUP_KEEP must be 0 (keep every backup) or more: {BACKUP_KEEP}")
AWS_ENDPOINT_URL = os.environ.get("AWS_ENDPOINT_URL") or None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "backups": (
        {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BACKUP_BUCKET,
                "endpoint_url": AWS_ENDPOINT_URL,
                "file_overwrite": False,
                "default_acl": None,
            },
        }
        if BACKUP_BUCKET
        else {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(BACKUP_DIR)},
        }
    ),
}

# --- limits ----------------------------------------------------------------------------------
MAX_REQUEST_BYTES = int(os.environ.get("MAX_REQUEST_BYTES", str(4 * 1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
GRAPHQL_MAX_DEPTH = int(os.environ.get("GRAPHQL_MAX_DEPTH", "8"))
GRAPHQL_MAX_ALIASES = int(os.environ.get("GRAPHQL_MAX_ALIASES", "15"))
# A 1000-row batch written inline (no variables) is about 22,000 tokens.
GRAPHQL_MAX_TOKENS = int(os.environ.get("GRAPHQL_MAX_TOKENS", "30000"))
# Rows an operation may read, estimated before it runs (graph/limits.py): a 1000-row page of
# hired employees with their department and job is about 3,000; fifteen of them pass.
GRAPHQL_MAX_COST = int(os.environ.get("GRAPHQL_MAX_COST", "50000"))
# The longest any one SQL statement of an API request may run (0: no limit). PostgreSQL cancels
# it (statement_timeout); on SQLite a progress handler interrupts it.
STATEMENT_TIMEOUT_MS = int(os.environ.get("STATEMENT_TIMEOUT_MS", "10000"))

# Seconds a worker keeps a token it looked up (backend/auth.py): a token deleted by another
# process is refused at most this long after; one deleted through Roster, at once. 0: never kept.
TOKEN_CACHE_SECONDS = float(os.environ.get("TOKEN_CACHE_SECONDS", "5"))
if not 0 <= TOKEN_CACHE_SECONDS <= 60:
    raise ImproperlyConfigured(
        f"TOKEN_CACHE_SECONDS must be from 0 to 60 seconds: {TOKEN_CACHE_SECONDS:g}"
    )

# --- logging: one JSON object per line -------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["stderr"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "strawberry.execution": {"level": "ERROR" if not DEBUG else "DEBUG"},
    },
}

# --- security: HTTPS behind a TLS proxy, cookies, CSP (backend/csp.py) ----------------------
if not DEBUG:
    SESSION_COOKIE_SECURE = _flag("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = _flag("SECURE_COOKIES", True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
# Off by default: turn them on where every client reaches Roster over HTTPS.
SECURE_SSL_REDIRECT = _flag("SECURE_SSL_REDIRECT")
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = _flag("SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = _flag("SECURE_HSTS_PRELOAD")
# A load balancer's health checks may use plain HTTP: the probes answer there too.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# "HTTP_X_FORWARDED_PROTO,https": the header a TLS-terminating proxy sets, and its value for
# HTTPS. Set it only behind a proxy that always sets (or strips) that header.
_proxy_ssl_header = _list("SECURE_PROXY_SSL_HEADER", "")
if _proxy_ssl_header and len(_proxy_ssl_header) != 2:
    raise ImproperlyConfigured(
        "SECURE_PROXY_SSL_HEADER must be 'HEADER,value', e.g. HTTP_X_FORWARDED_PROTO,https."
    )
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header) or None
