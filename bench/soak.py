"""Soak: writers with overlapping ids and readers against gunicorn, then an audit of every row.

Run: ``.venv/bin/python bench/soak.py`` (``--seconds N``, default 60; PostgreSQL database
``roster_bench_soak``). On SQLite: ``--database-url sqlite:////tmp/soak/roster_soak.sqlite3``.
The database is dropped and created again, so its name must contain ``soak``.

4 writers send ``insertBatch`` mutations of 1000 rows. Batch k takes the ids ``500k+1 ..
500k+1000``, shuffled, so each id is sent by two batches, most often at once; 1 row in 20 is
invalid; a row's name says which writer and batch sent it (``Soak w2 b17 #1234``). 4 readers
page ``hiredEmployees``, walk the rejection log, and read reported batches' logs. Once gunicorn
has stopped, each of ``CHECKS`` is printed PASS or FAIL (exit 1 and the database kept if one
fails).

Baseline, measured in the same run just before the soak (after 1 s of warm-up at the soak's
load): the same writers with no readers, for a sixth of the soak (2 to 10 s). The soak's rows/s
(valid rows stored per second) and writer latency are printed beside it, with the ratios.
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
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import _common as bench
import orjson
import requests

WRITERS = READERS = 4
ROWS = 1000  # rows per batch
STEP = 500  # batch k starts at id STEP * k + 1: each id is in two batches
INVALID_EVERY = 20
SCAN_PAGES = 3  # of 100 rows
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

# Every check, by the key it is printed with: tests/test_soak.py parses these lines.
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
_BAD = [  # the kinds of invalid row, in turn: GraphQL field, value, expected reason code
    ("datetime", "2021-02-30T12:00:00Z", "invalid_datetime"),
    ("departmentId", 99, "unknown_reference"),
    ("jobId", 9999, "unknown_reference"),
    ("name", "   ", "required"),
]
_COLUMNS = {"departmentId": "department_id", "jobId": "job_id"}  # the rejection log's names
_NAME = re.compile(r"Soak w(\d+) b(\d+) #(\d+)")
_SERVER_ERROR = re.compile(r"\[(ERROR|CRITICAL)\]|\"level\": \"(ERROR|CRITICAL)\"|Traceback")


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
    ids: list[int]  # in the order sent
    batch_id: str = ""  # uuid hex
    outcome: list[str | None] = field(default_factory=list)
    """Per row: None if reported inserted, else its reason codes joined by commas."""
    inserted: int = 0

    def bad(self, index: int) -> tuple[str, Any, str] | None:
        """The kind of invalid row at ``index`` (field, value, code), or None for a valid row."""
        if index % INVALID_EVERY != (self.writer + self.seq) % INVALID_EVERY:
            return None
        return _BAD[(index // INVALID_EVERY) % len(_BAD)]

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
        if kind := self.bad(index):
            row[kind[0]] = kind[1]
        return row

    def rejected(self) -> dict[int, str]:
        """The reported rejections: index -> reason codes."""
        return {i: codes for i, codes in enumerate(self.outcome) if codes is not None}


class Problems:
    """Failures per check: how many, and the first few in full."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def add(self, check: str, message: str) -> None:
        with self._lock:
            self.count[check] += 1
            if len(shown := self.examples.setdefault(check, [])) < EXAMPLES:
                shown.append(message)


@dataclass
class Phase:
    """One timed phase: its requests, their latencies, and what its writers stored."""

    name: str
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
        self.url, self.token = url, token
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
            window, seq = self._windows, self._seqs[writer]
            self._windows += 1
            self._seqs[writer] += 1
        ids = list(range(window * STEP + 1, window * STEP + ROWS + 1))
        random.Random(f"{writer}:{seq}").shuffle(ids)
        return Sent(writer=writer, seq=seq, ids=ids)

    def call(
        self, http: requests.Session, phase: Phase, role: str, query: str, variables: dict[str, Any]
    ) -> dict[str, Any] | None:
        """POST one GraphQL request; its data, or None (the failure is counted)."""
        body = orjson.dumps({"query": query, "variables": variables})
        started = time.perf_counter()
        try:
            response = http.post(self.url, data=body, timeout=TIMEOUT)
        except requests.RequestException as error:
            with self._lock:
                phase.transport_errors += 1
            self.problems.add("transport", f"{role}: {type(error).__name__}: {error}")
            return None
        with self._lock:
            phase.latencies[role].append(time.perf_counter() - started)
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
        where, add = (
            f"batch {result.get('batchId')} (w{sent.writer} b{sent.seq})",
            self.problems.add,
        )
        received, count = len(sent.ids), len(result["rejections"])
        if (result["table"], result["received"]) != ("HIRED_EMPLOYEES", received):
            add("reports", f"{where}: table/received {result['table']}, {received}")
        if result["inserted"] + count != received or result["rejected"] != count:
            add("reports", f"{where}: counts {result} do not add up")
        outcome: list[str | None] = [None] * received
        for rejection in result["rejections"]:
            index, codes = rejection["index"], ",".join(r["code"] for r in rejection["reasons"])
            if not 0 <= index < received or outcome[index] is not None:
                add("reports", f"{where}: index {index} out of range or repeated")
                continue
            outcome[index] = sys.intern(codes)
            if rejection["id"] != sent.ids[index]:
                add("reports", f"{where}: row {index} has id {sent.ids[index]}, not {rejection}")
            expected = kind[2] if (kind := sent.bad(index)) else "duplicate"
            if codes != expected:
                add("reports", f"{where}: row {index}: {codes}, not {expected}")
        for index, codes in enumerate(outcome):
            if codes is None and sent.bad(index):
                add("reports", f"{where}: invalid row {index} reported inserted")
        sent.batch_id, sent.outcome = uuid.UUID(result["batchId"]).hex, outcome
        sent.inserted = result["inserted"]
        with self._lock:
            phase.batches.append(sent)
            self.batches.append(sent)
            self.by_id[sent.batch_id] = sent


# --- writers and readers ----------------------------------------------------------------------


def writer(soak: Soak, phase: Phase, number: int, deadline: Callable[[], float]) -> None:
    with bench.session(soak.token) as http:
        while time.monotonic() < deadline():
            sent = soak.next_batch(number)
            rows = [sent.row(index) for index in range(len(sent.ids))]
            if data := soak.call(http, phase, "writer", MUTATION, {"rows": rows}):
                soak.record(sent, phase, data["insertBatch"])


def reader(soak: Soak, phase: Phase, number: int, deadline: Callable[[], float]) -> None:
    """Half the time pages of employees, else the rejection log (30%) or a batch's log (20%)."""
    rng, log_after = random.Random(number), None
    with bench.session(soak.token) as http:
        while time.monotonic() < deadline():
            pick = rng.random()
            if pick < 0.5 or not soak.batches:
                scan_employees(soak, phase, http, rng, deadline)
            elif pick < 0.8:
                log_after = walk_log(soak, phase, http, log_after)
            else:
                read_batch_log(soak, phase, http, rng.choice(soak.batches))


def scan_employees(
    soak: Soak,
    phase: Phase,
    http: requests.Session,
    rng: random.Random,
    deadline: Callable[[], float],
) -> None:
    """Up to 3 pages of hiredEmployees from a random id: ids ascending, each row whole."""
    gte = rng.randint(1, soak.highest_id())
    after, last = None, gte - 1
    for page in range(SCAN_PAGES):
        variables = {"after": after, "gte": gte, "count": page == 0}
        if (data := soak.call(http, phase, "reader", EMPLOYEES, variables)) is None:
            return
        connection = data["hiredEmployees"]
        for node in connection["nodes"]:
            if node["id"] <= last:
                soak.problems.add("readers", f"hiredEmployees: id {node['id']} after {last}")
            last = node["id"]
            match = _NAME.fullmatch(node["name"])
            if match is None or int(match[3]) != node["id"]:
                soak.problems.add("readers", f"hiredEmployees: a row no writer sent: {node}")
                continue
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
        if not connection["pageInfo"]["hasNextPage"] or time.monotonic() >= deadline():
            return
        after = connection["pageInfo"]["endCursor"]


def walk_log(soak: Soak, phase: Phase, http: requests.Session, after: str | None) -> str | None:
    """The next page of the rejection log; each entry of a known batch is as it reported."""
    if (data := soak.call(http, phase, "reader", LOG, {"after": after})) is None:
        return after
    last = -1
    for node in data["rejections"]["nodes"]:
        if int(node["id"]) <= last:
            soak.problems.add("readers", f"rejections: entry {node['id']} after {last}")
        last = int(node["id"])
        if sent := soak.by_id.get(uuid.UUID(node["batchId"]).hex):
            index, codes = node["index"], ",".join(r["code"] for r in node["reasons"])
            reported = (sent.ids[index], sent.outcome[index]) if index < len(sent.ids) else None
            if (node["rowId"], codes) != reported:
                soak.problems.add("readers", f"rejections: {node} is not {reported}")
    page = data["rejections"]["pageInfo"]
    return page["endCursor"] if page["hasNextPage"] else None


def read_batch_log(soak: Soak, phase: Phase, http: requests.Session, sent: Sent) -> None:
    """``rejections(batchId:)`` of a reported batch equals its report."""
    seen: dict[int, tuple[int, str]] = {}
    after = None
    while True:
        variables = {"batch": str(uuid.UUID(sent.batch_id)), "after": after}
        if (data := soak.call(http, phase, "reader", BATCH_LOG, variables)) is None:
            return
        for node in data["rejections"]["nodes"]:
            seen[node["index"]] = (node["rowId"], ",".join(r["code"] for r in node["reasons"]))
        if not data["rejections"]["pageInfo"]["hasNextPage"]:
            break
        after = data["rejections"]["pageInfo"]["endCursor"]
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
    barrier = threading.Barrier(WRITERS + phase.readers + 1)
    crashes: list[BaseException] = []

    def run(work: Callable[..., None], number: int) -> None:
        barrier.wait()
        try:
            work(soak, phase, number, lambda: end[0])
        except BaseException as error:
            crashes.append(error)

    threads = [threading.Thread(target=run, args=(writer, n)) for n in range(WRITERS)]
    threads += [threading.Thread(target=run, args=(reader, n)) for n in range(phase.readers)]
    for thread in threads:
        thread.start()
    started, cpu = time.monotonic(), time.process_time()
    end[0] = started + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    phase.seconds, phase.client_cpu = time.monotonic() - started, time.process_time() - cpu
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
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def audit(db: str, soak: Soak) -> dict[str, int]:
    """Compare the tables with the reports; return what was counted."""
    problems = soak.problems
    inserter: dict[int, Sent] = {}  # id -> the batch that reported inserting it
    valid_sent: set[int] = set()
    for sent in soak.batches:
        for index, row_id in enumerate(sent.ids):
            if not sent.bad(index):
                valid_sent.add(row_id)
            if sent.outcome[index] is not None:
                continue
            if (other := inserter.setdefault(row_id, sent)) is not sent:
                message = f"id {row_id} reported inserted by {other.batch_id} and {sent.batch_id}"
                problems.add("stored-once", message)
    conn = bench.connect(db)
    try:
        finished = audit_batches(conn, soak)
        stored = audit_employees(conn, soak, inserter, valid_sent)
        logged = audit_rejections(conn, soak)
    finally:
        conn.close()

    duplicates = 0
    for sent in soak.batches:
        for index in (i for i, codes in enumerate(sent.outcome) if codes == "duplicate"):
            duplicates += 1
            row_id, first = sent.ids[index], inserter.get(sent.ids[index])
            where = f"batch {sent.batch_id} row {index} (id {row_id})"
            if first is None:
                problems.add("duplicates", f"{where}: no batch reported inserting the id")
            elif first is sent:
                problems.add("duplicates", f"{where}: the batch also reported inserting it")
            else:
                inserted_at, rejected_at = finished.get(first.batch_id), finished.get(sent.batch_id)
                if inserted_at and rejected_at and not inserted_at < rejected_at:
                    message = f"{where}: {first.batch_id} inserted it, finished later"
                    problems.add("duplicates", message)
    return {
        "valid ids sent": len(valid_sent),
        "ids stored": stored,
        "duplicate rejections": duplicates,
        "rejection log entries": logged,
    }


def audit_batches(conn: Any, soak: Soak) -> dict[str, datetime]:
    """``batches``: one completed row per reported batch, with its counts; when each finished."""
    finished: dict[str, datetime] = {}
    sql = (
        'SELECT id, source, "table", received, inserted, rejected, status, finished_at FROM batches'
    )
    for batch_id, *row, at in fetch(conn, sql):
        key = uuid.UUID(str(batch_id)).hex
        if (sent := soak.by_id.get(key)) is None:
            soak.problems.add("batches", f"batch {key} {row}: no writer reported it")
            continue
        expected = [
            "graphql",
            "hired_employees",
            len(sent.ids),
            sent.inserted,
            len(sent.ids) - sent.inserted,
            "completed",
        ]
        if row != expected:
            soak.problems.add("batches", f"batch {key}: {row}, reported {expected}")
        finished[key] = as_utc(at)
    for key in soak.by_id.keys() - finished.keys():
        soak.problems.add("batches", f"batch {key}: reported, not in the table")
    return finished


def audit_employees(conn: Any, soak: Soak, inserter: dict[int, Sent], valid_sent: set[int]) -> int:
    """``hired_employees``: exactly the ids reported inserted, each as its batch sent it."""
    seen = set()
    sql = "SELECT id, name, datetime, department_id, job_id FROM hired_employees"
    for row_id, name, moment, department, job in fetch(conn, sql):
        seen.add(row_id)
        if (sent := inserter.get(row_id)) is None:
            soak.problems.add("stored-once", f"id {row_id} ({name}) stored, no batch reported it")
            continue
        expected = stored_row(sent.writer, sent.seq, row_id)
        if (name, as_utc(moment), department, job) != expected:
            soak.problems.add(
                "stored-once",
                f"id {row_id}: stored {(name, moment, department, job)}, "
                f"batch {sent.batch_id} sent {expected}",
            )
    for row_id in sorted((inserter.keys() | valid_sent) - seen):
        soak.problems.add("stored-once", f"id {row_id} (sent valid) is not stored")
    return len(seen)


def audit_rejections(conn: Any, soak: Soak) -> int:
    """``rejections``: exactly the reported rejections, each with the raw row sent."""
    logged: set[tuple[str, int]] = set()
    count = 0
    sql = 'SELECT batch_id, source, "table", position, row_id, raw, reasons FROM rejections'
    for batch_id, source, table, index, row_id, raw, reasons in fetch(conn, sql):
        count += 1
        key = uuid.UUID(str(batch_id)).hex
        where = f"rejection of batch {key} row {index}"
        if (sent := soak.by_id.get(key)) is None:
            soak.problems.add("rejection-log", f"{where}: no writer reported the batch")
            continue
        if not 0 <= index < len(sent.ids) or sent.outcome[index] is None:
            soak.problems.add("rejection-log", f"{where}: the batch did not report it rejected")
            continue
        if (key, index) in logged:
            soak.problems.add("rejection-log", f"{where}: logged twice")
        logged.add((key, index))
        codes = ",".join(reason["code"] for reason in as_json(reasons))
        sent_raw = {_COLUMNS.get(name, name): value for name, value in sent.row(index).items()}
        seen = (source, table, row_id, codes, as_json(raw))
        expected = ("graphql", "hired_employees", sent.ids[index], sent.outcome[index], sent_raw)
        if seen != expected:
            soak.problems.add("rejection-log", f"{where}: {seen}, reported {expected}")
    for sent in soak.batches:
        if missing := [i for i in sent.rejected() if (sent.batch_id, i) not in logged]:
            soak.problems.add(
                "rejection-log",
                f"batch {sent.batch_id}: {len(missing)} reported "
                f"rejections not logged, rows {missing[:5]}",
            )
    return count


# --- report -----------------------------------------------------------------------------------


def figures(phase: Phase) -> dict[str, float]:
    writers, readers = phase.latencies["writer"], phase.latencies["reader"]
    return {
        "rows/s": phase.rows_stored / phase.seconds,
        "requests/s": phase.requests / phase.seconds,
        "writer p50": bench.median(writers) if writers else float("nan"),
        "writer p99": bench.p99(writers) if writers else float("nan"),
        "reader p50": bench.median(readers) if readers else float("nan"),
        "reader p99": bench.p99(readers) if readers else float("nan"),
    }


def print_phases(baseline: Phase, soaked: Phase) -> None:
    print(
        f"\n{'phase':<9} {'writers':>7} {'readers':>7} {'seconds':>7} {'writer req':>10} "
        f"{'reader req':>10} {'req/s':>7} {'rows stored':>11} {'rows/s':>8}  "
        f"{'writer p50 / p99':<21}  {'reader p50 / p99':<21}  client CPU"
    )
    for phase in (baseline, soaked):
        f, ms = figures(phase), bench.ms
        readers = f"{ms(f['reader p50'])} / {ms(f['reader p99'])}" if phase.readers else "-"
        print(
            f"{phase.name:<9} {WRITERS:>7} {phase.readers:>7} {phase.seconds:>7.1f} "
            f"{len(phase.latencies['writer']):>10,} {len(phase.latencies['reader']):>10,} "
            f"{f['requests/s']:>7.1f} {phase.rows_stored:>11,} {f['rows/s']:>8,.0f}  "
            f"{ms(f['writer p50']) + ' / ' + ms(f['writer p99']):<21}  {readers:<21}  "
            f"{phase.client_cpu / phase.seconds:.0%} of a CPU"
        )
    b, s = figures(baseline), figures(soaked)
    print(
        f"soak vs baseline (the same {WRITERS} writers, no readers, {baseline.seconds:.1f} s "
        f"just before): rows/s {s['rows/s']:,.0f} vs {b['rows/s']:,.0f} = "
        f"{s['rows/s'] / b['rows/s']:.2f}x; writer p50 {bench.ms(s['writer p50'])} vs "
        f"{bench.ms(b['writer p50'])} = {s['writer p50'] / b['writer p50']:.2f}x"
    )


def print_checks(problems: Problems, counted: dict[str, int], statuses: Counter[int]) -> bool:
    print("\ncounted: " + ", ".join(f"{name} {value:,}" for name, value in counted.items()))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="the soak's length")
    parser.add_argument(
        "--database-url",
        default=bench.database("soak"),
        help="a PostgreSQL database name or URL, or a sqlite:/// URL",
    )
    args = parser.parse_args()
    db = args.database_url
    if "soak" not in Path(urlsplit(db).path).name:
        parser.error("the database is dropped and created again: its name must contain 'soak'")
    engine = "SQLite" if bench.is_sqlite(db) else "PostgreSQL"
    title = f"soak: {WRITERS} writers (overlapping ids) + {READERS} readers, {args.seconds:g} s"
    with bench.run(f"{title}, gunicorn -w 2, {engine}", db):
        clock = time.monotonic()
        bench.prepare_database(db)
        print(f"database, migrated, with departments and jobs: {time.monotonic() - clock:.1f} s")
        phases = [Phase("warm-up", READERS), Phase("baseline", 0), Phase("soak", READERS)]
        seconds = [WARM_UP_SECONDS, min(10.0, max(2.0, args.seconds / 6)), args.seconds]
        with tempfile.TemporaryDirectory(prefix="soak-") as tmp, ThreadPoolExecutor(1) as pool:
            clock, log = time.monotonic(), Path(tmp) / "gunicorn.log"
            token = pool.submit(bench.create_token, db, "soak", "admin")  # while gunicorn boots
            with bench.gunicorn(db, log=log, LOG_LEVEL="ERROR") as url:  # a WARNING per rejection
                soak = Soak(url, token.result())
                print(f"token and gunicorn up: {time.monotonic() - clock:.1f} s", flush=True)
                for phase, length in zip(phases, seconds, strict=True):
                    run_phase(soak, phase, length)  # warm-up: each worker's first requests are slow
            clock = time.monotonic()
            for line in log.read_text(errors="replace").splitlines():
                if _SERVER_ERROR.search(line):
                    soak.problems.add("server-log", line[:300])
            counted = audit(db, soak)

        warm_up, baseline, soaked = phases
        print_phases(baseline, soaked)
        print(
            f"(before them, {warm_up.seconds:.1f} s of warm-up with the soak's clients: "
            f"{warm_up.requests} requests, {warm_up.rows_stored:,} rows stored, audited too)"
        )
        statuses = sum((phase.statuses for phase in phases), Counter())
        ok = print_checks(soak.problems, counted, statuses)
        print(f"audit (after the server stopped): {time.monotonic() - clock:.1f} s")
        if not ok:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
