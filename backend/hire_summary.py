"""The hires summary: how many hires each department made for each job, per year, with a column
per quarter, and two small rollups of it: per department and year, and per job and year.

The metrics and the unfiltered (or department/job-filtered) ``totalCount`` read it instead of
scanning ``hired_employees``, so they cost the same at 10 million rows as at 10 thousand.

It is kept exact by the database itself, in the same transaction as the rows, whoever writes
them: the ingest pipeline (API, REST, files, Distributed Map chunks, replay, restore), the
admin, or ``psql``.

- PostgreSQL: one trigger per statement, with the statement's rows as a transition table
  (one aggregate per ``COPY`` of 50,000 rows, not one call per row). Each upserts its deltas
  into a *stripe* of the summary that no other transaction is writing: writers in the same
  quarter share their keys, and with one row per key the second would wait for the first to
  commit. A stripe is taken with a transaction advisory lock (the first free of ``STRIPES``,
  kept for the whole transaction); readers sum the stripes. The triggers are
  ``ENABLE ALWAYS``: they fire even under
  ``session_replication_role = replica``, which the loader uses to skip the foreign keys'
  per-row triggers.
- SQLite: one trigger per row (SQLite has no transition tables; it has one writer at a time).

Each summary row costs its writer an upsert, so the rows are as few as the reads allow. The
quarters are columns of one row per year, department and job (a chunk of a load spread over
three years touches about 5,100 such rows where it touched 8,300 with a row per quarter, and
``hiresByQuarter`` sums a quarter of the rows it did), and the rollups are the small ones: a
batch of a quarter's hires touches about 12 department rows and 183 job rows, against up to
2,196 rows of an all-time table per department and job (which made two writers 0.81x as fast
as without the summary; docs/benchmarks.md).

Years and quarters are taken in UTC, as the metrics have always been. A restore of
``hired_employees`` replaces every row: it suspends the triggers for its transaction and
recomputes the summary once at its end (``rebuilt_after``), which stays exact while other
batches commit (see ``rebuild``). ``manage.py rebuild_summaries`` does the same on demand.

The trigger SQL is installed by migration 0007 (0005 made the first tables, 0006 added the
stripes, 0007 the quarter columns); changing it here needs a migration that calls ``install``
again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper

TABLE = "hire_counts"
KEY = ("year", "department_id", "job_id")
"""What the summary counts by. Each table's primary key is its key and the row's stripe."""
QUARTERS = ("q1", "q2", "q3", "q4")
"""The summary's counts: its hires in each quarter (its ``hires`` column is their sum, which the
database computes)."""
ROLLUPS = {
    TABLE: KEY,
    "department_years": ("year", "department_id"),
    "job_years": ("year", "job_id"),
}
"""Every table of the summary, with its key: the whole summary, then its rollups, which
``departmentsAboveMean`` and ``totalCount`` sum (at most 12 or 183 rows a year and stripe)."""
COUNTS = {table: QUARTERS if table == TABLE else ("hires",) for table in ROLLUPS}
"""The columns each table counts in: the quarters, or the rollups' ``hires``."""
STRIPES = 4
"""How many transactions can write the summary at once without waiting for each other. A key
has one row per stripe that wrote it; the rebuild folds them all into stripe 0. A fifth writer
waits for a stripe (its lock), never for a row another stripe holds."""
STRIPE_LOCK = 1_401_000
"""The first half of each stripe's advisory lock key ``(STRIPE_LOCK, stripe)``: a two-part key,
so it never meets ``jobs/locks.py``'s one-part keys."""
STRIPE_SETTING = "roster.hire_stripe"
"""The stripe this transaction holds, kept for its later statements (transaction-local)."""
SUSPEND_SETTING = "roster.hire_counts"
"""A PostgreSQL setting: 'suspended' turns the triggers off for one transaction (a restore)."""

_TRIGGERS = ("insert", "delete", "update", "truncate")


def _sqlite_parts(row: str) -> dict[str, str]:
    """The summary key of the hire ``row`` (``NEW``, ``OLD`` or an alias) on SQLite, column by
    column, and its ``quarter`` (1 to 4). Django stores a datetime as
    'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC."""
    return {
        "year": f"CAST(substr({row}.datetime, 1, 4) AS INTEGER)",
        "department_id": f"{row}.department_id",
        "job_id": f"{row}.job_id",
        "quarter": f"((CAST(substr({row}.datetime, 6, 2) AS INTEGER) + 2) / 3)",
    }


def _counted(table: str, hires: str, quarter: str) -> list[str]:
    """What a key's ``hires`` (an expression), all in ``quarter`` (another), adds to each of
    ``table``'s counts: to the quarter's column only, or to a rollup's ``hires``."""
    if table != TABLE:
        return [hires]
    return [
        f"CASE WHEN {quarter} = {n} THEN {hires} ELSE 0 END"
        for n, _ in enumerate(QUARTERS, start=1)
    ]


def _by_key(table: str, rows: str) -> str:
    """``rows`` (``year, department_id, job_id, quarter, hires``, one row per quarter at most)
    summed by ``table``'s key into its counts, leaving out keys whose counts do not change."""
    key = ", ".join(ROLLUPS[table])
    grouped = ", ".join(str(n) for n in range(1, len(ROLLUPS[table]) + 1))
    sums = ", ".join(f"sum({count})" for count in _counted(table, "hires", "quarter"))
    # A quarter's count changes when its own sum does; a rollup's, when the key's sum does.
    changed = "sum(abs(hires)) <> 0" if table == TABLE else "sum(hires) <> 0"
    return f"SELECT {key}, {sums} FROM ({rows}) AS q GROUP BY {grouped} HAVING {changed}"


def _postgresql_by_quarter(rows: str, hires: str) -> str:
    """``rows`` (a query with ``quarter_start, department_id, job_id`` and ``delta``) as the
    summary's keys and quarters with their ``hires`` (an aggregate). Grouping by the quarter's
    start and splitting it into year and quarter once per group, not per row, halves the cost
    of a large aggregate (``extract`` returns numeric)."""
    return f"""SELECT extract(year FROM quarter_start)::integer AS year, department_id, job_id,
               extract(quarter FROM quarter_start)::smallint AS quarter, hires
        FROM (SELECT quarter_start, department_id, job_id, {hires} AS hires FROM ({rows}) AS r
              GROUP BY 1, 2, 3) AS by_quarter"""


_QUARTER_START = (
    "date_trunc('quarter', r.datetime AT TIME ZONE 'UTC') AS quarter_start, "
    "r.department_id, r.job_id"
)


def _columns(table: str) -> str:
    """The columns a summary row is written with, in the order every writer gives them."""
    return ", ".join((*ROLLUPS[table], *COUNTS[table], "stripe"))


def _upsert(table: str) -> str:
    key = ", ".join(ROLLUPS[table])
    added = ", ".join(f"{count} = {table}.{count} + excluded.{count}" for count in COUNTS[table])
    return f"ON CONFLICT ({key}, stripe) DO UPDATE SET {added}"


def _postgresql_function(event: str, source: str) -> str:
    """A statement trigger's function: take a stripe (the one this transaction holds, else the
    first free, else wait for one), sum the statement's deltas by key once, then upsert them
    into that stripe of each table. No other transaction writes that stripe's rows, so the
    upserts need no order (sorting a chunk's 8,000 keys cost more than summing them). An
    update moves a hire from its old key to its new one."""
    upserts = [
        f"INSERT INTO {table} ({_columns(table)}) "
        f"SELECT k.*, own FROM ({_by_key(table, 'SELECT * FROM deltas')}) AS k {_upsert(table)}"
        for table in ROLLUPS
    ]
    *ctes, last = upserts
    written = ", ".join(f"written_{n} AS ({sql})" for n, sql in enumerate(ctes))
    return f"""
CREATE OR REPLACE FUNCTION roster_hire_counts_{event}() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    own smallint := nullif(current_setting('{STRIPE_SETTING}', true), '')::smallint;
BEGIN
    IF current_setting('{SUSPEND_SETTING}', true) = 'suspended' THEN
        RETURN NULL;
    END IF;
    IF own IS NULL THEN
        own := 0;
        WHILE own < {STRIPES} AND NOT pg_try_advisory_xact_lock({STRIPE_LOCK}, own) LOOP
            own := own + 1;
        END LOOP;
        IF own = {STRIPES} THEN
            own := pg_backend_pid() % {STRIPES};
            PERFORM pg_advisory_xact_lock({STRIPE_LOCK}, own);
        END IF;
        PERFORM set_config('{STRIPE_SETTING}', own::text, true);
    END IF;
    -- The tables in the rebuild's order: one statement's CTEs lock them in no set order.
    LOCK TABLE {", ".join(ROLLUPS)} IN ROW EXCLUSIVE MODE;
    WITH deltas AS MATERIALIZED (
        {_postgresql_by_quarter(source.format(key=_QUARTER_START), "sum(delta)")}
    ), {written}
    {last};
    RETURN NULL;
END $$"""


_POSTGRESQL_SOURCES = {
    "insert": "SELECT {key}, 1 AS delta FROM new_hires AS r",
    "delete": "SELECT {key}, -1 AS delta FROM old_hires AS r",
    "update": "SELECT {key}, 1 AS delta FROM new_hires AS r "
    "UNION ALL SELECT {key}, -1 FROM old_hires AS r",
}
_TRANSITIONS = {
    "insert": "REFERENCING NEW TABLE AS new_hires",
    "delete": "REFERENCING OLD TABLE AS old_hires",
    "update": "REFERENCING OLD TABLE AS old_hires NEW TABLE AS new_hires",
}


FILLFACTOR = 50
"""PostgreSQL: the summary's pages are kept half empty, so that updating a key (what almost
every write does) puts the new version beside the old one, a HOT update that adds nothing to
the primary key: a chunk's summary upserts took 46 ms instead of 80 (docs/benchmarks.md)."""


def _postgresql_install() -> list[str]:
    statements = [f"ALTER TABLE {table} SET (fillfactor = {FILLFACTOR})" for table in ROLLUPS]
    for event, source in _POSTGRESQL_SOURCES.items():
        statements += [
            _postgresql_function(event, source),
            f"DROP TRIGGER IF EXISTS hire_counts_on_{event} ON hired_employees",
            f"CREATE TRIGGER hire_counts_on_{event} AFTER {event.upper()} ON hired_employees "
            f"{_TRANSITIONS[event]} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION roster_hire_counts_{event}()",
        ]
    statements += [
        "CREATE OR REPLACE FUNCTION roster_hire_counts_truncate() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        + "".join(f"DELETE FROM {table}; " for table in ROLLUPS)
        + "RETURN NULL; END $$",
        "DROP TRIGGER IF EXISTS hire_counts_on_truncate ON hired_employees",
        "CREATE TRIGGER hire_counts_on_truncate AFTER TRUNCATE ON hired_employees "
        "FOR EACH STATEMENT EXECUTE FUNCTION roster_hire_counts_truncate()",
    ]
    statements += [
        f"ALTER TABLE hired_employees ENABLE ALWAYS TRIGGER hire_counts_on_{event}"
        for event in _TRIGGERS
    ]
    return statements


def _sqlite_install() -> list[str]:
    # "WHERE true" tells SQLite's parser that ON CONFLICT is the upsert's, not a join's.
    new = _sqlite_parts("NEW")
    add = " ".join(  # one writer at a time: stripe 0
        f"INSERT INTO {table} ({_columns(table)}) "
        f"SELECT {', '.join(new[column] for column in key)}, "
        f"{', '.join(_counted(table, '1', new['quarter']))}, 0 WHERE true {_upsert(table)};"
        for table, key in ROLLUPS.items()
    )
    # A hire that goes takes one from its keys' rows and never makes a row: if the summary was
    # emptied first (Django's flush empties tables in any order), there is nothing to take.
    old = _sqlite_parts("OLD")
    take = " ".join(
        f"UPDATE {table} SET "
        + ", ".join(
            f"{count} = {count} - {taken}"
            for count, taken in zip(
                COUNTS[table], _counted(table, "1", old["quarter"]), strict=True
            )
        )
        + f" WHERE {' AND '.join(f'{column} = {old[column]}' for column in key)};"
        for table, key in ROLLUPS.items()
    )
    return [
        *(f"DROP TRIGGER IF EXISTS hire_counts_on_{event}" for event in _TRIGGERS),
        f"CREATE TRIGGER hire_counts_on_insert AFTER INSERT ON hired_employees BEGIN {add} END",
        f"CREATE TRIGGER hire_counts_on_delete AFTER DELETE ON hired_employees BEGIN {take} END",
        "CREATE TRIGGER hire_counts_on_update "
        "AFTER UPDATE OF datetime, department_id, job_id ON hired_employees "
        f"BEGIN {take} {add} END",
    ]


def install(db: BaseDatabaseWrapper) -> None:
    """Create (or replace) the triggers, then fill the summary from the rows."""
    statements = _postgresql_install() if db.vendor == "postgresql" else _sqlite_install()
    with db.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    rebuild(db)


def uninstall(db: BaseDatabaseWrapper) -> None:
    with db.cursor() as cursor:
        for event in _TRIGGERS:
            suffix = " ON hired_employees" if db.vendor == "postgresql" else ""
            cursor.execute(f"DROP TRIGGER IF EXISTS hire_counts_on_{event}{suffix}")
            if db.vendor == "postgresql":
                cursor.execute(f"DROP FUNCTION IF EXISTS roster_hire_counts_{event}()")


def rebuild(db: BaseDatabaseWrapper = connection) -> int:
    """Recompute the summary from the rows, in the caller's transaction, into stripe 0 (one
    row per key again), and return how many hires it counts.

    On PostgreSQL the summary is locked against writers first (``SHARE ROW EXCLUSIVE``: readers
    go on): a batch that committed before the lock is in the scan, and one whose trigger comes
    after it waits for this transaction to commit, then adds its own rows on top. Without the
    lock, a batch committing between the delete and the scan would be counted twice or not at
    all. SQLite has one writer at a time already.
    """
    tables = ", ".join(ROLLUPS)
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")
        for table in ROLLUPS:
            cursor.execute(f"DELETE FROM {table}")
        if db.vendor == "postgresql":
            rows = f"SELECT {_QUARTER_START} FROM hired_employees AS r"
            by_quarter = _postgresql_by_quarter(rows, "count(*)")
        else:
            parts = _sqlite_parts("r")
            by_quarter = (
                f"SELECT {', '.join(f'{sql} AS {name}' for name, sql in parts.items())}, "
                "count(*) AS hires FROM hired_employees AS r GROUP BY 1, 2, 3, 4"
            )
        for table, key in ROLLUPS.items():
            # The whole summary from the rows, then each rollup from the whole summary.
            source = (
                by_quarter
                if table == TABLE
                else f"SELECT {', '.join(key)}, 0 AS quarter, hires FROM {TABLE}"
            )
            grouped = ", ".join(str(n) for n in range(1, len(key) + 1))
            cursor.execute(
                f"INSERT INTO {table} ({_columns(table)}) "
                f"SELECT k.*, 0 FROM ({_by_key(table, source)}) AS k ORDER BY {grouped}"
            )
        cursor.execute(f"SELECT coalesce(sum(hires), 0) FROM {TABLE}")
        return int(cursor.fetchone()[0])


@contextlib.contextmanager
def rebuilt_after(db: BaseDatabaseWrapper = connection) -> Iterator[None]:
    """Inside a transaction that rewrites most hires (a restore): on PostgreSQL, turn the
    per-statement triggers off for the transaction and rebuild the summary once at the end,
    which costs one scan instead of a delete trigger over every old row and an insert trigger
    per chunk. SQLite's row triggers stay on (one writer at a time)."""
    if not db.in_atomic_block:
        raise RuntimeError("rebuilt_after needs the caller's transaction")
    if db.vendor != "postgresql":
        yield
        return
    with db.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, 'suspended', true)", [SUSPEND_SETTING])
    yield
    with db.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, '', true)", [SUSPEND_SETTING])
    rebuild(db)
