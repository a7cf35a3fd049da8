"""The hires summary: how many hires each department made for each job, per year and quarter.

The metrics and the unfiltered (or department/job-filtered) ``totalCount`` read it instead of
scanning ``hired_employees``, so they cost the same at 10 million rows as at 10 thousand.

It is kept exact by the database itself, in the same transaction as the rows, whoever writes
them: the ingest pipeline (API, REST, files, Distributed Map chunks, replay, restore), the
admin, or ``psql``.

- PostgreSQL: one trigger per statement, with the statement's rows as a transition table
  (one aggregate per ``COPY`` of 50,000 rows, not one call per row). Each upserts its deltas
  in the primary key's order, so two writers lock summary rows in the same order and cannot
  deadlock on them. The triggers are ``ENABLE ALWAYS``: they fire even under
  ``session_replication_role = replica``, which the loader uses to skip the foreign keys'
  per-row triggers.
- SQLite: one trigger per row (SQLite has no transition tables; it has one writer at a time).

Years and quarters are taken in UTC, as the metrics have always been. A restore of
``hired_employees`` replaces every row: it suspends the triggers for its transaction and
recomputes the summary once at its end (``rebuilt_after``), which stays exact while other
batches commit (see ``rebuild``). ``manage.py rebuild_summaries`` does the same on demand.

The trigger SQL is installed by migration 0005; changing it here needs a migration that calls
``install`` again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper

TABLE = "hire_counts"
KEY = ("year", "department_id", "job_id", "quarter")
"""The summary's primary key, in the order every writer locks its rows."""
TOTALS = "hire_totals"
TOTALS_KEY = ("department_id", "job_id")
"""The all-time totals per department and job (at most 12 x 183 rows), which totalCount sums:
``hire_counts`` holds one row per quarter of every year, too many to sum in a millisecond.
Every writer locks ``hire_counts`` rows first, then ``hire_totals`` rows, each in key order."""
SUSPEND_SETTING = "roster.hire_counts"
"""A PostgreSQL setting: 'suspended' turns the triggers off for one transaction (a restore)."""

_TRIGGERS = ("insert", "delete", "update", "truncate")


def _key_parts(vendor: str, row: str) -> list[tuple[str, str]]:
    """The summary key of the hires in ``row`` (a table or an alias), column by column:
    year, department, job, quarter, in UTC."""
    if vendor == "postgresql":
        utc = f"({row}.datetime AT TIME ZONE 'UTC')"
        year, quarter = (
            f"extract(year FROM {utc})::integer",
            f"extract(quarter FROM {utc})::smallint",
        )
    else:  # SQLite: Django stores a datetime as 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC.
        year = f"CAST(substr({row}.datetime, 1, 4) AS INTEGER)"
        quarter = f"(CAST(substr({row}.datetime, 6, 2) AS INTEGER) + 2) / 3"
    department, job = f"{row}.department_id", f"{row}.job_id"
    return list(zip(KEY, (year, department, job, quarter), strict=True))


def _key_sql(vendor: str, row: str) -> str:
    """The key's expressions as select-list items, named as the summary's columns."""
    return ", ".join(f"{sql} AS {column}" for column, sql in _key_parts(vendor, row))


_COLUMNS = f"{', '.join(KEY)}, hires"
_UPSERT = f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET hires = {TABLE}.hires + excluded.hires"
_UPSERT_TOTALS = (
    f"ON CONFLICT ({', '.join(TOTALS_KEY)}) DO UPDATE SET hires = {TOTALS}.hires + excluded.hires"
)


def _postgresql_function(event: str, source: str) -> str:
    """A statement trigger's function: the statement's deltas, grouped by key, upserted in the
    key's order, into the counts, then the totals. An update moves a hire from its old key to
    its new one."""
    key = _key_sql("postgresql", "r")
    groups = ", ".join(str(n) for n in range(1, len(KEY) + 1))
    pairs = ", ".join(TOTALS_KEY)
    return f"""
CREATE OR REPLACE FUNCTION roster_hire_counts_{event}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('{SUSPEND_SETTING}', true) = 'suspended' THEN
        RETURN NULL;
    END IF;
    INSERT INTO {TABLE} ({_COLUMNS})
    SELECT {", ".join(KEY)}, sum(delta) FROM ({source.format(key=key)}) AS deltas
    GROUP BY {groups} HAVING sum(delta) <> 0 ORDER BY {groups}
    {_UPSERT};
    INSERT INTO {TOTALS} ({pairs}, hires)
    SELECT {pairs}, sum(delta) FROM ({source.format(key=pairs)}) AS deltas
    GROUP BY 1, 2 HAVING sum(delta) <> 0 ORDER BY 1, 2
    {_UPSERT_TOTALS};
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


def _postgresql_install() -> list[str]:
    statements = []
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
        f"LANGUAGE plpgsql AS $$ BEGIN DELETE FROM {TABLE}; DELETE FROM {TOTALS}; RETURN NULL; "
        "END $$",
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
    new_key = _key_sql("sqlite", "NEW")
    add = (
        f"INSERT INTO {TABLE} ({_COLUMNS}) SELECT {new_key}, 1 WHERE true {_UPSERT}; "
        f"INSERT INTO {TOTALS} (department_id, job_id, hires) "
        f"SELECT NEW.department_id, NEW.job_id, 1 WHERE true {_UPSERT_TOTALS};"
    )
    # A hire that goes takes one from its keys' rows and never makes a row: if the summary was
    # emptied first (Django's flush empties tables in any order), there is nothing to take.
    old_key = " AND ".join(f"{column} = {sql}" for column, sql in _key_parts("sqlite", "OLD"))
    old_pair = "department_id = OLD.department_id AND job_id = OLD.job_id"
    take = (
        f"UPDATE {TABLE} SET hires = hires - 1 WHERE {old_key}; "
        f"UPDATE {TOTALS} SET hires = hires - 1 WHERE {old_pair};"
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
    """Recompute the summary from the rows, in the caller's transaction, and return how many
    hires it counts.

    On PostgreSQL the summary is locked against writers first (``SHARE ROW EXCLUSIVE``: readers
    go on): a batch that committed before the lock is in the scan, and one whose trigger comes
    after it waits for this transaction to commit, then adds its own rows on top. Without the
    lock, a batch committing between the delete and the scan would be counted twice or not at
    all. SQLite has one writer at a time already.
    """
    key = _key_sql(db.vendor, "r")
    groups = ", ".join(str(n) for n in range(1, len(KEY) + 1))
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {TABLE}, {TOTALS} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(f"DELETE FROM {TABLE}")
        cursor.execute(f"DELETE FROM {TOTALS}")
        cursor.execute(
            f"INSERT INTO {TABLE} ({_COLUMNS}) SELECT {key}, count(*) FROM hired_employees AS r "
            f"GROUP BY {groups} ORDER BY {groups}"
        )
        cursor.execute(
            f"INSERT INTO {TOTALS} (department_id, job_id, hires) SELECT department_id, job_id, "
            f"sum(hires) FROM {TABLE} GROUP BY 1, 2 ORDER BY 1, 2"
        )
        cursor.execute(f"SELECT coalesce(sum(hires), 0) FROM {TOTALS}")
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
