"""Every command ends an operator error or fault with one ``error: …`` line and a non-zero exit.

The commands run as real ``manage.py`` processes against the test database, real full and
read-only file systems (tmpfs), a real unreachable database and real S3 servers (moto). The
wording of the line comes from ``jobs.faults.describe``, tested last on its own.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from django.conf import settings
from django.core.management import call_command, load_command_class
from django.db import InterfaceError, OperationalError, ProgrammingError, connection
from django.test import override_settings

from backend.models import ApiToken, Batch, Department, LoadRun
from jobs.backups import list_backups
from jobs.faults import describe, one_line
from jobs.loading import load_sources
from jobs.management.base import JobCommand
from tests.conftest import SAMPLE_DIR

ROOT = Path(settings.BASE_DIR)
NOWHERE = "postgres://postgres@127.0.0.1:1/roster"  # a port where nothing listens


# --- running manage.py -----------------------------------------------------------------------


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stderr.splitlines()

    @property
    def error(self) -> str:
        """The one ``error:`` line, without its prefix, after checking it is the whole story:
        the last line of stderr, no traceback, every other line a JSON log line, one of them
        the failure at ERROR with its traceback inside."""
        assert self.returncode != 0, self.stderr
        assert self.lines, "nothing on stderr"
        assert self.lines[-1].startswith("error: "), self.stderr
        assert not any(line.startswith("Traceback") for line in self.lines), self.stderr
        logs = [json.loads(line) for line in self.lines[:-1]]
        failures = [log for log in logs if log["logger"] == "roster.commands"]
        assert len(failures) == 1, self.stderr
        assert failures[0]["level"] == "ERROR"
        assert "Traceback (most recent call last)" in failures[0]["exc_info"]
        assert self.stdout == ""
        return self.lines[-1].removeprefix("error: ")


def child_database_url() -> str:
    """The URL of the database this test runs on, for a child process."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


TEST_SECRET_KEY = secrets.token_urlsafe(50)


def child_env(env: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """This process's environment less ``drop``, on the test database, DEBUG off, and ``env``."""
    return {
        **{name: value for name, value in os.environ.items() if name not in drop},
        "DATABASE_URL": child_database_url(),
        "SECRET_KEY": TEST_SECRET_KEY,
        "DEBUG": "0",
        "LOG_LEVEL": "INFO",
        "AWS_MAX_ATTEMPTS": "1",
        **(env or {}),
    }


def manage(
    *args: str,
    env: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
    prefix: tuple[str, ...] = (),
) -> Ran:
    """``python manage.py ARGS`` in a child process (``prefix`` runs it through a wrapper)."""
    done = subprocess.run(
        [*prefix, sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=child_env(env, drop),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A real tmpfs file system mounted at ``path`` (``size=64k``, ``ro``...), for the test."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


# --- the backup storage: full, read-only, not a folder, forbidden ----------------------------


@pytest.mark.django_db(transaction=True)
def test_backup_to_a_full_disk_is_one_line(tmp_path: Path) -> None:
    load_sources([str(SAMPLE_DIR)])
    with tmpfs(tmp_path / "full", "size=64k") as full:
        ran = manage("backup", "--codec", "null", env={"BACKUP_DIR": str(full)})

    assert "no space left on device" in ran.error.lower()
    assert ran.returncode == 1


@pytest.mark.django_db(transaction=True)
def test_backup_to_a_read_only_file_system_is_one_line(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "size=1m,ro") as read_only:
        ran = manage("backup", "jobs", env={"BACKUP_DIR": str(read_only / "backups")})

    assert "read-only file system" in ran.error.lower()
    assert ran.returncode == 1


@pytest.mark.django_db(transaction=True)
def test_backup_into_a_folder_without_write_permission_is_one_line(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    # As root, permissions bind only without CAP_DAC_OVERRIDE: the child runs without it.
    no_override = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")

    ran = manage("backup", "jobs", env={"BACKUP_DIR": str(locked)}, prefix=no_override)

    assert "permission denied" in ran.error.lower()


@pytest.mark.django_db(transaction=True)
def test_a_backup_folder_under_a_regular_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("not a folder")

    ran = manage("backup", "jobs", env={"BACKUP_DIR": str(tmp_path / "plain" / "backups")})

    assert "not a directory" in ran.error.lower()


def test_dictionary_docs_into_a_forbidden_folder_names_the_path(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    no_override = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")

    ran = manage("dictionary_docs", "--output", str(locked / "dictionary.md"), prefix=no_override)

    assert ran.error == f"permission denied: {locked / 'dictionary.md'}"


# --- the database ----------------------------------------------------------------------------


def test_load_csv_with_the_database_unreachable_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-folder").mkdir()

    server = manage("load_csv", str(SAMPLE_DIR), env={"DATABASE_URL": NOWHERE})
    file = manage(
        "load_csv", str(SAMPLE_DIR), env={"DATABASE_URL": f"sqlite:///{tmp_path}/a-folder"}
    )

    assert server.error == (
        'the database is unreachable: connection to server at "127.0.0.1", port 1 failed: '
        "Connection refused"
    )
    assert file.error == "the database is unreachable: unable to open database file"
    assert (server.returncode, file.returncode) == (1, 1)


def test_load_csv_into_a_database_never_migrated_is_one_line(tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path}/empty.sqlite3"

    ran = manage("load_csv", str(SAMPLE_DIR), env={"DATABASE_URL": empty})

    assert ran.error.startswith("the database is not set up (no such table: ")
    assert ran.error.endswith("): run python manage.py migrate")


@pytest.mark.django_db(transaction=True)
def test_load_csv_when_the_database_fails_midway_is_one_line(tmp_path: Path) -> None:
    """PostgreSQL: the connection drops while chunks commit, as in a server restart (the
    child talks through a TCP proxy that the test cuts). SQLite, which has no server: the
    database file fills its disk midway (the child's copy of it lives on a small tmpfs)."""
    for name in ("departments", "jobs"):
        load_sources([str(SAMPLE_DIR / f"{name}.csv")])
    path = tmp_path / "hired_employees.csv"
    with path.open("w") as out:
        out.writelines(f"{i},Employee {i},2021-07-27T16:02:08Z,1,1\n" for i in range(1, 200_001))
    command = ("load_csv", str(path), "--chunk-size", "500")

    if connection.vendor == "postgresql":
        with _DatabaseProxy() as proxy:
            child = subprocess.Popen(
                [sys.executable, "manage.py", *command],
                cwd=ROOT,
                env=child_env({"DATABASE_URL": proxy.url}),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            _wait_for_committed_lines(1000, child)
            proxy.cut()
            stdout, stderr = child.communicate(timeout=120)
        ran = Ran(child.returncode, stdout, stderr)
        assert ran.error.startswith(
            ("the database is unreachable: ", "the database connection was lost: ")
        )
    else:
        with tmpfs(tmp_path / "small", "size=3m") as small:
            copy = small / "roster.sqlite3"
            with contextlib.closing(sqlite3.connect(connection.settings_dict["NAME"])) as source:
                source.execute("VACUUM INTO ?", [str(copy)])  # compact: the tables, two loaded
            ran = manage(*command, env={"DATABASE_URL": f"sqlite:///{copy}"})
        assert ran.error == "the database's disk is full: database or disk is full"
    assert ran.returncode == 1


def _wait_for_committed_lines(lines: int, child: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = LoadRun.objects.filter(table="hired_employees").first()
        if run is not None and run.last_line >= lines:
            return
        assert child.poll() is None, child.communicate()
        time.sleep(0.02)
    raise AssertionError(f"the load did not commit {lines} lines in 60 s")


class _DatabaseProxy:
    """A TCP proxy to the test's PostgreSQL server; ``cut()`` drops every connection through
    it and stops listening, as a restarting server does."""

    def __init__(self) -> None:
        db = connection.settings_dict
        self.upstream = (db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
        self.listener = socket.create_server(("127.0.0.1", 0))
        port = self.listener.getsockname()[1]
        self.url = f"postgres://{db['USER']}@127.0.0.1:{port}/{db['NAME']}"
        self.sockets: list[socket.socket] = [self.listener]

    def __enter__(self) -> _DatabaseProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # cut: the listener is closed
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


# --- S3 --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_load_csv_of_a_missing_bucket_is_one_line(s3_server: str) -> None:
    name = f"missing-{uuid.uuid4().hex[:12]}"

    ran = manage("load_csv", f"s3://{name}/x.csv", env={"AWS_ENDPOINT_URL": s3_server})

    assert ran.error == f"bucket {name!r} does not exist"


@pytest.mark.django_db(transaction=True)
def test_a_missing_backup_bucket_is_one_line(s3_server: str) -> None:
    name = f"missing-{uuid.uuid4().hex[:12]}"

    ran = manage("restore", "jobs", env={"BACKUP_BUCKET": name, "AWS_ENDPOINT_URL": s3_server})

    assert ran.error == f"the S3 bucket {name!r} does not exist"


@pytest.mark.django_db(transaction=True)
def test_s3_unreachable_is_one_line() -> None:
    nowhere = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "BACKUP_BUCKET": "backups",
    }

    load = manage("load_csv", "s3://landing/departments.csv", env=nowhere)
    restore = manage("restore", "jobs", env=nowhere)

    assert load.error == (
        "cannot reach S3 for 's3://landing/departments.csv': Could not connect to the endpoint "
        'URL: "http://127.0.0.1:1/landing/departments.csv"'
    )
    assert restore.error == "S3 is unreachable at http://127.0.0.1:1"


@pytest.fixture(scope="module")
def s3_with_auth() -> Iterator[str]:
    """A second moto S3 server, one that checks credentials (INITIAL_NO_AUTH_ACTION_COUNT=0):
    it knows no access key, so every key is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the moto server with authentication did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_bad_s3_credentials_are_one_line(s3_with_auth: str) -> None:
    bad = {
        "AWS_ENDPOINT_URL": s3_with_auth,
        "AWS_ACCESS_KEY_ID": "AKIANOTAREALKEY00000",
        "AWS_SECRET_ACCESS_KEY": "not-a-real-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "BACKUP_BUCKET": "backups",
    }

    load = manage("load_csv", "s3://landing/history/", env=bad)
    restore = manage("restore", "jobs", env=bad)

    assert load.error == "cannot read 's3://landing/history/': InvalidAccessKeyId"
    assert restore.error == (
        "S3 does not know the access key (InvalidAccessKeyId): check AWS_ACCESS_KEY_ID"
    )


@pytest.mark.django_db(transaction=True)
def test_no_s3_credentials_is_one_line(s3_server: str, tmp_path: Path) -> None:
    nothing = str(tmp_path / "none")
    ran = manage(
        "restore",
        "jobs",
        env={
            "AWS_ENDPOINT_URL": s3_server,
            "BACKUP_BUCKET": "backups",
            "AWS_SHARED_CREDENTIALS_FILE": nothing,
            "AWS_CONFIG_FILE": nothing,
            "AWS_EC2_METADATA_DISABLED": "true",
        },
        drop=tuple(
            name for name in os.environ if name.startswith("AWS_") and name != "AWS_DEFAULT_REGION"
        ),
    )

    assert ran.error == (
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
        "or run with an IAM role"
    )


# --- the jobs' refusals and the commands' own errors -----------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_file_of_no_known_table_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "salaries.csv").write_text("1,x\n")

    ran = manage("load_csv", str(tmp_path / "salaries.csv"))

    assert ran.error.startswith("cannot tell the table of 'salaries.csv': expected departments")


@pytest.mark.django_db(transaction=True)
def test_restore_of_a_table_with_no_backup_is_one_line(tmp_path: Path) -> None:
    ran = manage("restore", "jobs", env={"BACKUP_DIR": str(tmp_path / "empty")})

    assert ran.error == "there is no backup of jobs in the backup storage"


@pytest.mark.django_db(transaction=True)
def test_a_command_error_is_error_colon_not_its_class_name() -> None:
    ran = manage("load_csv", str(SAMPLE_DIR), "--chunk-size", "0")

    assert ran.error == "--chunk-size must be at least 1"
    assert "CommandError" not in ran.lines[-1]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("load_csv", "x.csv", "--table", "salaries"), "error: argument --table: invalid choice: "
         "'salaries' (choose from 'departments', 'jobs', 'hired_employees') "
         "(see manage.py load_csv --help)"),
        (("restore", "jobs", "--bogus"),
         "error: unrecognized arguments: --bogus (see manage.py restore --help)"),
    ],
)  # fmt: skip
def test_a_usage_mistake_is_one_line_and_exit_2(args: tuple[str, ...], expected: str) -> None:
    ran = manage(*args)

    assert (ran.returncode, ran.stderr, ran.stdout) == (2, expected + "\n", "")


@pytest.mark.django_db(transaction=True)
def test_create_token_twice_is_one_line() -> None:
    first = manage("create_token", "ci")
    again = manage("create_token", "ci")

    assert first.returncode == 0 and first.stdout.startswith("rst_")
    assert again.error == "a token named 'ci' exists; use --replace to rotate it"
    assert ApiToken.objects.filter(name="ci").count() == 1


# --- the details: --traceback, DEBUG, the settings, --verbosity ------------------------------


@pytest.mark.parametrize(
    ("flags", "env"), [(("--traceback",), {}), ((), {"DEBUG": "1"})], ids=["--traceback", "DEBUG"]
)
def test_traceback_only_with_the_flag_or_debug(flags: tuple[str, ...], env: dict) -> None:
    ran = manage("load_csv", str(SAMPLE_DIR), *flags, env={"DATABASE_URL": NOWHERE, **env})

    assert "Traceback (most recent call last):" in ran.lines
    assert ran.lines[-1].startswith("error: the database is unreachable: ")
    assert ran.returncode == 1


def test_a_bad_setting_at_startup_is_one_line() -> None:
    no_key = {"SECRET_KEY": ""}  # settings.py: "SECRET_KEY must be set when DEBUG is off"
    ran = manage("load_csv", str(SAMPLE_DIR), env=no_key)
    with_traceback = manage("load_csv", "--traceback", env=no_key)

    assert (ran.returncode, ran.stdout, ran.stderr) == (
        1, "", "error: SECRET_KEY must be set when DEBUG is off.\n",
    )  # fmt: skip
    assert with_traceback.returncode != 0
    assert "Traceback (most recent call last):" in with_traceback.lines


@pytest.mark.django_db(transaction=True)
def test_verbosity_zero_keeps_stdout_empty() -> None:
    quiet = manage("load_csv", str(SAMPLE_DIR / "departments.csv"), "--verbosity", "0")
    normal = manage("load_csv", str(SAMPLE_DIR / "departments.csv"))

    assert (quiet.returncode, quiet.stdout) == (0, "")
    assert normal.returncode == 0
    assert normal.stdout.splitlines()[0].split() == [
        "table", "read", "inserted", "rejected", "skipped", "seconds", "source"
    ]  # fmt: skip
    assert normal.stdout.splitlines()[2].endswith("departments.csv (unchanged)")


JOB_COMMANDS = ["load_csv", "backup", "restore", "replay_rejections"]


def _run(name: str, *args: str, verbosity: int) -> list[list[str]]:
    """The command's stdout, in process, as the summary table's rows of words."""
    out = io.StringIO()
    call_command(name, *args, verbosity=verbosity, stdout=out)
    return [line.split() for line in out.getvalue().splitlines()]


@pytest.fixture
def backup_folder(tmp_path: Path) -> Iterator[Path]:
    backups = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "backups")},
    }
    with override_settings(STORAGES={**settings.STORAGES, "backups": backups}):
        yield tmp_path / "backups"


@pytest.mark.django_db
def test_verbosity_zero_runs_every_job_and_prints_no_summary(backup_folder: Path) -> None:
    assert _run("load_csv", str(SAMPLE_DIR / "departments.csv"), verbosity=0) == []
    assert Department.objects.count() == 12
    assert _run("backup", "departments", verbosity=0) == []
    (backup,) = list_backups("departments")
    assert backup.rows == 12
    Department.objects.filter(id=1).update(department="Changed")
    assert _run("restore", "departments", verbosity=0) == []
    assert Department.objects.get(id=1).department != "Changed"
    assert _run("replay_rejections", "--table", "departments", verbosity=0) == []
    assert Batch.objects.filter(source="replay", table="departments").count() == 1


@pytest.mark.django_db
def test_verbosity_one_prints_each_jobs_summary_table(backup_folder: Path) -> None:
    loaded = _run("load_csv", str(SAMPLE_DIR / "jobs.csv"), verbosity=1)
    backed_up = _run("backup", "jobs", verbosity=1)
    restored = _run("restore", "jobs", verbosity=1)
    replayed = _run("replay_rejections", "--table", "jobs", verbosity=1)

    (key,) = [backup.key for backup in list_backups("jobs")]
    assert loaded[0] == ["table", "read", "inserted", "rejected", "skipped", "seconds", "source"]
    assert loaded[2][:5] == ["jobs", "183", "183", "0", "0"]
    assert loaded[2][6] == (SAMPLE_DIR / "jobs.csv").as_uri()
    assert backed_up[0] == ["table", "rows", "bytes", "seconds", "key"]
    assert (backed_up[2][:2], backed_up[2][4]) == (["jobs", "183"], key)
    assert restored[0] == ["table", "read", "inserted", "rejected", "replaced", "seconds", "backup"]
    assert (restored[2][:5], restored[2][6]) == (["jobs", "183", "183", "0", "183"], key)
    assert replayed == [
        ["table", "replayed", "inserted", "rejected", "batches"],
        ["-----", "--------", "--------", "--------", "-------"],
        ["jobs", "0", "0", "0", "1"],
    ]
    assert all(len(table) == 3 for table in (loaded, backed_up, restored))
    assert float(loaded[2][5]) >= 0 and float(restored[2][5]) >= 0


@pytest.mark.parametrize("name", JOB_COMMANDS)
def test_every_job_command_has_one_shape_and_help_for_each_option(name: str) -> None:
    command = load_command_class("jobs", name)
    parser = command.create_parser("manage.py", name)

    missing = [action.dest for action in parser._actions if not action.help]

    assert missing == []
    assert isinstance(command, JobCommand)
    assert type(command).handle is JobCommand.handle  # the one skeleton; each has its run_job
    assert "run_job" in vars(type(command))
    assert command.columns and command.columns[0] == ("table", "table")


@pytest.mark.parametrize(
    "name",
    ["load_csv", "backup", "restore", "create_token", "demo", "dictionary_docs", "export_schema"],
)
def test_every_argument_has_help(name: str) -> None:
    app = "jobs" if name in {"load_csv", "backup", "restore"} else "backend"
    parser = load_command_class(app, name).create_parser("manage.py", name)

    missing = [action.dest for action in parser._actions if not action.help]

    assert missing == []


# --- the words: jobs.faults.describe ---------------------------------------------------------


def _client_error(code: str, operation: str = "GetObject", **extra: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m", **extra}}, operation)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OperationalError('connection to server at "db" (10.0.0.5), port 5432 failed: timeout\n'
                          "\tIs the server running on that host?"),
         'the database is unreachable: connection to server at "db" (10.0.0.5), port 5432 '
         "failed: timeout"),
        (OperationalError("server closed the connection unexpectedly\n\tThis probably means..."),
         "the database is unreachable: server closed the connection unexpectedly"),
        (InterfaceError("connection already closed"),
         "the database connection was lost: connection already closed"),
        (OperationalError("no such table: departments"),
         "the database is not set up (no such table: departments): run python manage.py migrate"),
        (ProgrammingError('relation "departments" does not exist\nLINE 1: SELECT'),
         'the database is not set up (relation "departments" does not exist): '
         "run python manage.py migrate"),
        (OSError(errno.ENOSPC, "No space left on device", "/srv/backups/jobs/x.avro"),
         "no space left on device: /srv/backups/jobs/x.avro"),
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
        (PermissionError(errno.EACCES, "Permission denied", "/srv/backups"),
         "permission denied: /srv/backups"),
        (EndpointConnectionError(endpoint_url="http://s3.local:9000/landing?list-type=2"),
         "S3 is unreachable at http://s3.local:9000"),
        (NoCredentialsError(),
         "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
         "or run with an IAM role"),
        (_client_error("InvalidAccessKeyId"),
         "S3 does not know the access key (InvalidAccessKeyId): check AWS_ACCESS_KEY_ID"),
        (_client_error("SignatureDoesNotMatch"),
         "S3 rejected the secret key (SignatureDoesNotMatch): check AWS_SECRET_ACCESS_KEY"),
        (_client_error("NoSuchBucket", BucketName="landing"),
         "the S3 bucket 'landing' does not exist"),
        (_client_error("NoSuchKey", Key="in/jobs.csv"),
         "the S3 object 'in/jobs.csv' does not exist"),
        (_client_error("AccessDenied", "PutObject"),
         "S3 denied PutObject (AccessDenied): check the credentials and the bucket policy"),
        (KeyboardInterrupt(), "interrupted"),
    ],
)  # fmt: skip
def test_describe_words_each_fault_in_one_line(error: BaseException, expected: str) -> None:
    assert describe(error) == expected
    assert one_line(error) == expected


def test_an_unexpected_error_is_one_line_naming_its_type() -> None:
    assert describe(ValueError("first\nsecond")) is None
    assert one_line(ValueError("first\nsecond")) == "unexpected ValueError: first"
    assert one_line(RuntimeError()) == "unexpected RuntimeError"
