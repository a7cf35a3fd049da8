"""Benchmark: the fragment attack (issue 10), refused before it runs.

The document: 25 fragments, each spreading the previous one twice, in under 1,000 bytes (16.7
million spreads once expanded). Measured, interleaved round by round: Roster in process
(``schema.execute_sync`` of the text: parsing, every rule, the limits), refusing it with
``QUERY_TOO_COMPLEX``, and Roster over HTTP (gunicorn, PostgreSQL), against graphql-core's own
``validate`` with only its standard rules on the parsed document. Target: refused in under 50
ms. For scale, Strawberry's old limiters alone are timed on 12 to 16 levels.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import _common as bench

LEVELS, WARMUPS, TARGET_SECONDS = 25, 3, 0.050


def attack(levels: int) -> str:
    parts = [f"query Attack {{ ...F{levels - 1} }}", "fragment F0 on Query { jobs { totalCount } }"]
    parts += [f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels)]
    return "\n".join(parts)


def codes(errors: list[Any]) -> list[str]:
    """The error codes of an in-process result's or an HTTP answer's errors."""
    return [
        (e.get("extensions") if isinstance(e, dict) else e.extensions or {}).get("code")
        for e in errors
    ]


def main() -> None:
    args = bench.options(__doc__, rounds=20)
    db, document = bench.database("fragments"), attack(LEVELS)
    with bench.run(f"fragment attack: {LEVELS} levels, {len(document)} bytes, refused", db):
        bench.prepare_database(db)
        token = bench.create_token(db, "bench-fragments", "read")
        os.environ.update(bench.app_env(db))
        import django

        django.setup()
        logging.getLogger("strawberry.execution").setLevel(logging.CRITICAL)  # a line per refusal
        from graphql import parse, specified_rules, validate
        from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter

        from graph.schema import schema

        core, parsed, body = schema._schema, parse(document), json.dumps({"query": document})

        def one_round(_: int) -> dict[str, float]:
            base, base_errors = bench.clock(validate, core, parsed, specified_rules)
            roster, result = bench.clock(schema.execute_sync, document)
            over_http, answer = bench.post(http, url, body.encode())
            if base_errors:
                raise RuntimeError(f"graphql-core refused the document: {base_errors}")
            refused = [codes(result.errors or []), codes(answer.get("errors") or [])]
            if refused != [["QUERY_TOO_COMPLEX"]] * 2:
                raise RuntimeError(f"not refused: {result.errors} / {answer}")
            return {"base": base, "roster": roster, "http": over_http}

        with bench.gunicorn(db, workers=1) as url, bench.session(token) as http:
            samples = bench.interleave(args.rounds, WARMUPS, one_round)
            refusal = bench.post(http, url, body.encode())[1]["errors"][0]["message"]

        print(f"\nrefusal: {refusal}")
        print(
            f"{args.rounds} interleaved rounds after {WARMUPS} warm-ups; baseline: "
            "graphql-core validate with its standard rules only"
        )
        base = bench.median(samples["base"])
        for key, label in (("roster", "Roster, schema.execute_sync"), ("http", "Roster, HTTP")):
            figure = bench.median(samples[key])
            bench.compare(f"{label}, median", figure, base, "ms", at_most=TARGET_SECONDS)

        print(
            "For scale, Strawberry's QueryDepthLimiter and MaxAliasesLimiter alone (the old "
            "limits):"
        )
        limiters = [
            QueryDepthLimiter(max_depth=8).validation_rules[0],
            MaxAliasesLimiter(max_alias_count=15).validation_rules[0],
        ]
        for levels in range(12, 17):
            seconds, _ = bench.clock(lambda n=levels: validate(core, parse(attack(n)), limiters))
            print(f"  {levels} levels: {bench.ms(seconds)}")
        print(
            f"  (doubling per level, {LEVELS} levels would take about "
            f"{seconds * 2 ** (LEVELS - 16):.0f} s)"
        )


if __name__ == "__main__":
    main()
