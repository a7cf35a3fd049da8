"""schema.graphql is the published contract: it must be the code's schema, to the character,
so that every change to the API shows in review as a change to that file."""

from __future__ import annotations

import difflib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import strawberry
from django.conf import settings
from django.core.management import call_command
from strawberry.schema.config import StrawberryConfig

from backend.dictionary import Reason, ReasonCode
from backend.models import Rejection
from graph.pagination import PageInfo
from graph.schema import sdl
from graph.types import (
    SCALARS,
    RejectionConnection,
    RejectionType,
    ReplayResult,
    RestoreResult,
)
from jobs.backups import RestoreSummary
from jobs.ingest import RejectedRow
from jobs.ingest.replay import ReplaySummary

ROOT = Path(settings.BASE_DIR)
SHOWN_LINES = 60
"""How much of the difference a failure shows: enough to see what changed, not a whole file."""


def short_diff(committed: str, current: str) -> str:
    """A unified diff of the committed file against the code's SDL, cut to ``SHOWN_LINES``."""
    lines = list(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            current.splitlines(keepends=True),
            fromfile="schema.graphql (committed)",
            tofile="schema.graphql (the code's)",
            n=1,
        )
    )
    shown = "".join(lines[:SHOWN_LINES])
    if len(lines) > SHOWN_LINES:
        shown += f"... and {len(lines) - SHOWN_LINES} more lines of difference\n"
    return shown


def test_schema_graphql_is_the_code_s_schema() -> None:
    committed = (ROOT / "schema.graphql").read_text(encoding="utf-8")
    current = sdl()
    if committed != current:
        pytest.fail(
            "schema.graphql is not the code's schema: run `make schema` and commit the file "
            "(review the change: clients build on it)\n" + short_diff(committed, current),
            pytrace=False,
        )


def test_the_difference_names_the_changed_lines_and_make_schema() -> None:
    current = sdl()
    changed = current.replace("  totalCount: Int!\n", "  totalCount: Float!\n", 1)

    diff = short_diff(changed, current)

    assert diff.startswith("--- schema.graphql (committed)\n+++ schema.graphql (the code's)\n@@ ")
    assert "\n-  totalCount: Float!\n+  totalCount: Int!\n" in diff
    assert len(diff.splitlines()) < 10
    everything = short_diff("", current * 2)
    assert everything.splitlines()[SHOWN_LINES] == (
        f"... and {2 * len(current.splitlines()) + 3 - SHOWN_LINES} more lines of difference"
    )


def test_export_schema_writes_the_code_s_sdl(tmp_path: Path) -> None:
    output = tmp_path / "schema.graphql"

    call_command("export_schema", "--output", str(output), verbosity=0)

    assert output.read_text(encoding="utf-8") == sdl()
    assert "\ntype Query {\n" in sdl() and "\ntype Mutation {\n" in sdl()
    assert sdl().endswith("}\n") and not sdl().endswith("\n\n")


def test_make_schema_runs_export_schema_in_the_venv() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nschema: setup\n", 1)[1].split("\n\n", 1)[0]
    assert recipe == "\t$(BIN)/python manage.py export_schema"


# --- Int or BigInt: what can pass 2,147,483,647 ----------------------------------------------

INT_BECAUSE = {
    "an id: a positive 32-bit integer by the rules": {
        "Department.id", "Job.id", "HiredEmployee.id", "HiredEmployee.departmentId",
        "HiredEmployee.jobId", "DepartmentHires.id", "Rejection.rowId", "RowRejection.id",
        "ReplayRejection.id", "DepartmentInput.id", "JobInput.id", "HiredEmployeeInput.id",
        "HiredEmployeeInput.departmentId", "HiredEmployeeInput.jobId",
        "HiredEmployeeFilter.departmentId", "HiredEmployeeFilter.jobId", "IdRange.gte",
        "IdRange.lte", "Query.department(id)", "Query.job(id)", "Query.hiredEmployee(id)",
    },
    "rows of one table, at most its 2,147,483,647 ids": {
        "DepartmentConnection.totalCount", "JobConnection.totalCount",
        "HiredEmployeeConnection.totalCount", "QuarterlyHires.q1", "QuarterlyHires.q2",
        "QuarterlyHires.q3", "QuarterlyHires.q4", "DepartmentHires.hired",
        "RestoreResult.inserted", "RestoreResult.replaced", "ReplayResult.inserted",
    },
    "a batch: 1 to 1000 rows": {
        "BatchResult.received", "BatchResult.inserted", "BatchResult.rejected",
        "RowRejection.index",
    },
    "a page: 0 to 1000 rows": {
        "Query.departments(first)", "Query.jobs(first)", "Query.hiredEmployees(first)",
        "Query.backups(first)", "Query.rejections(first)", "Department.hiredEmployees(first)",
        "Job.hiredEmployees(first)",
    },
    "a year: 1 to 9999": {"Query.hiresByQuarter(year)", "Query.departmentsAboveMean(year)"},
}  # fmt: skip
"""Every Int of the schema, and why it cannot pass 2,147,483,647."""

BIG_INTS = {
    "Backup.rows", "Backup.size", "RestoreResult.read", "RestoreResult.rejected",
    "RejectionConnection.totalCount", "Rejection.index", "Rejection.attempts",
    "ReplayResult.received", "ReplayResult.rejected", "ReplayRejection.index",
}  # fmt: skip
"""Every BigInt: a file's rows, lines and bytes, and the rejection log's entries (64-bit ids)
and their receptions, which no rule bounds."""


def typed(scalar: str) -> set[str]:
    """Every field (``Type.field``) and argument (``Type.field(argument)``) of that scalar."""
    from graphql import GraphQLInputObjectType, GraphQLObjectType, get_named_type

    from graph.schema import schema

    found = set()
    for name, kind in schema._schema.type_map.items():
        if name.startswith("__") or not isinstance(
            kind, GraphQLObjectType | GraphQLInputObjectType
        ):
            continue
        for field_name, field in kind.fields.items():
            if get_named_type(field.type).name == scalar:
                found.add(f"{name}.{field_name}")
            for argument, definition in getattr(field, "args", {}).items():
                if get_named_type(definition.type).name == scalar:
                    found.add(f"{name}.{field_name}({argument})")
    return found


def test_every_int_is_decided_by_the_readme_s_rule() -> None:
    """A new number in the schema fails here until someone decides: Int, with the reason it
    stays below 2**31, or BigInt."""
    decided = set().union(*INT_BECAUSE.values())
    assert sum(len(names) for names in INT_BECAUSE.values()) == len(decided)
    assert sorted(typed("Int") - decided) == [], "new Int fields: Int or BigInt? (README)"
    assert sorted(decided - typed("Int")) == []
    assert typed("BigInt") == BIG_INTS
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "**Int or BigInt.**" in readme


@strawberry.type
class Built:
    """A schema of the real types, answered from objects built here: counts past 2**31 that
    no test database could hold, through the same scalar as the API's."""

    restore: RestoreResult
    replay: ReplayResult
    rejection: RejectionType
    log: RejectionConnection


BUILT = strawberry.Schema(query=Built, config=StrawberryConfig(scalar_map=SCALARS))
PAST_INT = 2**31  # one more than Int's largest


def built(**objects: object) -> Built:
    """A root of empty results, with ``objects`` in their place."""
    nothing = PageInfo(has_next_page=False, end_cursor=None)
    empty: dict[str, object] = {
        "restore": RestoreResult.from_summary(RestoreSummary(table="jobs", key="jobs/x.avro")),
        "replay": ReplayResult.from_summary(ReplaySummary(table="jobs", batch_ids=[ONE])),
        "rejection": RejectionType.from_model(Rejection(batch_id=ONE, table="jobs", reasons=[])),
        "log": RejectionConnection(nodes=[], page_info=nothing, _count=lambda: 0),
    }
    return Built(**{**empty, **objects})


ONE = uuid.UUID(int=1)


def test_counts_and_positions_past_2_31_are_answered_exactly_as_big_int_strings() -> None:
    restored = RestoreSummary(
        table="hired_employees", key="hired_employees/x.avro", read=3 * 2**31 + 5,
        inserted=2**31 - 1, rejected=2**32 + 6, replaced=7,
    )  # fmt: skip
    again = RejectedRow(PAST_INT + 2, 5, "5,Ann", [Reason("id", ReasonCode.DUPLICATE, "taken")])
    replayed = ReplaySummary(
        table="hired_employees", read=2**33, inserted=12, rejected=2**33 - 12,
        batch_ids=[ONE], rejections=[again],
    )  # fmt: skip
    entry = Rejection(
        id=2**40, batch_id=ONE, source="csv", table="jobs", position=PAST_INT, row_id=None,
        raw="x", reasons=[], created_at=datetime(2026, 1, 2, tzinfo=UTC), status="open",
        attempts=2**32 + 1, parked=False,
    )  # fmt: skip
    root = built(
        restore=RestoreResult.from_summary(restored),
        replay=ReplayResult.from_summary(replayed),
        rejection=RejectionType.from_model(entry),
        log=RejectionConnection(
            nodes=[], page_info=PageInfo(has_next_page=False, end_cursor=None), _count=lambda: 2**40
        ),
    )

    answer = BUILT.execute_sync(
        "{ restore { read inserted rejected replaced }"
        "  replay { received inserted rejected batchId rejections { index id } }"
        "  rejection { id index attempts rowId } log { totalCount } }",
        root_value=root,
    )

    assert answer.errors is None
    assert answer.data == {
        "restore": {"read": "6442450949", "inserted": 2147483647, "rejected": "4294967302",
                    "replaced": 7},
        "replay": {"received": "8589934592", "inserted": 12, "rejected": "8589934580",
                   "batchId": str(ONE), "rejections": [{"index": "2147483650", "id": 5}]},
        "rejection": {"id": "1099511627776", "index": "2147483648", "attempts": "4294967297",
                      "rowId": None},
        "log": {"totalCount": "1099511627776"},
    }  # fmt: skip


def test_an_int_past_2_31_is_an_error_so_the_rule_matters() -> None:
    """What a count past 2**31 does in an Int field: an error, not a number."""
    restored = RestoreSummary(table="jobs", key="jobs/x.avro", inserted=PAST_INT)

    answer = BUILT.execute_sync(
        "{ restore { inserted } }", root_value=built(restore=RestoreResult.from_summary(restored))
    )

    assert answer.data is None
    assert answer.errors is not None
    assert answer.errors[0].message == (
        "Int cannot represent non 32-bit signed integer value: 2147483648"
    )


@pytest.mark.django_db
def test_the_log_stores_line_numbers_and_attempts_past_2_31(gql) -> None:
    """The columns are 64-bit on both databases, so the log keeps what BigInt can answer."""
    from backend.models import Batch

    now = datetime.now(UTC)
    batch = Batch.objects.create(
        source="csv", table="jobs", received=1, rejected=1, status="completed",
        started_at=now, finished_at=now,
    )  # fmt: skip
    entry = Rejection.objects.create(
        batch=batch, source="csv", table="jobs", position=3_000_000_000, raw={}, reasons=[],
        row_key="k" * 32, attempts=2**31 + 1,
    )  # fmt: skip
    entry.refresh_from_db()
    assert (entry.position, entry.attempts) == (3_000_000_000, 2**31 + 1)
    answer = gql("{ rejections { totalCount nodes { index attempts } } }", scope="read")
    assert answer.data == {
        "rejections": {
            "totalCount": "1",
            "nodes": [{"index": "3000000000", "attempts": "2147483649"}],
        }
    }
