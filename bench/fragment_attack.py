"""Benchmark: the fragment attack (issue 10), refused before it runs.

Run: ``.venv/bin/python bench/fragment_attack.py``

The document: 25 fragments, each spreading the previous one twice (``fragment F1 on Query
{ ...F0 ...F0 }``), under 1,000 bytes: 16.7 million spreads once expanded. Strawberry's
``QueryDepthLimiter`` and ``MaxAliasesLimiter`` walked every one (the time doubles per level,
and gunicorn killed the worker); ``graph/limits.py`` measures each fragment once.

Measured, interleaved in the same run:

- baseline: graphql-core's own ``validate`` with only its standard rules, on the parsed
  document (no parsing, no limits, nothing executed);
- Roster in process: ``schema.execute_sync`` on the text (parsing, every validation rule, the
  limits), which refuses it with ``QUERY_TOO_COMPLEX``;
- Roster over HTTP: the same document posted to gunicorn (PostgreSQL), with a read token.

For scale, Strawberry's two limiters alone are timed on smaller documents (12 to 16 levels).

Target: refused in under 50 ms, in process and over HTTP.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import requests
from _common import (
    app_env,
    create_token,
    gunicorn,
    median,
    ms,
    prepare_database,
    print_header,
    print_load,
    verdict,
)

DB_NAME = "roster_bench_fragments"
LEVELS = 25
WARMUPS = 3
ROUNDS = 20
TARGET_SECONDS = 0.050


def attack(levels: int) -> str:
    parts = [f"query Attack {{ ...F{levels - 1} }}", "fragment F0 on Query { jobs { totalCount } }"]
    parts += [f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels)]
    return "\n".join(parts)


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def main() -> None:
    document = attack(LEVELS)
    print_header(f"fragment attack: {LEVELS} levels, {len(document)} bytes, refused")
    prepare_database(DB_NAME)
    token = create_token(DB_NAME, "bench-fragments", "read")
    os.environ.update(app_env(DB_NAME))
    import django

    django.setup()
    logging.getLogger("strawberry.execution").setLevel(logging.CRITICAL)  # one line per refusal
    from graphql import parse, specified_rules, validate
    from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter

    from graph.schema import schema

    core_schema = schema._schema
    parsed = parse(document)
    base: list[float] = []
    roster: list[float] = []
    http: list[float] = []
    with gunicorn(DB_NAME, workers=1) as url, requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        body = json.dumps({"query": document})
        for round_ in range(WARMUPS + ROUNDS):
            base_seconds, base_errors = timed(
                lambda: validate(core_schema, parsed, specified_rules)
            )
            roster_seconds, result = timed(lambda: schema.execute_sync(document))
            http_seconds, response = timed(
                lambda: session.post(url, data=body, headers={"Content-Type": "application/json"})
            )
            if base_errors:
                raise RuntimeError(f"graphql-core refused the document: {base_errors}")
            codes = [(e.extensions or {}).get("code") for e in result.errors or ()]
            answer = response.json()
            http_codes = [e["extensions"]["code"] for e in answer.get("errors") or ()]
            if codes != ["QUERY_TOO_COMPLEX"] or http_codes != ["QUERY_TOO_COMPLEX"]:
                raise RuntimeError(f"not refused: {result.errors} / {answer}")
            if round_ >= WARMUPS:
                base.append(base_seconds)
                roster.append(roster_seconds)
                http.append(http_seconds)

    print()
    print(f"refusal: {answer['errors'][0]['message']}")
    print(f"{ROUNDS} interleaved rounds after {WARMUPS} warm-ups:")
    print(f"  baseline: graphql-core validate, standard rules only: median {ms(median(base))}")
    worst = max(median(roster), median(http))
    for name, samples in (("Roster, schema.execute_sync", roster), ("Roster, HTTP", http)):
        ratio = median(samples) / median(base)
        print(f"  {name}: median {ms(median(samples))} = {ratio:.2f}x the baseline")
    print(
        f"  refused in {ms(worst)} at worst (target < {ms(TARGET_SECONDS)})  "
        f"{verdict(worst < TARGET_SECONDS)}"
    )

    print()
    print("For scale, Strawberry's QueryDepthLimiter and MaxAliasesLimiter alone (the old limits):")
    limiters = [
        QueryDepthLimiter(max_depth=8).validation_rules[0],
        MaxAliasesLimiter(max_alias_count=15).validation_rules[0],
    ]
    for levels in range(12, 17):
        seconds, _ = timed(
            lambda levels=levels: validate(core_schema, parse(attack(levels)), limiters)
        )
        print(f"  {levels} levels: {ms(seconds)}")
    projected = seconds * 2 ** (LEVELS - 16)
    print(f"  (doubling per level, {LEVELS} levels would take about {projected:.0f} s)")
    print_load()


if __name__ == "__main__":
    main()
