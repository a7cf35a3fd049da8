"""Hostile rows in the rejection log: stored within bounds, and always read back (HTTP 200).

A row is logged as received while it is within the bounds of ``jobs/ingest/raw.py`` (depth 32,
strings of 8,192 characters, 64-bit integers, 65,536 characters in all); beyond them the excess
is kept as text, and a text that was cut ends with ``... [truncated: N characters in all]``.
Whatever a ``raw`` column holds (rows logged before these bounds), the log answers it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from backend.models import Batch, Job, Rejection

REJECTIONS = "{ rejections(table: JOBS) { totalCount nodes { index raw reasons { code } } } }"


def cut(text: str, limit: int) -> str:
    return f"{text[:limit]}... [truncated: {len(text):,} characters in all]"


def nested(levels: int, inner: Any = 1) -> Any:
    value = inner
    for _ in range(levels):
        value = [value]
    return value


@pytest.fixture
def jobs(db: None) -> None:
    Job.objects.bulk_create(Job(id=i, job=f"Job {i}") for i in (1, 2))


def rest_insert(client: Client, tokens: dict[str, str], body: bytes) -> dict[str, Any]:
    response = client.post(
        "/api/employees/",
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {tokens['write']}"},
    )
    assert response.status_code == 200, response.content
    return response.json()


def read_log(client: Client, tokens: dict[str, str]) -> list[dict[str, Any]]:
    response = client.post(
        "/graphql",
        data=json.dumps({"query": REJECTIONS}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {tokens['read']}"},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert "errors" not in body
    return body["data"]["rejections"]["nodes"]


def test_hostile_rows_posted_to_rest_are_logged_within_bounds_and_read_back(
    client: Client, tokens, jobs
) -> None:
    many_keys = {f"k{i}": "v" * 100 for i in range(700)}
    rows = [
        {"id": 10**30, "job": "x"},
        {"id": 3, "job": nested(300)},
        {"id": 4, "job": 2**64, "n": -(2**63), "m": 2**63 - 1},
        {"id": 5, "job": "y" * 10_000},
        {"id": 6, "job": None, **many_keys},
        [1, 2.5, True, None, "z"],
        "w" * 70_000,
        {"id": 7, "job": nested(40, ["q" * 9000])},
    ]
    body = json.dumps({"destination_table": "jobs", "data": rows}).encode()
    # a lone surrogate and a NUL, as JSON escapes
    body = body.replace(b'"z"]', b'"z\\ud800\\u0000"]')
    outcome = rest_insert(client, tokens, body)
    assert (outcome["inserted"], outcome["rejected"]) == (0, 8)

    # one batch's entries are written in id order (rows without one last), so that two
    # batches logging the same rows lock them in the same order
    logged = read_log(client, tokens)
    assert [node["index"] for node in logged] == ["1", "2", "3", "4", "7", "0", "5", "6"]
    logged.sort(key=lambda node: int(node["index"]))
    raws = [node["raw"] for node in logged]
    assert raws[0] == {"id": "1000000000000000000000000000000", "job": "x"}
    # 31 arrays kept as arrays, the 269 below them as their JSON text
    assert raws[1] == {"id": 3, "job": nested(31, "[" * 269 + "1" + "]" * 269)}
    assert raws[2] == {"id": 4, "job": "18446744073709551616", "n": -(2**63), "m": 2**63 - 1}
    assert raws[3] == {"id": 5, "job": cut("y" * 10_000, 8192)}
    whole = json.dumps({"id": 6, "job": None, **many_keys}, separators=(",", ":"))
    assert raws[4] == cut(whole, 65536)
    assert raws[5] == [1, 2.5, True, None, "z\\ud800\\u0000"]
    assert raws[6] == cut("w" * 70_000, 65536)
    deeper = json.dumps(nested(9, ["q" * 9000]), separators=(",", ":"))
    assert raws[7] == {"id": 7, "job": nested(31, cut(deeper, 8192))}


def test_hostile_rows_sent_through_graphql_are_logged_and_read_back(gql, client, tokens, jobs):
    insert = "mutation($rows: [JobInput!]!) { insertBatch(input: {jobs: $rows}) { rejected } }"
    answer = gql(insert, {"rows": [{"id": 7, "job": "a\ud800b"}, {"id": 8, "job": "b" * 9000}]})
    assert answer.data == {"insertBatch": {"rejected": 2}}
    assert [node["raw"] for node in read_log(client, tokens)] == [
        {"id": 7, "job": "a\\ud800b"},
        {"id": 8, "job": cut("b" * 9000, 8192)},
    ]


def logged_before_the_bounds(client: Client, tokens: dict[str, str], raws: list[Any]) -> None:
    """Log one rejected row per raw, then write the raw in its column as an older Roster did
    (unbounded), in SQL: JSON text, or a value the ORM turns into JSON text."""
    rows = [{"id": 100 + i, "job": ""} for i in range(len(raws))]
    rest_insert(client, tokens, json.dumps({"destination_table": "jobs", "data": rows}).encode())
    cast = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    for row, raw in zip(Rejection.objects.order_by("position"), raws, strict=True):
        text = raw.text if isinstance(raw, JsonText) else json.dumps(raw)
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE rejections SET raw = {cast} WHERE id = %s", [text, row.pk])


class JsonText:
    """JSON text that Python's json module cannot write (an integer of 4,400 digits)."""

    def __init__(self, text: str) -> None:
        self.text = text


def test_rows_logged_before_the_bounds_are_read_back_losslessly(client, tokens, jobs) -> None:
    raws = [
        {"id": 10**30, "job": "x"},
        {"id": 1, "job": nested(300)},
        {"wide": [2**64, -(2**70), 10**4000]},
        {"deeper": nested(450, {"a": 10**25})},
    ]
    logged_before_the_bounds(client, tokens, raws)
    assert [node["raw"] for node in read_log(client, tokens)] == raws


def test_rows_logged_before_the_bounds_that_json_cannot_carry_are_read_as_text(
    client, tokens, jobs
) -> None:
    raws: list[Any] = [{"deepest": nested(600)}, JsonText('{"huge": 1' + "0" * 4400 + "}")]
    expected: list[Any] = [
        '{"deepest": ' + "[" * 600 + "1" + "]" * 600 + "}",
        {"huge": "1" + "0" * 4400},
    ]
    if connection.vendor == "sqlite":  # jsonb refuses a lone surrogate; SQLite's JSON keeps it
        raws.append({"s": "a\ud800"})
        expected.append({"s": "a\\ud800"})
    logged_before_the_bounds(client, tokens, raws)
    assert [node["raw"] for node in read_log(client, tokens)] == expected


def test_a_valid_row_next_to_hostile_ones_is_still_stored(client, tokens, jobs) -> None:
    rows = [{"id": 10**30, "job": "x"}, {"id": 9, "job": "Nine"}, {"id": 10, "job": nested(300)}]
    outcome = rest_insert(
        client, tokens, json.dumps({"destination_table": "jobs", "data": rows}).encode()
    )
    assert (outcome["inserted"], outcome["rejected"]) == (1, 2)
    assert Job.objects.get(id=9).job == "Nine"
    assert Batch.objects.get().rejected == 2
