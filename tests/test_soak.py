"""``bench/soak.py --seconds 10`` on a fresh database of the suite's kind: every check passes.

The soak runs as a subprocess, against its own gunicorn: 4 writers whose batches share ids, 4
readers, then an audit of every row. With DATABASE_URL unset the suite is on SQLite, and the
soak runs on a temporary SQLite file; on PostgreSQL it runs on a throw-away database of the
same server, dropped afterwards. A run takes about 20 s.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
import psycopg2
import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
CHECKS = {
    "5xx",
    "transport",
    "answers",
    "reports",
    "stored-once",
    "duplicates",
    "rejection-log",
    "batches",
    "readers",
    "server-log",
}
MAX_SECONDS = 45  # about 20 s on a quiet 2-CPU machine; the bound leaves room for a busy one


@pytest.fixture
def soak_database(tmp_path: Path) -> Iterator[str]:
    """The URL of a database the soak may drop and create: the suite's kind, never its own."""
    suite_url = os.environ.get("DATABASE_URL")
    if not suite_url:
        yield f"sqlite:///{tmp_path / 'roster_soak.sqlite3'}"
        return
    name = f"roster_soak_test_{uuid.uuid4().hex[:12]}"
    yield urlsplit(suite_url)._replace(path=f"/{name}").geturl()
    config = dj_database_url.parse(suite_url)
    server = {"host": config["HOST"], "port": config["PORT"], "user": config["USER"]}
    server["password"] = config["PASSWORD"]
    conn = psycopg2.connect(dbname="postgres", **{k: v for k, v in server.items() if v})
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


def _counted(output: str, name: str) -> int:
    match = re.search(rf"^counted: .*\b{name} ([\d,]+)", output, re.MULTILINE)
    assert match, f"no {name!r} in the soak's output:\n{output}"
    return int(match[1].replace(",", ""))


def test_a_10_second_soak_passes_every_check(soak_database: str) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "bench/soak.py", "--seconds", "10", "--database-url", soak_database],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    elapsed = time.monotonic() - started
    output = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\n{output}\n{done.stderr[-3000:]}"

    verdicts = dict(
        (key, verdict) for verdict, key in re.findall(r"^  (PASS|FAIL)  (\S+) ", output, re.M)
    )
    assert verdicts == dict.fromkeys(CHECKS, "PASS"), output
    assert f"checks: {len(CHECKS)} passed, 0 failed" in output

    soak = re.search(r"^soak +4 +4 +[\d.]+ +([\d,]+) +([\d,]+) +[\d.]+ +([\d,]+) ", output, re.M)
    assert soak, output
    writer_requests, reader_requests, rows_stored = (int(x.replace(",", "")) for x in soak.groups())
    assert writer_requests > 0 and reader_requests > 0 and rows_stored > 0, output
    assert re.search(r"^soak vs baseline .* = [\d.]+x; writer p50 .* = [\d.]+x$", output, re.M)

    # The run did what it is for: batches met on shared ids, and invalid rows were logged too.
    duplicates = _counted(output, "duplicate rejections")
    assert duplicates > 0, output
    assert _counted(output, "rejection log entries") > duplicates, output
    assert _counted(output, "ids stored") == _counted(output, "valid ids sent"), output
    assert elapsed < MAX_SECONDS, f"the soak took {elapsed:.1f} s\n{output}"
