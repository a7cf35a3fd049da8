"""Benchmark: Roster beside PostGraphile 4 (stock options) on the same database (issue 15).

One database of ``--rows`` hires (``metrics.FILL``), built once and kept for the next run. Roster
serves it with gunicorn ``-w 2``; PostGraphile 4, installed by npm into ``bench/peer/`` at the
lockfile's versions, serves the same tables with its stock options. One client, interleaved
rounds, medians. Rows (Roster's median against PostGraphile's, the ratio, the target): the first
page of 1000 hires with department and job, the same page of department 5, ``totalCount`` over
all hires, and the departments with 100 hires each (reads: <= 1.0x); 1000 hires inserted in one
request, Roster's ``insertBatch`` against 1000 aliased ``createHiredEmployee`` (<= 0.2x). Both
servers' answers are compared before the clock starts, and every insert is counted in the table.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple

import _common as bench
import requests
from insert_batch import MUTATION
from metrics import FILL

PEER = bench.ROOT / "bench" / "peer"
POSTGRAPHILE = PEER / "node_modules" / ".bin" / "postgraphile"
# 1000 aliased createHiredEmployee with 7-digit ids are 189 kB: over the stock 100kB limit
BODY_LIMIT = "1MB"
BATCH, READ_TARGET, INSERT_TARGET = 1000, 1.0, 0.2
_ROW = "id name datetime department { id department } job { id job }"
_PEER_ROW = "id name datetime departmentByDepartmentId { id department } jobByJobId { id job }"


class Row(NamedTuple):
    """One row of the table: a query to each server, the field answered, the target ratio."""

    label: str
    roster: str
    roster_field: str
    peer: str
    peer_field: str
    target: float


READS = [
    Row(
        "first page, 1000 hires with department and job",
        f"{{ hiredEmployees(first: 1000) {{ nodes {{ {_ROW} }} }} }}",
        "hiredEmployees",
        "{ allHiredEmployees(first: 1000, orderBy: PRIMARY_KEY_ASC) "
        f"{{ nodes {{ {_PEER_ROW} }} }} }}",
        "allHiredEmployees",
        READ_TARGET,
    ),
    Row(
        "the same, department 5",
        f"{{ hiredEmployees(first: 1000, filter: {{departmentId: 5}}) {{ nodes {{ {_ROW} }} }} }}",
        "hiredEmployees",
        "{ allHiredEmployees(first: 1000, orderBy: PRIMARY_KEY_ASC, condition: {departmentId: 5}) "
        f"{{ nodes {{ {_PEER_ROW} }} }} }}",
        "allHiredEmployees",
        READ_TARGET,
    ),
    Row(
        "totalCount, all hires",
        "{ hiredEmployees(first: 0) { totalCount } }",
        "hiredEmployees",
        "{ allHiredEmployees { totalCount } }",
        "allHiredEmployees",
        READ_TARGET,
    ),
    Row(
        "departments, 100 hires each",
        "{ departments { nodes { id hiredEmployees(first: 100) { nodes { id name } } } } }",
        "departments",
        "{ allDepartments { nodes { id hiredEmployeesByDepartmentId(first: 100) "
        "{ nodes { id name } } } } }",
        "allDepartments",
        READ_TARGET,
    ),
]
READ = {row.label: row for row in READS}
INSERT = f"insert {BATCH} hires, one request"
ORDER = [*READ, INSERT]
"""A round's rows. The inserts come last, so that neither server's reads follow the other's
insert more often than its own: a read right after PostGraphile's insert (a second of Node.js
work) took 1.5x its time alone on either server, and with the insert before the traversal,
Roster's traversal followed it in every other round and PostGraphile's never did."""


# --- PostGraphile ----------------------------------------------------------------------------


def install() -> None:
    """PostGraphile at the lockfile's versions in ``bench/peer/node_modules`` (``npm ci``), unless
    the pinned version is already there. A missing npm is an error, as for the HTTP audit."""
    pinned = json.loads((PEER / "package.json").read_text())["dependencies"]["postgraphile"]
    installed = PEER / "node_modules" / "postgraphile" / "package.json"
    if installed.exists() and json.loads(installed.read_text())["version"] == pinned:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("bench/peer.py needs Node.js and npm (apt-get install npm)")
    print(f"installing postgraphile {pinned} into {PEER.relative_to(bench.ROOT)} (npm ci)")
    cmd = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    done = subprocess.run(cmd, cwd=PEER, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"npm ci failed in {PEER}:\n{done.stdout}{done.stderr}")


@contextlib.contextmanager
def postgraphile(db: str) -> Iterator[str]:
    """PostGraphile's stock server on ``db`` (plus the address, no GraphiQL, and a body limit
    that takes 1000 mutations); yield its /graphql URL once it answers; always stop it."""
    port = bench.free_port()
    url = f"http://127.0.0.1:{port}/graphql"
    cmd = [
        str(POSTGRAPHILE),
        *("--connection", bench.app_env(db)["DATABASE_URL"]),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--disable-graphiql", "--body-size-limit", BODY_LIMIT),
    ]
    print(f"PostGraphile: {' '.join(cmd[1:])}", flush=True)
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            cmd, cwd=PEER, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )

        def output() -> str:
            log.seek(0)
            return log.read()

        with bench.serving(proc, url, "PostGraphile", output):
            yield url


# --- the database, built once ----------------------------------------------------------------


def build_once(db: str, rows: int) -> None:
    """``db`` with ``rows`` hires: kept from an earlier run when it holds them (the hires a run
    inserted are deleted again), else made afresh. A finished build leaves its mark in the
    database's comment, so a build that stopped halfway is never taken for one."""
    mark = f"bench/peer.py: {rows} hires"
    found = bench.sql(
        db,
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %(db)s",
        {"db": db},
        server=True,
    )
    if found and found[0][0] == mark:
        bench.manage(bench.app_env(db), "migrate", "--noinput", "-v", "0")
        remove_inserted(db, rows)
        if bench.sql(db, "SELECT count(*) FROM hired_employees")[0][0] == rows:
            print(f"database {db} kept from an earlier run: {rows:,} hires")
            return
    bench.prepare_database(db)
    bench.fill_unindexed(db, FILL, rows)
    bench.sql(db, f"COMMENT ON DATABASE \"{db}\" IS '{mark}'")


def remove_inserted(db: str, rows: int) -> None:
    """Delete the hires past the first ``rows`` (the summary's triggers follow), then vacuum."""
    if bench.sql(db, "SELECT max(id) > %(rows)s FROM hired_employees", {"rows": rows})[0][0]:
        bench.sql(db, "DELETE FROM hired_employees WHERE id > %(rows)s", {"rows": rows})
        bench.sql(db, "VACUUM ANALYZE hired_employees")


# --- the insert ------------------------------------------------------------------------------


def hires(first: int) -> list[dict[str, Any]]:
    """``BATCH`` new hires from id ``first``, as both servers take them."""
    return [
        {
            "id": i,
            "name": name,
            "datetime": f"{at:%Y-%m-%dT%H:%M:%SZ}",
            "departmentId": d,
            "jobId": j,
        }
        for i, name, at, d, j in map(bench.employee, range(first, first + BATCH))
    ]


def roster_insert(rows: list[dict[str, Any]]) -> bytes:
    """Roster's insertBatch, as bench/insert_batch.py sends it: the rows as a variable."""
    return json.dumps({"query": MUTATION, "variables": {"rows": rows}}).encode()


def peer_insert(rows: list[dict[str, Any]]) -> bytes:
    """PostGraphile's stock way: one aliased createHiredEmployee per row, in one document."""
    fields = " ".join(
        f"h{row['id']}: createHiredEmployee(input: {{hiredEmployee: {{id: {row['id']}, "
        f'name: {json.dumps(row["name"])}, datetime: "{row["datetime"]}", '
        f"departmentId: {row['departmentId']}, jobId: {row['jobId']}}}}}) {{ clientMutationId }}"
        for row in rows
    )
    return json.dumps({"query": f"mutation {{ {fields} }}"}).encode()


class Inserts:
    """Fresh ids for each server's batch, and the check that a batch is in the table."""

    def __init__(self, db: str, rows: int) -> None:
        self.db, self.ids = db, itertools.count(rows + 1, BATCH)

    def stored(self, first: int) -> int:
        query = "SELECT count(*) FROM hired_employees WHERE id BETWEEN %(first)s AND %(last)s"
        return bench.sql(self.db, query, {"first": first, "last": first + BATCH - 1})[0][0]

    def roster(self, http: requests.Session, url: str) -> float:
        first = next(self.ids)
        seconds, result = bench.post(http, url, roster_insert(hires(first)), "insertBatch")
        if result["inserted"] != BATCH or self.stored(first) != BATCH:
            raise RuntimeError(f"Roster's insert from id {first}: {result}")
        return seconds

    def peer(self, http: requests.Session, url: str) -> float:
        first = next(self.ids)
        seconds, answer = bench.post(http, url, peer_insert(hires(first)))
        if answer.get("errors") or len(answer.get("data") or {}) != BATCH:
            raise RuntimeError(f"PostGraphile's insert from id {first}: {str(answer)[:500]}")
        if self.stored(first) != BATCH:
            raise RuntimeError(f"PostGraphile's insert from id {first}: not all in the table")
        return seconds


# --- the answers -----------------------------------------------------------------------------


ROSTER_NAMES = {"hires": "hiredEmployees", "department": "department", "job": "job"}
PEER_NAMES = {
    "hires": "hiredEmployeesByDepartmentId",
    "department": "departmentByDepartmentId",
    "job": "jobByJobId",
}


def shape(data: dict[str, Any], names: dict[str, str]) -> Any:
    """What an answer says, in one shape for both servers (``names``: each one's field names):
    a count; each department's id and hires (id, name); or the hires with their references."""
    if "totalCount" in data:
        return int(data["totalCount"])
    if data["nodes"] and names["hires"] in data["nodes"][0]:
        return [
            (d["id"], [(h["id"], h["name"]) for h in d[names["hires"]]["nodes"]])
            for d in data["nodes"]
        ]
    department, job = names["department"], names["job"]
    return [
        (
            h["id"],
            h["name"],
            datetime.fromisoformat(h["datetime"]),
            *(h[department]["id"], h[department]["department"], h[job]["id"], h[job]["job"]),
        )
        for h in data["nodes"]
    ]


def describe(answer: Any) -> str:
    if isinstance(answer, int):
        return f"{answer:,}"
    if answer and isinstance(answer[0][1], list):
        return f"{len(answer)} departments, {sum(len(hires) for _, hires in answer):,} hires"
    return f"{len(answer):,} hires, ids {answer[0][0]}..{answer[-1][0]}" if answer else "no hire"


# --- the run ---------------------------------------------------------------------------------


class Servers:
    """Both servers, each with its keep-alive session: what each answers and how long it took."""

    def __init__(
        self,
        roster: tuple[str, requests.Session],
        peer: tuple[str, requests.Session],
        inserts: Inserts,
    ) -> None:
        (self.roster_url, self.roster_http), (self.peer_url, self.peer_http) = roster, peer
        self.inserts = inserts

    def read(self, row: Row, server: str) -> tuple[float, Any]:
        """``row``'s query on ``server`` ("roster" or "peer"): its seconds and its answer."""
        if server == "roster":
            body = json.dumps({"query": row.roster}).encode()
            seconds, data = bench.post(self.roster_http, self.roster_url, body, row.roster_field)
            return seconds, shape(data, ROSTER_NAMES)
        body = json.dumps({"query": row.peer}).encode()
        seconds, data = bench.post(self.peer_http, self.peer_url, body, row.peer_field)
        return seconds, shape(data, PEER_NAMES)

    def insert(self, server: str) -> float:
        if server == "roster":
            return self.inserts.roster(self.roster_http, self.roster_url)
        return self.inserts.peer(self.peer_http, self.peer_url)

    def agree(self) -> bool:
        """Each read on both servers, and one insert each: a line per row, OK or WRONG."""
        print("the answers, before the clock starts:")
        agreed = True
        for row in READS:
            (_, ours), (_, theirs) = self.read(row, "roster"), self.read(row, "peer")
            agreed &= ours == theirs
            mark = "OK" if ours == theirs else f"WRONG (PostGraphile: {describe(theirs)})"
            print(f"  {row.label}: {describe(ours)}  {mark}")
        for server in ("roster", "peer"):
            self.insert(server)  # checks that its rows are in the table
        print(f"  {INSERT}: {BATCH} stored by each, counted in the table  OK", flush=True)
        return agreed

    def one_round(self, round_: int) -> dict[tuple[str, str], float]:
        """Each row of the table on both servers, Roster first in even rounds, PostGraphile
        first in odd ones (the first reader of a page warms the cache for the second). A round
        ends with the inserts, so each server's first read follows its own insert in one round
        and the other server's read in the next."""
        seconds = {}
        for label in ORDER:
            for server in ("roster", "peer")[:: 1 if round_ % 2 == 0 else -1]:
                if label == INSERT:
                    seconds[(label, server)] = self.insert(server)
                else:
                    seconds[(label, server)] = self.read(READ[label], server)[0]
        return seconds


def main() -> None:
    args = bench.options(__doc__, rows=1_000_000, rounds=20, warmup=5)
    db = bench.database("peer")
    title = f"Roster (gunicorn -w 2) beside PostGraphile 4 (stock), {args.rows:,} hires"
    with bench.run(title, db, keep=True):
        install()
        build_once(db, args.rows)
        token = bench.create_token(db, "bench-peer", "write")
        with (
            bench.gunicorn(db) as roster_url,
            bench.session(token) as roster_http,
            postgraphile(db) as peer_url,
            requests.Session() as peer_http,  # PostGraphile's stock server asks for no token
        ):
            peer_http.headers["Content-Type"] = "application/json"
            servers = Servers(
                (roster_url, roster_http), (peer_url, peer_http), Inserts(db, args.rows)
            )
            agreed = servers.agree()
            samples = bench.interleave(args.rounds, args.warmup, servers.one_round)
        remove_inserted(db, args.rows)

        print(
            f"\n{args.rounds} interleaved rounds after {args.warmup} warm-ups, {args.rows:,} "
            "hires, one client, POST /graphql, medians; the database is kept for the next run"
        )
        print("| row | Roster | PostGraphile | ratio | target | result |")
        print("|---|---|---|---|---|---|")
        targets = {row.label: row.target for row in READS} | {INSERT: INSERT_TARGET}
        for label in ORDER:
            ours, theirs = (bench.median(samples[(label, side)]) for side in ("roster", "peer"))
            ratio = ours / theirs
            print(
                f"| {label} | {bench.ms(ours)} | {bench.ms(theirs)} | {ratio:.2f}x "
                f"| <= {targets[label]}x | {bench.verdict(ratio <= targets[label])} |"
            )
        print(f"answers: {'OK, both servers agree' if agreed else 'WRONG, they differ'}")
        if not agreed:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
