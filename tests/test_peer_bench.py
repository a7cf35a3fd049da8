"""``bench/peer.py`` on a small table: Roster and PostGraphile start, answer alike, and every
row of the table is printed. Issue 15: CI checks that the benchmark starts and answers; its
figures are measured by hand (docs/benchmarks.md, "Beside PostGraphile").

PostGraphile reads PostgreSQL only, so the benchmark runs on the local server (127.0.0.1:5432,
which ``make test`` starts) in the SQLite run of the suite as in the PostgreSQL one, on a
throw-away database dropped afterwards. PostGraphile comes from ``bench/peer/`` at the
lockfile's versions (``make peer``; the benchmark runs ``npm ci`` itself when it is missing): a
machine without npm fails here. A run takes about 15 s, plus any wait for another benchmark
(``bench/_common.py``'s lock).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
ROWS = [
    "first page, 1000 hires with department and job",
    "the same, department 5",
    "totalCount, all hires",
    "insert 1000 hires, one request",
    "departments, 100 hires each",
]


@pytest.fixture
def bench_prefix() -> Iterator[str]:
    """A ``ROSTER_BENCH_DB`` of the test's own; its database is dropped after the test."""
    prefix = f"roster_peer_test_{uuid.uuid4().hex[:12]}"
    yield prefix
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{prefix}_peer" WITH (FORCE)')
    finally:
        conn.close()


def test_the_peer_benchmark_starts_both_servers_and_they_agree(bench_prefix: str) -> None:
    done = subprocess.run(
        [sys.executable, "bench/peer.py", "--rows", "2000", "--rounds", "1", "--warmup", "0"],
        cwd=ROOT,
        env={**os.environ, "ROSTER_BENCH_DB": bench_prefix},
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\n{output}\n{done.stderr[-3000:]}"

    checks = dict(re.findall(r"^  (.+?): .*  (OK|WRONG.*)$", output, re.M))
    assert checks == dict.fromkeys(ROWS, "OK"), output
    assert "answers: OK, both servers agree" in output
    figures = r"[\d.]+ ms \| [\d.]+ ms \| [\d.]+x \| <= [\d.]+x \| (PASS|MISS)"
    for label in ROWS:
        row = rf"^\| {re.escape(label)} \| {figures} \|$"
        assert re.search(row, output, re.M), f"no row {label!r} in the table:\n{output}"

    pinned = json.loads((ROOT / "bench" / "peer" / "package.json").read_text())["dependencies"]
    installed = ROOT / "bench" / "peer" / "node_modules" / "postgraphile" / "package.json"
    assert json.loads(installed.read_text())["version"] == pinned["postgraphile"]
