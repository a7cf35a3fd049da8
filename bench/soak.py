"""Soak: writers with overlapping ids and readers against gunicorn, then an audit of every row.

4 writers send ``insertBatch`` batches of 1000 rows (batch k: the ids ``500k+1 .. 500k+1000``
shuffled, so each id is in two batches; 1 row in 20 invalid) while 4 readers page
``hiredEmployees``, the rejection log and batches' logs. Once gunicorn has stopped, each of
``CHECKS`` prints PASS or FAIL (a failure exits 1 and keeps the database). Baseline, just before
the soak in the same run: the same writers with no readers, for a sixth of the soak (2 to 10 s).
``--database-url`` (PostgreSQL or ``sqlite:///``) is dropped first: its name must contain soak.
"""

from __future__ import annotations

import random
import re
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Set
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
ROWS, STEP = 1000, 500  # rows per batch; batch k starts at id STEP * k + 1: each id in two
INVALID_EVERY, SCAN_PAGES, EXAMPLES = 20, 3, 5  # pages of 100 rows; problems shown per check
WARM_UP_SECONDS = 1.0
TIMEOUT = (5, 120)  # seconds: connect, read

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

BATCHES_SQL = 'SELECT id, source, "table", received, inserted, rejected, status FROM batches'
FINISHED_SQL = "SELECT id, finished_at FROM batches"
ROWS_SQL = "SELECT id, name, datetime, department_id, job_id FROM hired_employees"
LOG_SQL = 'SELECT batch_id, position, source, "table", row_id, reasons, raw FROM rejections'

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
_SPELLINGS: tuple[Callable[[datetime], str], ...] = (  # writer w's datetimes: _SPELLINGS[w % 4]
    lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
    lambda moment: moment.astimezone(timezone(timedelta(hours=-5))).isoformat(),
    lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S"),
    lambda moment: moment.replace(tzinfo=None).isoformat(),
)
_COLUMNS = {"departmentId": "department_id", "jobId": "job_id"}  # the rejection log's names
_NAME = re.compile(r"Soak w(\d+) b(\d+) #(\d+)")
_SERVER_ERROR = re.compile(r"\[(ERROR|CRITICAL)\]|\"level\": \"(ERROR|CRITICAL)\"|Traceback")


def stored_row(writer: int, seq: int, row_id: int) -> tuple[str, datetime, int, int]:
    """Valid row ``row_id`` of writer ``writer``'s batch ``seq`` as stored (name, UTC datetime,
    department, job): a row stored from the wrong batch, or torn between two, shows."""
    moment = _EPOCH + timedelta(minutes=row_id, seconds=(7 * seq + writer) % 60)
    department, job = 1 + (row_id + writer) % 12, 1 + (row_id + seq) % 183
    return f"Soak w{writer} b{seq} #{row_id}", moment, department, job


def codes(reasons: list[dict[str, Any]]) -> str:
    return ",".join(reason["code"] for reason in reasons)


@dataclass
class Sent:
    """One ``insertBatch``: the rows a writer sent and, once answered, the server's report."""

    writer: int
    seq: int
    ids: list[int]  # in the order sent
    batch_id: str = ""  # uuid hex
    outcome: list[str | None] = field(default_factory=list)  # per row: None (inserted) or codes
    inserted: int = 0

    def bad(self, index: int) -> tuple[str, Any, str] | None:
        """How row ``index`` is invalid (field, value, expected code); None for a valid row."""
        if index % INVALID_EVERY != (self.writer + self.seq) % INVALID_EVERY:
            return None
        return _BAD[(index // INVALID_EVERY) % len(_BAD)]

    def row(self, index: int) -> dict[str, Any]:
        """Row ``index`` as sent, with GraphQL's field names."""
        name, moment, department, job = stored_row(self.writer, self.seq, self.ids[index])
        row = {"id": self.ids[index], "name": name, "departmentId": department, "jobId": job}
        row["datetime"] = _SPELLINGS[self.writer % 4](moment)
        if kind := self.bad(index):
            row[kind[0]] = kind[1]
        return row

    def batch_row(self) -> tuple[Any, ...]:
        """Its row in ``batches`` as reported (id and finish time aside)."""
        rejected = ROWS - self.inserted
        return ("graphql", "hired_employees", ROWS, self.inserted, rejected, "completed")

    def log_entry(self, index: int) -> tuple[Any, ...]:
        """Row ``index``'s entry in ``rejections``: source, table, id, codes, the raw row sent."""
        raw = {_COLUMNS.get(name, name): value for name, value in self.row(index).items()}
        return ("graphql", "hired_employees", self.ids[index], self.outcome[index], raw)


@dataclass
class Phase:
    """One timed phase: its requests' latencies and statuses, the rows its writers stored."""

    name: str
    readers: int
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"writer": [], "reader": []})
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    rows_stored: int = 0
    end: float = 0.0  # time.monotonic() at which its clients stop
    seconds: float = 0.0
    client_cpu: float = 0.0  # CPU seconds this process (the clients) used in the phase

    @property
    def requests(self) -> int:
        return sum(map(len, self.latencies.values())) + self.transport_errors


class Soak:
    """A run's shared state: the server, the running phase, the batches reported, the problems."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token, self.phase = url, token, Phase("none", 0)
        self.problems: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {key: [] for key in CHECKS}
        self.batches: list[Sent] = []
        self.by_id: dict[str, Sent] = {}  # batch id (hex) -> its batch
        self.windows, self.seqs = 0, Counter[int]()
        self.lock = threading.Lock()

    def fail(self, check: str, message: str) -> None:
        """Count a problem of ``check``; keep the first few in full."""
        with self.lock:
            self.problems[check] += 1
            if len(self.examples[check]) < EXAMPLES:
                self.examples[check].append(message)

    def next_batch(self, writer: int) -> Sent:
        """The next window of ids, shuffled, for writer ``writer``."""
        with self.lock:
            window, seq = self.windows, self.seqs[writer]
            self.windows, self.seqs[writer] = window + 1, seq + 1
        ids = list(range(window * STEP + 1, window * STEP + ROWS + 1))
        random.Random(f"{writer}:{seq}").shuffle(ids)
        return Sent(writer, seq, ids)

    def call(self, http: requests.Session, role: str, query: str, **variables: Any) -> Any:
        """POST one GraphQL request; its data, or None (the failure is counted)."""
        phase, body = self.phase, orjson.dumps({"query": query, "variables": variables})
        try:
            seconds, response = bench.clock(http.post, self.url, data=body, timeout=TIMEOUT)
        except requests.RequestException as error:
            with self.lock:
                phase.transport_errors += 1
            self.fail("transport", f"{role}: {type(error).__name__}: {error}")
            return None
        with self.lock:
            phase.latencies[role].append(seconds)
            phase.statuses[response.status_code] += 1
        if response.status_code != 200:
            message = f"{role}: HTTP {response.status_code}: {response.text[:300]}"
            if response.status_code >= 500:
                self.fail("5xx", message)
            self.fail("answers", message)
            return None
        answer = orjson.loads(response.content)
        if answer.get("errors") or not answer.get("data"):
            self.fail("answers", f"{role}: {str(answer)[:300]}")
            return None
        return answer["data"]

    def record(self, sent: Sent, result: dict[str, Any]) -> None:
        """Check a batch's report against what it sent, and keep both. An invalid row must be
        rejected for its fault, a valid one inserted or rejected as a duplicate."""
        where, count = f"batch {result.get('batchId')} (w{sent.writer} b{sent.seq})", 0
        summary = [result[key] for key in ("table", "received", "inserted", "rejected")]
        outcome: list[str | None] = [None] * ROWS
        for rejection in result["rejections"]:
            index, count = rejection["index"], count + 1
            if 0 <= index < ROWS and outcome[index] is None and rejection["id"] == sent.ids[index]:
                outcome[index] = sys.intern(codes(rejection["reasons"]))
            else:
                self.fail("reports", f"{where}: out of range, repeated or not as sent: {rejection}")
        if summary != ["HIRED_EMPLOYEES", ROWS, ROWS - count, count]:
            self.fail("reports", f"{where}: {summary} does not add up to {count} rejections")
        for index, got in enumerate(outcome):
            kind = sent.bad(index)
            if (got != kind[2]) if kind else (got not in (None, "duplicate")):
                self.fail("reports", f"{where}: row {index} ({kind or 'valid'}) reported {got}")
        sent.batch_id, sent.outcome = uuid.UUID(result["batchId"]).hex, outcome
        sent.inserted = result["inserted"]
        with self.lock:
            self.phase.rows_stored += sent.inserted
            self.batches.append(sent)
            self.by_id[sent.batch_id] = sent


# --- writers and readers ----------------------------------------------------------------------


def writer(soak: Soak, number: int) -> None:
    with bench.session(soak.token) as http:
        while time.monotonic() < soak.phase.end:
            sent = soak.next_batch(number)
            rows = [sent.row(index) for index in range(ROWS)]
            if data := soak.call(http, "writer", MUTATION, rows=rows):
                soak.record(sent, data["insertBatch"])


def reader(soak: Soak, number: int) -> None:
    """Half the time pages of employees, else the rejection log (30%) or a batch's log (20%)."""
    rng, log_after = random.Random(number), None
    with bench.session(soak.token) as http:
        while time.monotonic() < soak.phase.end:
            pick = rng.random()
            if pick < 0.5 or not soak.batches:
                scan_employees(soak, http, rng.randint(1, soak.windows * STEP + ROWS))
            elif pick < 0.8:
                log_after = walk_log(soak, http, log_after)
            else:
                read_batch_log(soak, http, rng.choice(soak.batches))


def scan_employees(soak: Soak, http: requests.Session, gte: int) -> None:
    """Up to 3 pages of hiredEmployees from id ``gte``: ids ascending, each row whole."""
    after, last = None, gte - 1
    for page in range(SCAN_PAGES):
        data = soak.call(http, "reader", EMPLOYEES, after=after, gte=gte, count=page == 0)
        if data is None:
            return
        for node in data["hiredEmployees"]["nodes"]:
            if node["id"] <= last:
                soak.fail("readers", f"hiredEmployees: id {node['id']} after {last}")
            last = node["id"]
            match = _NAME.fullmatch(node["name"])
            if match is None or int(match[3]) != node["id"]:
                soak.fail("readers", f"hiredEmployees: a row no writer sent: {node}")
                continue
            name, moment, department, job = stored_row(int(match[1]), int(match[2]), node["id"])
            seen = (node["name"], datetime.fromisoformat(node["datetime"]), node["departmentId"])
            seen += (node["jobId"], node["department"]["id"], node["job"]["id"])
            if seen != (name, moment, department, job, department, job):
                soak.fail("readers", f"hiredEmployees: a torn row: {node}")
        page_info = data["hiredEmployees"]["pageInfo"]
        if not page_info["hasNextPage"] or time.monotonic() >= soak.phase.end:
            return
        after = page_info["endCursor"]


def walk_log(soak: Soak, http: requests.Session, after: str | None) -> str | None:
    """The next page of the rejection log; each entry of a known batch is as it reported."""
    if (data := soak.call(http, "reader", LOG, after=after)) is None:
        return after
    last = -1
    for node in data["rejections"]["nodes"]:
        if int(node["id"]) <= last:
            soak.fail("readers", f"rejections: entry {node['id']} after {last}")
        last = int(node["id"])
        if sent := soak.by_id.get(uuid.UUID(node["batchId"]).hex):
            index = int(node["index"])  # a BigInt: a string of digits
            reported = (sent.ids[index], sent.outcome[index]) if index < ROWS else None
            if (node["rowId"], codes(node["reasons"])) != reported:
                soak.fail("readers", f"rejections: {node} is not {reported}")
    page_info = data["rejections"]["pageInfo"]
    return page_info["endCursor"] if page_info["hasNextPage"] else None


def read_batch_log(soak: Soak, http: requests.Session, sent: Sent) -> None:
    """``rejections(batchId:)`` of a reported batch equals its report."""
    seen: dict[int, tuple[int, str]] = {}
    batch, after = str(uuid.UUID(sent.batch_id)), None
    while True:
        if (data := soak.call(http, "reader", BATCH_LOG, batch=batch, after=after)) is None:
            return
        for node in data["rejections"]["nodes"]:
            seen[int(node["index"])] = (node["rowId"], codes(node["reasons"]))
        if not data["rejections"]["pageInfo"]["hasNextPage"]:
            break
        after = data["rejections"]["pageInfo"]["endCursor"]
    reported = {i: (sent.ids[i], got) for i, got in enumerate(sent.outcome) if got is not None}
    if seen != reported:
        missing, extra = len(reported.keys() - seen.keys()), len(seen.keys() - reported.keys())
        message = f"{missing} missing, {extra} extra, {len(seen)} read"
        soak.fail("readers", f"batch {sent.batch_id}: log differs from the report ({message})")


def run_phase(soak: Soak, phase: Phase, seconds: float) -> None:
    """Run the phase's writers and readers together for ``seconds``; re-raise any crash."""
    started, cpu = time.monotonic(), time.process_time()
    soak.phase, phase.end = phase, started + seconds
    with ThreadPoolExecutor(WRITERS + phase.readers) as pool:
        clients = [pool.submit(writer, soak, n) for n in range(WRITERS)]
        clients += [pool.submit(reader, soak, n) for n in range(phase.readers)]
        for client in clients:
            client.result()
    phase.seconds, phase.client_cpu = time.monotonic() - started, time.process_time() - cpu


# --- the audit, once the server has stopped ---------------------------------------------------


def select(conn: Any, sql: str) -> Any:
    """``sql``'s rows, streamed: through a server-side cursor on PostgreSQL."""
    if isinstance(conn, sqlite3.Connection):
        return conn.execute(sql)
    cur = conn.cursor(name=f"soak_{uuid.uuid4().hex}")
    cur.itersize = 20_000
    cur.execute(sql)
    return cur


def as_utc(value: Any) -> datetime:
    """A timestamp from either database (SQLite keeps naive UTC text) as an aware UTC datetime."""
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def hex_id(value: Any) -> str:
    return uuid.UUID(str(value)).hex


def compare_table(
    soak: Soak, check: str, rows: Iterable[tuple[Any, Any]], expect: Callable, keys: Set[Any]
) -> int:
    """Each ``(key, row)`` of a table is there once and equals ``expect(key)`` (None: not
    reported), and each of ``keys`` is there; else a problem of ``check``. The number of rows."""
    seen: set[Any] = set()
    for key, row in rows:
        if key in seen:
            soak.fail(check, f"{key}: stored twice: {row}")
        elif (expected := expect(key)) is None:
            soak.fail(check, f"{key}: stored, not reported: {row}")
        elif row != expected:
            soak.fail(check, f"{key}: stored {row}, reported {expected}")
        seen.add(key)
    for key in sorted(keys - seen):
        soak.fail(check, f"{key}: reported (or sent valid), not stored")
    return len(seen)


def audit(db: str, soak: Soak) -> dict[str, int]:
    """The tables hold exactly what was reported, as it was sent; what was counted."""
    inserter: dict[int, Sent] = {}  # id -> the batch that reported inserting it
    valid_sent: set[int] = set()
    rejected: set[tuple[str, int]] = set()  # (batch, index) of each reported rejection
    for sent in soak.batches:
        for index, (row_id, got) in enumerate(zip(sent.ids, sent.outcome, strict=True)):
            if not sent.bad(index):
                valid_sent.add(row_id)
            if got is not None:
                rejected.add((sent.batch_id, index))
            elif (other := inserter.setdefault(row_id, sent)) is not sent:
                message = f"id {row_id} reported inserted by {other.batch_id} and {sent.batch_id}"
                soak.fail("stored-once", message)
    by_id, conn = soak.by_id, bench.connect(db)
    try:
        compare_table(
            soak,
            "batches",
            ((hex_id(key), tuple(row)) for key, *row in select(conn, BATCHES_SQL)),
            lambda key: by_id[key].batch_row() if key in by_id else None,
            by_id.keys(),
        )
        stored = compare_table(
            soak,
            "stored-once",
            ((i, (name, as_utc(at), dep, job)) for i, name, at, dep, job in select(conn, ROWS_SQL)),
            lambda i: stored_row(sent.writer, sent.seq, i) if (sent := inserter.get(i)) else None,
            inserter.keys() | valid_sent,
        )
        logged = compare_table(
            soak,
            "rejection-log",
            (
                ((hex_id(key), index), (*rest, codes(as_json(reasons)), as_json(raw)))
                for key, index, *rest, reasons, raw in select(conn, LOG_SQL)
            ),
            lambda key: by_id[key[0]].log_entry(key[1]) if key in rejected else None,
            rejected,
        )
        finished = {hex_id(key): as_utc(at) for key, at in select(conn, FINISHED_SQL)}
    finally:
        conn.close()
    duplicates = 0
    for sent in soak.batches:
        for index in (i for i, got in enumerate(sent.outcome) if got == "duplicate"):
            duplicates += 1
            first = inserter.get(sent.ids[index])
            where = f"batch {sent.batch_id} row {index} (id {sent.ids[index]})"
            if first is None or first is sent:
                by = "no batch" if first is None else "this batch"
                soak.fail("duplicates", f"{where}: reported inserted by {by}")
                continue
            inserted_at, rejected_at = finished.get(first.batch_id), finished.get(sent.batch_id)
            if inserted_at and rejected_at and not inserted_at < rejected_at:
                soak.fail("duplicates", f"{where}: {first.batch_id} inserted it, finished later")
    return {
        "valid ids sent": len(valid_sent),
        "ids stored": stored,
        "duplicate rejections": duplicates,
        "rejection log entries": logged,
    }


# --- report -----------------------------------------------------------------------------------


def figures(phase: Phase) -> dict[str, float]:
    """rows/s, requests/s and each role's latency p50 and p99 (NaN without requests)."""
    found = {"rows/s": phase.rows_stored / phase.seconds}
    found["requests/s"] = phase.requests / phase.seconds
    for role, samples in phase.latencies.items():
        found[f"{role} p50"] = bench.median(samples) if samples else float("nan")
        found[f"{role} p99"] = bench.p99(samples) if samples else float("nan")
    return found


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
    bench.compare("soak, rows/s", s["rows/s"], b["rows/s"], "rows/s")
    bench.compare("soak, writer p50", s["writer p50"], b["writer p50"], "ms")


def print_checks(soak: Soak, counted: dict[str, int], statuses: Counter[int]) -> bool:
    """Each check, PASS or FAIL with its first problems; whether all passed."""
    print("\ncounted: " + ", ".join(f"{name} {value:,}" for name, value in counted.items()))
    print("HTTP statuses: " + ", ".join(f"{code}: {n:,}" for code, n in sorted(statuses.items())))
    print("checks:")
    for key, text in CHECKS.items():
        failures = soak.problems[key]
        print(f"  {'FAIL' if failures else 'PASS'}  {key:<13}  {text}: {failures:,} problem(s)")
        for example in soak.examples[key]:
            print(f"          {example}")
    failed = sum(1 for key in CHECKS if soak.problems[key])
    print(f"checks: {len(CHECKS) - failed} passed, {failed} failed")
    return failed == 0


def main() -> None:
    args = bench.options(__doc__, seconds=60.0, database_url=bench.database("soak"))
    db = args.database_url
    if "soak" not in Path(urlsplit(db).path).name:
        raise SystemExit("the database is dropped and created again: its name must contain soak")
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
                    soak.fail("server-log", line[:300])
            counted = audit(db, soak)

        warm_up, baseline, soaked = phases
        print_phases(baseline, soaked)
        print(
            f"(before them, {warm_up.seconds:.1f} s of warm-up with the soak's clients: "
            f"{warm_up.requests} requests, {warm_up.rows_stored:,} rows stored, audited too)"
        )
        ok = print_checks(soak, counted, sum((phase.statuses for phase in phases), Counter()))
        print(f"audit (after the server stopped): {time.monotonic() - clock:.1f} s")
        if not ok:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
