"""A fuzzing suite for /graphql: generated documents against the live schema, with an admin token.

hypothesis-graphql builds documents from the schema's SDL (``str(graph.schema.schema)``):
queries, mutations (``insertBatch``, ``backup``, ``restore``) and documents with one schema
violation. A hand-made strategy also sends ``insertBatch`` with rows as variables of any JSON
type. Each case goes through Django's test client, as an HTTP caller would, on the sample data,
and must get:

- no 5xx, and no unexpected exception: every error carries an ``extensions.code``;
- a GraphQL response: a JSON object with ``data`` and/or ``errors``, each error an object with
  a string ``message``; a 200 has ``data``, a 400 has ``errors`` and no data;
- a consistent ``BatchResult`` (received = inserted + rejected; atomic batches all or nothing);
- after a mutation, no stored row that breaks a rule of ``backend.dictionary``, and no hired
  employee whose department or job is missing.

Each case runs in a savepoint rolled back afterwards, on a backup folder reset to the same three
backups, so a failing case replays (and shrinks) on the same state. About 60 s per database by
default; ``ROSTER_FUZZ_EXAMPLES=5000`` runs longer (docs/fuzzing.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.test import Client, override_settings
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, nodes, queries

from backend import models
from backend.dictionary import TABLES
from graph.schema import schema
from jobs import backups

EXAMPLES = int(os.environ.get("ROSTER_FUZZ_EXAMPLES", "1000"))
"""Cases per run: 1000 take about 45 s on either database; CI runs the default (docs/fuzzing.md)."""

SDL = str(schema)
KNOWN_CODES = {
    "BAD_REQUEST",
    "BAD_USER_INPUT",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "QUERY_TOO_COMPLEX",
    "TIMEOUT",
}
"""The codes a caller's document may earn; SERVICE_UNAVAILABLE or no code at all is a bug."""


# --- strategies ------------------------------------------------------------------------------


@st.composite
def datetime_texts(draw: st.DrawFn) -> str:
    """An ISO 8601 moment anywhere in years 1 to 9999, with no zone, Z or an offset."""
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
    offset = draw(st.sampled_from([None, 0, -300, 330, 840, -720]))
    if offset is None:
        return moment.isoformat()
    if offset == 0:
        return moment.isoformat() + "Z"
    return moment.replace(tzinfo=timezone(timedelta(minutes=offset))).isoformat()


DATETIMES = st.one_of(datetime_texts(), st.text(max_size=30))
SCALARS = {"DateTime": DATETIMES.map(nodes.String)}

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.integers(-5, 2**31 + 5)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300)
    | DATETIMES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
"""Any JSON value, weighted towards what a row holds: ids near the 32-bit edges, moments."""

ROW_FIELDS = {
    "departments": ("DepartmentInput", ["id", "department"]),
    "jobs": ("JobInput", ["id", "job"]),
    "hiredEmployees": ("HiredEmployeeInput", ["id", "name", "datetime", "departmentId", "jobId"]),
}
BATCH = """
mutation Batch($rows: [{kind}!]!, $atomic: Boolean!) {{
  insertBatch(input: {{{table}: $rows}}, atomic: $atomic) {{
    table received inserted rejected batchId
    rejections {{ index id reasons {{ field code message }} }}
  }}
}}
"""


@st.composite
def variable_batches(draw: st.DrawFn) -> Case:
    """``insertBatch`` with rows as variables: typed fields, sometimes of the wrong JSON type,
    sometimes an unknown key, ids mostly among the sample's so that duplicates happen."""
    table = draw(st.sampled_from(sorted(ROW_FIELDS)))
    kind, names = ROW_FIELDS[table]
    typed = {
        "id": st.integers(1, 2100) | st.integers(-(2**31), 2**31 - 1),
        "department": st.text(max_size=300),
        "job": st.text(max_size=300),
        "name": st.text(max_size=300),
        "datetime": DATETIMES,
        "departmentId": st.integers(0, 14),
        "jobId": st.integers(0, 185),
    }
    # One batch in four may hold values GraphQL's types refuse (the whole request is refused).
    wrong = draw(st.sampled_from([False, False, False, True]))
    value = {
        name: typed[name] | st.none() | (JSON_VALUES if wrong else st.nothing()) for name in names
    }
    extra = {"extra": JSON_VALUES} if wrong else {}
    row = st.fixed_dictionaries({}, optional={**value, **extra})
    rows = draw(st.lists(row, min_size=1, max_size=12))
    atomic = draw(st.booleans())
    document = BATCH.format(kind=kind, table=table)
    return Case("insertBatch(variables)", document, {"rows": rows, "atomic": atomic})


@dataclass(frozen=True)
class Case:
    label: str
    document: str
    variables: dict[str, Any] = field(default_factory=dict)


def documents(label: str, strategy: st.SearchStrategy[str]) -> st.SearchStrategy[Case]:
    return strategy.map(lambda document: Case(label, document))


def one_table_sdl(name: str) -> str:
    """The SDL with ``BatchInput`` cut down to the one table ``name``, required.

    hypothesis-graphql does not know ``@oneOf``, so from the real SDL most batches name 0, 2 or 3
    tables and are refused whole. Documents built from this SDL fit the real schema too."""
    batch = schema._schema.type_map["BatchInput"]
    one = f"input BatchInput {{\n  {name}: {batch.fields[name].type}!\n}}"
    sdl, found = re.subn(r"^input BatchInput\b[^{]*\{.*?^\}", one, SDL, flags=re.M | re.S)
    assert found == 1, "BatchInput is not in the SDL"
    return sdl


ONE_TABLE_SDLS = [
    one_table_sdl(name) for name in sorted(schema._schema.type_map["BatchInput"].fields)
]
ONE_TABLE_BATCHES = st.one_of(
    *(mutations(sdl, fields=["insertBatch"], custom_scalars=SCALARS) for sdl in ONE_TABLE_SDLS)
)
ANY_MUTATIONS = st.one_of(
    *(mutations(sdl, custom_scalars=SCALARS) for sdl in [SDL, *ONE_TABLE_SDLS])
)
IN_RANGE = {
    "PageSize": st.integers(0, 1000).map(nodes.Int),
    "Year": st.integers(2019, 2023).map(nodes.Int),
    "BatchId": st.uuids().map(nodes.String),
}
IN_RANGE_SDL = re.sub(r",? ?after: String = null", "", SDL).replace(
    "first: Int!", "first: PageSize!"
).replace("year: Int!", "year: Year!").replace("batchId: ID", "batchId: BatchId") + "\n".join(
    f"scalar {name}" for name in IN_RANGE
)
"""The SDL with the arguments that random values almost always break (``first`` over 1000, a
year out of range, a made-up cursor or batch id) narrowed to values the resolvers take, so
that most of these queries read rows. The documents fit the real schema."""

CASES = st.one_of(
    documents("query", queries(SDL, custom_scalars=SCALARS)),
    documents("query (in range)", queries(IN_RANGE_SDL, custom_scalars=SCALARS | IN_RANGE)),
    documents("insertBatch", ONE_TABLE_BATCHES),
    documents("mutation", ANY_MUTATIONS),
    documents("invalid query", queries(SDL, custom_scalars=SCALARS, mode=Mode.NEGATIVE)),
    documents("invalid mutation", mutations(SDL, custom_scalars=SCALARS, mode=Mode.NEGATIVE)),
    variable_batches(),
)
"""Seven kinds: ``mutation`` is the only one that may back up or restore."""


# --- checks ----------------------------------------------------------------------------------


def check_shape(status: int, body: Any) -> None:
    """A GraphQL response over HTTP, with a code on every error and no server error."""
    assert status < 500, f"server error {status}"
    assert status in (200, 400), f"unexpected status {status} with an admin token"
    assert isinstance(body, dict), f"the body is not a JSON object: {body!r}"
    assert body.keys() <= {"data", "errors", "extensions"}, f"unknown keys {sorted(body)}"
    assert "data" in body or "errors" in body, "neither data nor errors"
    errors = body.get("errors")
    if errors is not None:
        assert isinstance(errors, list) and errors, f"errors is not a non-empty list: {errors!r}"
        for error in errors:
            assert isinstance(error, dict), f"an error is not an object: {error!r}"
            assert isinstance(error.get("message"), str), f"an error has no message: {error!r}"
            code = (error.get("extensions") or {}).get("code")
            assert code in KNOWN_CODES, f"an error without a caller's code: {error!r}"
    if status == 200:
        assert "data" in body, "a 200 without data"
    else:
        assert errors and body.get("data") is None, "a 400 with data or without errors"


def check_batch(case: Case, body: dict[str, Any]) -> None:
    """A variables batch that ran: its counts add up, and an atomic batch is all or nothing."""
    result = (body.get("data") or {}).get("insertBatch")
    if result is None:
        return
    rows = case.variables["rows"]
    assert result["received"] == len(rows)
    assert result["inserted"] + result["rejected"] == result["received"]
    assert len(result["rejections"]) == result["rejected"]
    if case.variables["atomic"]:
        assert result["inserted"] in (0, result["received"]), "an atomic batch went in in part"


def broken_rows() -> list[str]:
    """Every stored row that the data dictionary refuses, or whose references are missing."""
    broken: list[str] = []
    ids: dict[str, set[int]] = {}
    for table in TABLES.values():
        model = getattr(models, table.model_name)
        rows = list(model.objects.values(*table.column_names))
        ids[table.name] = {row["id"] for row in rows}
        for row in rows:
            _, reasons = table.clean(row)
            if reasons:
                broken.append(f"{table.name} {row!r}: {[r.as_dict() for r in reasons]}")
            for column in table.foreign_keys:
                if row[column.name] not in ids[column.references]:
                    broken.append(f"{table.name} {row!r}: {column.name} refers to no row")
    return broken


# --- the fuzzer ------------------------------------------------------------------------------


@pytest.fixture
def seeded_backups(sample_data: None, tmp_path: Path) -> Iterator[Callable[[], None]]:
    """A backup folder of its own holding one backup of each sample table; the returned
    function puts the folder back to exactly that, so no case sees another's backups."""
    seed, folder = tmp_path / "seed", tmp_path / "backups"
    backend = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(seed)},
    }
    with override_settings(STORAGES={**django_settings.STORAGES, "backups": backend}):
        backups.backup_tables(tables=[])
    backend["OPTIONS"] = {"location": str(folder)}
    with override_settings(STORAGES={**django_settings.STORAGES, "backups": backend}):

        def reset() -> None:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(seed, folder)

        yield reset


def test_fuzz_graphql_answers_and_stored_rows(
    seeded_backups: Callable[[], None], tokens: dict[str, str], capsys: pytest.CaptureFixture
) -> None:
    client = Client()  # an exception in a view is raised here, with its traceback
    headers = {"Authorization": f"Bearer {tokens['admin']}"}
    counts: Counter[str] = Counter()
    assert not broken_rows(), "the sample data itself breaks a rule"

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=CASES)
    def fuzz(case: Case) -> None:
        note(f"document:\n{case.document}\nvariables: {json.dumps(case.variables)}")
        seeded_backups()
        with transaction.atomic():
            response = client.post(
                "/graphql",
                data=json.dumps({"query": case.document, "variables": case.variables}),
                content_type="application/json",
                headers=headers,
            )
            note(f"answer {response.status_code}: {response.content[:4000]!r}")
            body = json.loads(response.content)
            check_shape(response.status_code, body)
            if case.variables:
                check_batch(case, body)
            if case.document.lstrip().startswith("mutation"):
                assert not broken_rows(), f"stored rows break the rules: {broken_rows()[:5]}"
            transaction.set_rollback(True)
        outcome = "errors" if body.get("errors") else "data"
        counts[f"{case.label}: {response.status_code} {outcome}"] += 1

    started = time.monotonic()
    fuzz()
    elapsed = time.monotonic() - started
    engine = django_settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    with capsys.disabled():
        print(f"\nfuzz ({engine}): {counts.total()} cases in {elapsed:.0f} s")
        for kind, count in sorted(counts.items()):
            print(f"  {kind}: {count}")
