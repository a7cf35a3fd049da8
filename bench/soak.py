"""Soak: writers with overlapping ids and readers against gunicorn, then an audit of every row.

Run: ``.venv/bin/python bench/soak.py`` (60 s, 4 writers, 4 readers, gunicorn -w 2, PostgreSQL
database ``roster_soak``). On SQLite:
``.venv/bin/python bench/soak.py --database-url sqlite:////tmp/soak-var/roster_soak.sqlite3``

The database named by ``--database-url`` is dropped and created again (its name must contain
``soak``), migrated, and given the sample departments and jobs and an admin token; gunicorn
serves it with production settings (``LOG_LEVEL=ERROR``: a warning per rejected row would
write hundreds of megabytes).

- **Writers** send ``insertBatch`` mutations of 1000 hired_employees rows. Batch k takes the
  ids ``500k+1 .. 500k+1000`` (the next k goes to whichever writer asks first), so each id is
  sent by two batches, most often by two writers at once. The rows are shuffled, and 1 row in
  20 is invalid: in turn an impossible datetime, department 99, job 9999, a blank name. A row's
  content names its writer and batch (``Soak w2 b17 #1234``; datetime, department and job
  differ too), so a stored row tells which batch wrote it.
- **Readers** page ``hiredEmployees`` (3 pages of 100 from a random id), walk the rejection
  log 100 entries at a time, and read one reported batch's log by ``batchId``.

At the end, with the server stopped, every check is printed PASS or FAIL (the exit status is 1
if one fails): no 5xx, no transport error, no GraphQL error; each batch's report fits what it
sent; every id sent in a valid row is stored exactly once, equal to the row of the one batch
that reported inserting it; each ``duplicate`` names an id that another batch inserted and
finished first; the ``rejections`` table equals the reported rejections (batch, index, id,
codes, raw row), nothing more, nothing less; the ``batches`` table holds one completed row per
reported batch with its counts; what readers saw was whole rows in id order and batch logs
equal to the reports; the server's log has no error.

Baseline, measured in the same run just before the soak (after 1 s of warm-up at the soak's
load): the same writers for a shorter time (``--baseline-seconds``) with no readers. The
soak's rows/s (valid rows stored per second) and writer latency are printed beside it, with
the ratios.
"""

from __future__ import annotations

import argparse
import random
import re
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dj_database_url
import orjson
import requests
from _common import (
    connect,
    create_token,
    gunicorn,
    is_sqlite,
    median,
    ms,
    p99,
    prepare_database,
    print_header,
    print_load,
    remove_database,
)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/roster_soak"
ROWS = 1000  # rows per batch
STEP = 500  # batch k starts at id STEP * k + 1: each id is in two batches
INVALID_EVERY = 20  # 1 row in 20 is invalid
PAGE = 100
SCAN_PAGES = 3
WARM_UP_SECONDS = 1.0
TIMEOUT = (5, 120)  # seconds: connect, read
EXAMPLES = 5  # problems shown in full, per check

MUTATION = (
    "mutation($rows: [HiredEmployeeInput!]!) { insertBatch(input: {hiredEmployees: $rows}) "
    "{ table received inserted rejected batchId rejections { index id reasons { code } } } }"
)
EMPLOYEES = (
    "query($after: String, $gte: Int, $count: Boolean!) { hiredEmployees(first: 100, "
    "after: $after, filter: {id: {gte: $gte}}) { totalCount @include(if: $count) "
    "pageInfo { hasNextPage endCursor } nodes { id name datetime departmentId jobId "
    "department { id department } job { id job } } } }"
)
LOG = (
    "query($after: String) { rejections(table: HIRED_EMPLOYEES, first: 100, after: $after) "
    "{ pageInfo { hasNextPage endCursor } nodes { id batchId index rowId reasons { code } } } }"
)
BATCH_LOG = (
    "query($batch: ID!, $after: String) { rejections(batchId: $batch, first: 1000, "
    "after: $after) { totalCount pageInfo { hasNextPage endCursor } "
    "nodes { index rowId reasons { code } } } }"
)

# Every check, by the key it is printed with: the test parses these lines.
CHECKS = {
    "5xx": "no 5xx responses",
    "transport": "no transport errors",
    "answers": "every answer is HTTP 200 without GraphQL errors",
    "reports": "each batch's report fits the rows it sent",
    "stored-once": "every valid id stored exactly once, as the batch that inserted it sent it",
    "duplicates": "each duplicate names an id another batch inserted and finished first",
    "rejection-log": "the rejections table equals the reported rejections",
    "batches": "the batches table holds one completed row per batch, same counts",
    "readers": "readers saw whole rows in id order and batch logs equal to the reports",
    "server-log": "the server's log has no errors",
}

_EPOCH = datetime(2021, 1, 1, tzinfo=UTC)
_BAD = {  # the kinds of invalid row, in turn: GraphQL field, value, expected reason code
    "datetime": ("datetime", "2021-02-30T12:00:00Z", "invalid_datetime"),
    "department": ("departmentId", 99, "unknown_reference"),
    "job": ("jobId", 9999, "unknown_reference"),
    "name": ("name", "   ", "required"),
}
_BAD_KINDS = list(_BAD)
_COLUMNS = {  # GraphQL field -> column: the rejection log keeps the row by column names
    "id": "id",
    "name": "name",
    "datetime": "datetime",
    "departmentId": "department_id",
    "jobId": "job_id",
}
_NAME = re.compile(r"Soak w(\d+) b(\d+) #(\d+)")
_SERVER_ERROR = re.compile(r"\[(ERROR|CRITICAL)\]|\"level\": \"(ERROR|CRITICAL)\"|Traceback")


# --- the rows ---------------------------------------------------------------------------------


def stored_row(writer: int, seq: int, row_id: int) -> tuple[str, datetime, int, int]:
    """The valid row writer ``writer`` sends for ``row_id`` in its batch ``seq``, as stored:
    name, datetime (UTC), department, job. Each part depends on the writer or the batch."""
    moment = _EPOCH + timedelta(minutes=row_id, seconds=(7 * seq + writer) % 60)
    department, job = 1 + (row_id + writer) % 12, 1 + (row_id + seq) % 183
    return f"Soak w{writer} b{seq} #{row_id}", moment, department, job


def datetime_text(writer: int, moment: datetime) -> str:
    """``moment`` as writer ``writer`` spells it: Z, an offset, no zone with a space or a T."""
    style = writer % 4
    if style == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == 1:
        return moment.astimezone(timezone(timedelta(hours=-5))).isoformat()
    if style == 2:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.replace(tzinfo=None).isoformat()


@dataclass
class Sent:
    """One ``insertBatch``: the rows a writer sent and, once answered, the server's report."""

    writer: int
    seq: int
    ids: array  # the row ids, in the order sent
    batch_id: str = ""  # uuid hex
    outcome: list[str | None] = field(default_factory=list)
    """Per row: None if reported inserted, else its reason codes joined by commas."""
    inserted: int = 0

    def bad(self, index: int) -> str | None:
        """The kind of invalid row at ``index``, or None for a valid row."""
        if index % INVALID_EVERY != (self.writer + self.seq) % INVALID_EVERY:
            return None
        return _BAD_KINDS[(index // INVALID_EVERY) % len(_BAD_KINDS)]

    def expected_codes(self, index: int) -> str | None:
        """The reason code of the invalid row at ``index``; None for a valid row."""
        kind = self.bad(index)
        return None if kind is None else _BAD[kind][2]

    def row(self, index: int) -> dict[str, Any]:
        """The row at ``index`` as sent, with GraphQL's field names."""
        row_id = self.ids[index]
        name, moment, department, job = stored_row(self.writer, self.seq, row_id)
        row = {
            "id": row_id,
            "name": name,
            "datetime": datetime_text(self.writer, moment),
            "departmentId": department,
            "jobId": job,
        }
        kind = self.bad(index)
        if kind is not None:
            graphql_field, value, _ = _BAD[kind]
            row[graphql_field] = value
        return row

    def raw(self, index: int) -> dict[str, Any]:
        """The row at ``index`` as the rejection log keeps it (column names)."""
        return {_COLUMNS[key]: value for key, value in self.row(index).items()}

    def rejected(self) -> dict[int, str]:
        """The reported rejections: index -> reason codes."""
        return {i: codes for i, codes in enumerate(self.outcome) if codes is not None}


# --- what happened ----------------------------------------------------------------------------


class Problems:
    """Failures per check: how many, and the first few in full."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def add(self, check: str, message: str) -> None:
        with self._lock:
            self.count[check] += 1
            shown = self.examples.setdefault(check, [])
            if len(shown) < EXAMPLES:
                shown.append(message)


@dataclass
class Phase:
    """One timed phase: its requests, their latencies, and what its writers stored."""

    name: str
    writers: int
    readers: int
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"writer": [], "reader": []})
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    seconds: float = 0.0
    client_cpu: float = 0.0  # seconds of CPU this process (the clients) used in the phase
    batches: list[Sent] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(len(samples) for samples in self.latencies.values()) + self.transport_errors

    @property
    def rows_stored(self) -> int:
        return sum(sent.inserted for sent in self.batches)


class Soak:
    """The shared state of a run: the server, the batches so far, the problems found."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.problems = Problems()
        self.batches: list[Sent] = []
        self.by_id: dict[str, Sent] = {}
        self._windows = 0
        self._seqs: Counter[int] = Counter()
        self._lock = threading.Lock()

    def highest_id(self) -> int:
        return self._windows * STEP + ROWS

    def next_batch(self, writer: int) -> Sent:
        """The next window of ids, shuffled, for writer ``writer``."""
        with self._lock:
            window = self._windows
            self._windows += 1
            seq = self._seqs[writer]
            self._seqs[writer] += 1
        ids = list(range(window * STEP + 1, window * STEP + ROWS + 1))
        random.Random(f"{writer}:{seq}").shuffle(ids)
        return Sent(writer=writer, seq=seq, ids=array("i", ids))

    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token}"
        session.headers["Content-Type"] = "application/json"
        return session

    def call(
        self,
        session: requests.Session,
        phase: Phase,
        role: str,
        query: str,
        variables: dict[str, Any],
    ) -> dict[str, Any] | None:
        """POST one GraphQL request; its data, or None (the failure is counted)."""
        body = orjson.dumps({"query": query, "variables": variables})
        started = time.perf_counter()
        try:
            response = session.post(self.url, data=body, timeout=TIMEOUT)
        except requests.RequestException as error:
            with self._lock:
                phase.transport_errors += 1
            self.problems.add("transport", f"{role}: {type(error).__name__}: {error}")
            return None
        elapsed = time.perf_counter() - started
        with self._lock:
            phase.latencies[role].append(elapsed)
            phase.statuses[response.status_code] += 1
        if response.status_code != 200:
            message = f"{role}: HTTP {response.status_code}: {response.text[:300]}"
            if response.status_code >= 500:
                self.problems.add("5xx", message)
            self.problems.add("answers", message)
            return None
        answer = orjson.loads(response.content)
        if answer.get("errors") or not answer.get("data"):
            self.problems.add("answers", f"{role}: {str(answer)[:300]}")
            return None
        return answer["data"]

    def record(self, sent: Sent, phase: Phase, result: dict[str, Any]) -> None:
        """Check a batch's report against what it sent, and keep both."""
        where = f"batch {result.get('batchId')} (w{sent.writer} b{sent.seq})"
        received, count = len(sent.ids), len(result["rejections"])
        if (result["table"], result["received"]) != ("HIRED_EMPLOYEES", received):
            self.problems.add("reports", f"{where}: table/received {result['table']}, {received}")
        if result["inserted"] + count != received or result["rejected"] != count:
            self.problems.add("reports", f"{where}: counts {result} do not add up")
        outcome: list[str | None] = [None] * received
        for rejection in result["rejections"]:
            index, codes = rejection["index"], ",".join(r["code"] for r in rejection["reasons"])
            if not 0 <= index < received or outcome[index] is not None:
                self.problems.add("reports", f"{where}: index {index} out of range or repeated")
                continue
            outcome[index] = sys.intern(codes)
            if rejection["id"] != sent.ids[index]:
                self.problems.add(
                    "reports", f"{where}: row {index} has id {sent.ids[index]}, not {rejection}"
                )
            expected = sent.expected_codes(index) or "duplicate"
            if codes != expected:
                self.problems.add("reports", f"{where}: row {index}: {codes}, not {expected}")
        for index, codes in enumerate(outcome):
            if codes is None and sent.bad(index) is not None:
                self.problems.add("reports", f"{where}: invalid row {index} reported inserted")
        sent.batch_id = uuid.UUID(result["batchId"]).hex
        sent.outcome = outcome
        sent.inserted = result["inserted"]
        with self._lock:
            phase.batches.append(sent)
            self.batches.append(sent)
            self.by_id[sent.batch_id] = sent


# --- writers and readers ----------------------------------------------------------------------


def writer(soak: Soak, phase: Phase, number: int, deadline: Callable[[], float]) -> None:
    with soak.session() as session:
        while time.monotonic() < deadline():
            sent = soak.next_batch(number)
            rows = [sent.row(index) for index in range(len(sent.ids))]
            data = soak.call(session, phase, "writer", MUTATION, {"rows": rows})
            if data is not None:
                soak.record(sent, phase, data["insertBatch"])


def reader(soak: Soak, phase: Phase, number: int, deadline: Callable[[], float]) -> None:
    rng = random.Random(number)
    log_after: str | None = None
    with soak.session() as session:
        while time.monotonic() < deadline():
            pick = rng.random()
            if pick < 0.5 or not soak.batches:
                scan_employees(soak, phase, session, rng, deadline)
            elif pick < 0.8:
                log_after = walk_log(soak, phase, session, log_after)
            else:
                read_batch_log(soak, phase, session, rng.choice(soak.batches))


def scan_employees(
    soak: Soak,
    phase: Phase,
    session: requests.Session,
    rng: random.Random,
    deadline: Callable[[], float],
) -> None:
    """Up to 3 pages of hiredEmployees from a random id: ids ascending, each row whole."""
    gte = rng.randint(1, soak.highest_id())
    after, last = None, gte - 1
    for page in range(SCAN_PAGES):
        variables = {"after": after, "gte": gte, "count": page == 0}
        data = soak.call(session, phase, "reader", EMPLOYEES, variables)
        if data is None:
            return
        connection = data["hiredEmployees"]
        for node in connection["nodes"]:
            if node["id"] <= last:
                soak.problems.add("readers", f"hiredEmployees: id {node['id']} after {last}")
            last = node["id"]
            check_node(soak, node)
        if not connection["pageInfo"]["hasNextPage"] or time.monotonic() >= deadline():
            return
        after = connection["pageInfo"]["endCursor"]


def check_node(soak: Soak, node: dict[str, Any]) -> None:
    """A node read is a whole row some batch sent: its name says which, the rest must match."""
    match = _NAME.fullmatch(node["name"])
    if match is None or int(match[3]) != node["id"]:
        soak.problems.add("readers", f"hiredEmployees: a row no writer sent: {node}")
        return
    name, moment, department, job = stored_row(int(match[1]), int(match[2]), node["id"])
    seen = (
        node["name"],
        datetime.fromisoformat(node["datetime"]),
        node["departmentId"],
        node["jobId"],
        node["department"]["id"],
        node["job"]["id"],
    )
    if seen != (name, moment, department, job, department, job):
        soak.problems.add("readers", f"hiredEmployees: a torn row: {node}")


def walk_log(soak: Soak, phase: Phase, session: requests.Session, after: str | None) -> str | None:
    """The next page of the rejection log; each entry of a known batch is as it reported."""
    data = soak.call(session, phase, "reader", LOG, {"after": after})
    if data is None:
        return after
    connection = data["rejections"]
    last = -1
    for node in connection["nodes"]:
        if int(node["id"]) <= last:
            soak.problems.add("readers", f"rejections: entry {node['id']} after {last}")
        last = int(node["id"])
        sent = soak.by_id.get(uuid.UUID(node["batchId"]).hex)
        if sent is not None:
            codes = ",".join(r["code"] for r in node["reasons"])
            index = node["index"]
            reported = (sent.ids[index], sent.outcome[index]) if index < len(sent.ids) else None
            if (node["rowId"], codes) != reported:
                soak.problems.add("readers", f"rejections: {node} is not {reported}")
    page = connection["pageInfo"]
    return page["endCursor"] if page["hasNextPage"] else None


def read_batch_log(soak: Soak, phase: Phase, session: requests.Session, sent: Sent) -> None:
    """``rejections(batchId:)`` of a reported batch equals its report."""
    seen: dict[int, tuple[int, str]] = {}
    after = None
    while True:
        variables = {"batch": str(uuid.UUID(sent.batch_id)), "after": after}
        data = soak.call(session, phase, "reader", BATCH_LOG, variables)
        if data is None:
            return
        connection = data["rejections"]
        for node in connection["nodes"]:
            seen[node["index"]] = (node["rowId"], ",".join(r["code"] for r in node["reasons"]))
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    reported = {i: (sent.ids[i], codes) for i, codes in sent.rejected().items()}
    if seen != reported:
        missing, extra = reported.keys() - seen.keys(), seen.keys() - reported.keys()
        soak.problems.add(
            "readers",
            f"batch {sent.batch_id}: log differs from the report "
            f"({len(missing)} missing, {len(extra)} extra, {len(seen)} read)",
        )


def run_phase(soak: Soak, phase: Phase, seconds: float) -> None:
    """Start the phase's writers and readers together; stop them after ``seconds``."""
    end = [0.0]
    barrier = threading.Barrier(phase.writers + phase.readers + 1)
    crashes: list[BaseException] = []

    def run(work: Callable[..., None], number: int) -> None:
        barrier.wait()
        try:
            work(soak, phase, number, lambda: end[0])
        except BaseException as error:
            crashes.append(error)

    threads = [threading.Thread(target=run, args=(writer, n)) for n in range(phase.writers)]
    threads += [threading.Thread(target=run, args=(reader, n)) for n in range(phase.readers)]
    for thread in threads:
        thread.start()
    started, cpu = time.monotonic(), time.process_time()
    end[0] = started + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    phase.seconds = time.monotonic() - started
    phase.client_cpu = time.process_time() - cpu
    if crashes:
        raise crashes[0]


# --- the audit --------------------------------------------------------------------------------


def fetch(conn: Any, sql: str) -> Iterator[tuple[Any, ...]]:
    """Stream a query's rows: through a server-side cursor on PostgreSQL."""
    if isinstance(conn, sqlite3.Connection):
        yield from conn.execute(sql)
        return
    with conn.cursor(name=f"soak_{uuid.uuid4().hex}") as cur:
        cur.itersize = 20_000
        cur.execute(sql)
        yield from cur


def as_utc(value: Any) -> datetime:
    """A timestamp from either database (SQLite keeps naive UTC text) as an aware UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def audit(db: str, soak: Soak) -> dict[str, int]:
    """Compare the tables with the reports; return what was counted."""
    problems, batches = soak.problems, soak.batches
    top = max((max(sent.ids) for sent in batches), default=0)
    inserter = array("i", [-1]) * (top + 1)  # id -> the batch (index) that reported inserting it
    valid_sent = bytearray(top + 1)
    for number, sent in enumerate(batches):
        bad = range((sent.writer + sent.seq) % INVALID_EVERY, len(sent.ids), INVALID_EVERY)
        for index, row_id in enumerate(sent.ids):
            if index not in bad:
                valid_sent[row_id] = 1
            if sent.outcome[index] is None:
                if inserter[row_id] != -1:
                    other = batches[inserter[row_id]]
                    problems.add(
                        "stored-once",
                        f"id {row_id} reported inserted by {other.batch_id} and {sent.batch_id}",
                    )
                else:
                    inserter[row_id] = number

    conn = connect(db)
    try:
        finished = audit_batches(conn, soak)
        stored = audit_employees(conn, soak, inserter, valid_sent)
        logged = audit_rejections(conn, soak)
    finally:
        conn.close()

    duplicates = 0
    for sent in batches:
        for index, codes in enumerate(sent.outcome):
            if codes != "duplicate":
                continue
            duplicates += 1
            row_id, first = sent.ids[index], inserter[sent.ids[index]]
            where = f"batch {sent.batch_id} row {index} (id {row_id})"
            if first == -1:
                problems.add("duplicates", f"{where}: no batch reported inserting the id")
            elif batches[first] is sent:
                problems.add("duplicates", f"{where}: the batch also reported inserting it")
            else:
                inserted_at = finished.get(batches[first].batch_id)
                rejected_at = finished.get(sent.batch_id)
                if inserted_at and rejected_at and not inserted_at < rejected_at:
                    problems.add(
                        "duplicates",
                        f"{where}: {batches[first].batch_id} inserted it, finished later",
                    )
    return {
        "valid ids sent": sum(valid_sent),
        "ids stored": stored,
        "duplicate rejections": duplicates,
        "rejection log entries": logged,
    }


def audit_batches(conn: Any, soak: Soak) -> dict[str, datetime]:
    """The ``batches`` table: one completed row per reported batch, with its counts."""
    finished: dict[str, datetime] = {}
    sql = (
        'SELECT id, source, "table", received, inserted, rejected, status, finished_at FROM batches'
    )
    for batch_id, source, table, received, inserted, rejected, status, at in fetch(conn, sql):
        key = uuid.UUID(str(batch_id)).hex
        sent = soak.by_id.get(key)
        row = (source, table, received, inserted, rejected, status)
        if sent is None:
            soak.problems.add("batches", f"batch {key} {row}: no writer reported it")
            continue
        expected = ("graphql", "hired_employees", len(sent.ids), sent.inserted)
        expected += (len(sent.ids) - sent.inserted, "completed")
        if row != expected:
            soak.problems.add("batches", f"batch {key}: {row}, reported {expected}")
        finished[key] = as_utc(at)
    for key in soak.by_id.keys() - finished.keys():
        soak.problems.add("batches", f"batch {key}: reported, not in the table")
    return finished


def audit_employees(conn: Any, soak: Soak, inserter: array, valid_sent: bytearray) -> int:
    """``hired_employees``: exactly the ids reported inserted, each as its batch sent it."""
    problems, batches = soak.problems, soak.batches
    seen = bytearray(len(inserter))
    stored = 0
    sql = "SELECT id, name, datetime, department_id, job_id FROM hired_employees"
    for row_id, name, moment, department, job in fetch(conn, sql):
        stored += 1
        if row_id >= len(inserter) or inserter[row_id] == -1:
            problems.add("stored-once", f"id {row_id} ({name}) stored, no batch reported it")
            continue
        if seen[row_id]:
            problems.add("stored-once", f"id {row_id} stored twice")
        seen[row_id] = 1
        sent = batches[inserter[row_id]]
        expected = stored_row(sent.writer, sent.seq, row_id)
        if (name, as_utc(moment), department, job) != expected:
            problems.add(
                "stored-once",
                f"id {row_id}: stored {(name, moment, department, job)}, batch {sent.batch_id} "
                f"sent {expected}",
            )
    for row_id in range(len(inserter)):
        if not seen[row_id] and (inserter[row_id] != -1 or valid_sent[row_id]):
            problems.add("stored-once", f"id {row_id} (sent valid) is not stored")
    return stored


def audit_rejections(conn: Any, soak: Soak) -> int:
    """``rejections``: exactly the reported rejections, each with the raw row sent."""
    logged: dict[str, bytearray] = {}
    count = 0
    sql = 'SELECT batch_id, source, "table", position, row_id, raw, reasons FROM rejections'
    for batch_id, source, table, index, row_id, raw, reasons in fetch(conn, sql):
        count += 1
        key = uuid.UUID(str(batch_id)).hex
        sent = soak.by_id.get(key)
        where = f"rejection of batch {key} row {index}"
        if sent is None:
            soak.problems.add("rejection-log", f"{where}: no writer reported the batch")
            continue
        marks = logged.setdefault(key, bytearray(len(sent.ids)))
        if not 0 <= index < len(sent.ids) or sent.outcome[index] is None:
            soak.problems.add("rejection-log", f"{where}: the batch did not report it rejected")
            continue
        if marks[index]:
            soak.problems.add("rejection-log", f"{where}: logged twice")
        marks[index] = 1
        codes = ",".join(reason["code"] for reason in as_json(reasons))
        seen = (source, table, row_id, codes, as_json(raw))
        expected = ("graphql", "hired_employees", sent.ids[index], sent.outcome[index])
        expected += (sent.raw(index),)
        if seen != expected:
            soak.problems.add("rejection-log", f"{where}: {seen}, reported {expected}")
    for sent in soak.batches:
        marks = logged.get(sent.batch_id, bytearray(len(sent.ids)))
        missing = [i for i in sent.rejected() if not marks[i]]
        if missing:
            soak.problems.add(
                "rejection-log",
                f"batch {sent.batch_id}: {len(missing)} reported rejections not logged, "
                f"rows {missing[:5]}",
            )
    return count


def audit_server_log(log: Path, problems: Problems) -> None:
    for line in log.read_text(errors="replace").splitlines():
        if _SERVER_ERROR.search(line):
            problems.add("server-log", line[:300])


# --- report -----------------------------------------------------------------------------------


def figures(phase: Phase) -> dict[str, float]:
    writers, readers = phase.latencies["writer"], phase.latencies["reader"]
    return {
        "rows/s": phase.rows_stored / phase.seconds,
        "requests/s": phase.requests / phase.seconds,
        "writer p50": median(writers) if writers else float("nan"),
        "writer p99": p99(writers) if writers else float("nan"),
        "reader p50": median(readers) if readers else float("nan"),
        "reader p99": p99(readers) if readers else float("nan"),
    }


def print_phases(phases: list[Phase]) -> None:
    print()
    print(
        f"{'phase':<9} {'writers':>7} {'readers':>7} {'seconds':>7} {'writer req':>10} "
        f"{'reader req':>10} {'req/s':>7} {'rows stored':>11} {'rows/s':>8}  "
        f"{'writer p50 / p99':<21}  {'reader p50 / p99':<21}  client CPU"
    )
    for phase in phases:
        f = figures(phase)
        readers = (
            f"{ms(f['reader p50'])} / {ms(f['reader p99'])}" if phase.latencies["reader"] else "-"
        )
        print(
            f"{phase.name:<9} {phase.writers:>7} {phase.readers:>7} {phase.seconds:>7.1f} "
            f"{len(phase.latencies['writer']):>10,} {len(phase.latencies['reader']):>10,} "
            f"{f['requests/s']:>7.1f} {phase.rows_stored:>11,} {f['rows/s']:>8,.0f}  "
            f"{ms(f['writer p50']) + ' / ' + ms(f['writer p99']):<21}  {readers:<21}  "
            f"{phase.client_cpu / phase.seconds:.0%} of a CPU"
        )


def print_ratio(baseline: Phase, soak: Phase) -> None:
    b, s = figures(baseline), figures(soak)
    print(
        f"soak vs baseline (the same {soak.writers} writers, no readers, "
        f"{baseline.seconds:.1f} s just before): rows/s {s['rows/s']:,.0f} vs "
        f"{b['rows/s']:,.0f} = {s['rows/s'] / b['rows/s']:.2f}x; writer p50 "
        f"{ms(s['writer p50'])} vs {ms(b['writer p50'])} = "
        f"{s['writer p50'] / b['writer p50']:.2f}x"
    )


def print_checks(problems: Problems, counted: dict[str, int], statuses: Counter[int]) -> bool:
    print()
    print("counted: " + ", ".join(f"{name} {value:,}" for name, value in counted.items()))
    print("HTTP statuses: " + ", ".join(f"{code}: {n:,}" for code, n in sorted(statuses.items())))
    print("checks:")
    for key, text in CHECKS.items():
        failures = problems.count[key]
        print(f"  {'FAIL' if failures else 'PASS'}  {key:<13}  {text}: {failures:,} problem(s)")
        for example in problems.examples.get(key, []):
            print(f"          {example}")
    failed = sum(1 for key in CHECKS if problems.count[key])
    print(f"checks: {len(CHECKS) - failed} passed, {failed} failed")
    return failed == 0


# --- main -------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="the soak's length")
    parser.add_argument("--writers", type=int, default=4, help="insertBatch clients")
    parser.add_argument("--readers", type=int, default=4, help="reading clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        help="the baseline's length (writers only): default seconds/6, between 2 and 10",
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_URL,
        help=f"PostgreSQL or sqlite:/// URL, dropped and created again (default {DEFAULT_URL})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    args = parser.parse_args()
    config = dj_database_url.parse(args.database_url)
    if "soak" not in Path(config["NAME"] or "").name:
        parser.error("the database is dropped and created again: its name must contain 'soak'")
    if is_sqlite(args.database_url):  # a relative path is the caller's, not the server's
        args.database_url = f"sqlite:///{Path(config['NAME']).resolve()}"
    if args.writers < 1 or args.readers < 0 or args.seconds <= 0:
        parser.error("at least 1 writer, 0 or more readers, and a positive --seconds")
    if args.baseline_seconds is None:
        args.baseline_seconds = min(10.0, max(2.0, args.seconds / 6))
    return args


def main() -> int:
    args = parse_args()
    db = args.database_url
    engine = "SQLite" if is_sqlite(db) else "PostgreSQL"
    print_header(
        f"soak: {args.writers} writers (overlapping ids) + {args.readers} readers, "
        f"{args.seconds:g} s, gunicorn -w {args.workers}, {engine}",
        db,
    )
    clock = time.monotonic()
    prepare_database(db)
    print(f"database, migrated, with departments and jobs: {time.monotonic() - clock:.1f} s")
    sys.stdout.flush()

    warm_up = Phase("warm-up", args.writers, args.readers)
    baseline = Phase("baseline", args.writers, 0)
    soaked = Phase("soak", args.writers, args.readers)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, ThreadPoolExecutor(1) as pool:
        clock = time.monotonic()
        token = pool.submit(create_token, db, "soak", "admin")  # while gunicorn boots
        log = Path(tmp) / "gunicorn.log"
        with gunicorn(db, args.workers, env={"LOG_LEVEL": "ERROR"}, log_path=log) as url:
            soak = Soak(url, token.result())
            print(f"token and gunicorn up: {time.monotonic() - clock:.1f} s")
            sys.stdout.flush()
            run_phase(soak, warm_up, WARM_UP_SECONDS)  # each worker's first requests are slow
            run_phase(soak, baseline, args.baseline_seconds)
            run_phase(soak, soaked, args.seconds)
        clock = time.monotonic()
        audit_server_log(log, soak.problems)
        counted = audit(db, soak)

    print_phases([baseline, soaked])
    print(
        f"(before them, {warm_up.seconds:.1f} s of warm-up with the soak's clients: "
        f"{warm_up.requests} requests, {warm_up.rows_stored:,} rows stored, audited too)"
    )
    print_ratio(baseline, soaked)
    statuses = warm_up.statuses + baseline.statuses + soaked.statuses
    ok = print_checks(soak.problems, counted, statuses)
    print(f"audit (after the server stopped): {time.monotonic() - clock:.1f} s")
    if ok and not args.keep:
        remove_database(db)
    else:
        print(f"database kept: {db}")
    print_load()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
