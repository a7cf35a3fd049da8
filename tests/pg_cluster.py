"""A throwaway PostgreSQL cluster of the tests' own, for tests that make the database vanish.

A pytest plugin (``pytest_plugins = ["tests.pg_cluster"]`` in ``tests/conftest.py``). The
session fixture ``pg_cluster`` creates the cluster ``roster_test_<pid>`` with Debian's
postgresql-common tools, on a free port from 5433 up, listening on 127.0.0.1 with trust auth for
``postgres``. It is independent of ``DATABASE_URL``, so it works in the SQLite run of the suite
as in the PostgreSQL one, and stopping it never touches the main cluster (port 5432)::

    def test_something(pg_cluster):
        url = pg_cluster.create_database("roster_something")  # an empty database (or template=)
        pg_cluster.stop()     # fast shutdown: clients are disconnected, new ones refused
        pg_cluster.start()
        pg_cluster.kill()     # SIGKILL the postmaster, a crash
        pg_cluster.freeze()   # SIGSTOP every process: connections open, nothing answers

After each test the plugin thaws and starts the cluster again if the test left it down, so one
test's outage never leaks into the next. The cluster is dropped at the end of the session,
whether the tests passed or not; one left behind by a killed session (its pid no longer runs)
is dropped when the next session starts. Creating the cluster never skips: if the tools are
missing or fail, the fixture errors with their output. Needs root (``pg_createcluster``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

PREFIX = "roster_test_"
FIRST_PORT = 5433
_LOCK = Path("/tmp/roster_pg_cluster.lock")  # serialises setup between concurrent sessions
_SETTINGS = """\
# Written by tests/pg_cluster.py: a throwaway cluster. fsync off is safe while the machine
# stays up; synchronous_commit stays on, so a killed postmaster loses no committed row.
listen_addresses = '127.0.0.1'
fsync = off
full_page_writes = off
"""
_HBA = """\
# Written by tests/pg_cluster.py: trust, for local sockets and 127.0.0.1 only.
local   all   all                  trust
host    all   all   127.0.0.1/32   trust
"""

_current: PgCluster | None = None  # the session's cluster, for the per-test restore


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    """Run a postgresql-common tool; raise with its output when it fails."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing paren.
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.append(int(entry.name))
    return found


def _exists(pid: int) -> bool:
    """The process exists, even as a zombie (PostgreSQL's lock files count zombies as alive)."""
    return Path(f"/proc/{pid}").exists()


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := [pid for pid in pids if _exists(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _clusters() -> list[dict]:
    return json.loads(_run("pg_lsclusters", "--json").stdout or "[]")


def _version() -> str:
    versions = sorted(
        (entry.name for entry in Path("/etc/postgresql").iterdir() if entry.name.isdigit()),
        key=int,
    )
    if not versions:
        raise RuntimeError("no PostgreSQL version under /etc/postgresql (postgresql-common)")
    return versions[-1]


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class PgCluster:
    """One cluster made by ``pg_createcluster``; see the module's docstring."""

    version: str
    name: str
    port: int
    _frozen: list[int] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return Path("/var/lib/postgresql") / self.version / self.name

    @property
    def config_dir(self) -> Path:
        return Path("/etc/postgresql") / self.version / self.name

    def url(self, dbname: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres") -> psycopg2.extensions.connection:
        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, connect_timeout=5
        )
        connection.autocommit = True
        return connection

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create a database, empty or a copy of ``template`` (dropping one named ``name``
        first); return its URL. Copying a migrated database is much faster than migrating."""
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                cursor.execute(drop.format(sql.Identifier(name)))
                cursor.execute(create)
        finally:
            connection.close()
        return self.url(name)

    @property
    def postmaster(self) -> int | None:
        """The postmaster's pid while it runs, else None."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if _exists(pid) else None

    @property
    def running(self) -> bool:
        return self.postmaster is not None

    def start(self) -> None:
        """Start the cluster (a no-op when it runs) and wait until it accepts connections."""
        self.thaw()
        if self.running:
            return
        self._ctl("start")
        deadline = time.monotonic() + 30
        while True:
            try:
                self.connect().close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        """Shut down: ``fast`` disconnects clients cleanly, ``immediate`` is a crash-like exit."""
        self.thaw()
        if self.running:
            self._ctl("stop", "-m", mode)

    def kill(self) -> None:
        """SIGKILL the postmaster, then wait until it and its children (which notice) are gone."""
        self.thaw()
        pid = self.postmaster
        if pid is None:
            return
        children = children_of(pid)
        os.kill(pid, signal.SIGKILL)
        if _wait_gone([pid], timeout=10):
            raise RuntimeError(f"the killed postmaster {pid} is still there after 10 s")
        for child in _wait_gone(children, timeout=10):  # they exit on their own; insist if not
            os.kill(child, signal.SIGKILL)
        if left := _wait_gone(children, timeout=10):
            raise RuntimeError(f"postgres processes {left} outlived their postmaster")

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: connections open, but nothing answers."""
        pid = self.postmaster
        if pid is None:
            raise RuntimeError("the cluster is not running")
        self._frozen = [pid, *children_of(pid)]
        for each in self._frozen:
            os.kill(each, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT whatever ``freeze`` stopped."""
        for each in self._frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(each, signal.SIGCONT)
        self._frozen = []

    def drop(self) -> None:
        self.thaw()
        _run("pg_dropcluster", "--stop", self.version, self.name)
        shutil.rmtree(self.config_dir, ignore_errors=True)  # pg_dropcluster leaves conf.d/ here

    def _ctl(self, *action: str) -> None:
        _run("pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, *action)

    @classmethod
    def create(cls) -> PgCluster:
        """Drop clusters left by dead sessions, then create, configure and start a new one."""
        version = _version()
        name = f"{PREFIX}{os.getpid()}"
        with _LOCK.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            existing = _clusters()
            for found in existing:
                if found["cluster"].startswith(PREFIX):
                    _drop_if_abandoned(found)
            listed = {(str(found["version"]), found["cluster"]) for found in existing}
            for folder in Path("/etc/postgresql").glob(f"*/{PREFIX}*"):
                if (folder.parent.name, folder.name) not in listed and _abandoned(folder.name):
                    shutil.rmtree(folder, ignore_errors=True)  # half-dropped by a killed session
            taken = {int(found["port"]) for found in existing}
            port = next(
                p for p in range(FIRST_PORT, FIRST_PORT + 200) if p not in taken and _port_free(p)
            )
            options = ["--port", str(port), "--start-conf", "manual"]
            _run("pg_createcluster", version, name, *options, "--", "--auth=trust", "--no-sync")
            cluster = cls(version, name, port)
            try:
                (cluster.config_dir / "conf.d" / "roster_test.conf").write_text(_SETTINGS)
                (cluster.config_dir / "pg_hba.conf").write_text(_HBA)
                cluster.start()
            except BaseException:
                cluster.drop()
                raise
        return cluster


def _abandoned(name: str) -> bool:
    """``roster_test_<pid>`` belongs to a session that no longer runs."""
    owner = name.removeprefix(PREFIX)
    return not (owner.isdigit() and _exists(int(owner)))


def _drop_if_abandoned(found: dict) -> None:
    """Drop a ``roster_test_<pid>`` cluster whose session (that pid) no longer runs."""
    if not _abandoned(found["cluster"]):
        return  # another session's, still in use
    cluster = PgCluster(str(found["version"]), found["cluster"], int(found["port"]))
    if pid := cluster.postmaster:  # it may have been left frozen: wake it so --stop can work
        for each in [pid, *children_of(pid)]:
            os.kill(each, signal.SIGCONT)
    cluster.drop()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL cluster of this session's own; see the module's docstring."""
    global _current
    cluster = PgCluster.create()
    _current = cluster
    try:
        yield cluster
    finally:
        _current = None
        cluster.drop()


@pytest.fixture(autouse=True)
def _pg_cluster_restored() -> Iterator[None]:
    """Hand the next test a running cluster, whatever this one did to it."""
    yield
    if _current is not None:
        _current.start()
