"""Step 2 of the pipeline: foreign keys must name rows that exist (one query per referenced
table and page of ids)."""

from __future__ import annotations

from django.db import connection

from backend.dictionary import Reason, ReasonCode, Table
from backend.models import MODELS
from jobs.ingest.rules import Verdicts

Wait = tuple[str, int]
"""A missing reference: (table, id). A parked row waits for each of its own."""


def reject_missing_references(
    spec: Table, verdicts: Verdicts, referenced: dict[str, dict[int, list[int]]]
) -> dict[int, list[Wait]]:
    """Reject the valid rows whose foreign keys point nowhere, and return each such row's
    missing references.

    Every key of a row is checked before the row is dropped, so all its bad keys are reported.
    ``referenced`` (from ``check_rows``) lists the rows that name each value, so only the rows
    with a missing value are visited.
    """
    missing: dict[int, list[Reason]] = {}
    waits: dict[int, list[Wait]] = {}
    for column in spec.foreign_keys:
        groups = referenced.get(column.name, {})
        if not groups:
            continue
        model = MODELS[column.references]
        ids = sorted(groups)
        step = connection.features.max_query_params or len(ids)
        existing: set[int] = set()
        for start in range(0, len(ids), step):
            chunk = ids[start : start + step]
            existing.update(model.objects.filter(id__in=chunk).values_list("id", flat=True))
        singular = column.name.removesuffix("_id")
        for value in groups.keys() - existing:
            reason = Reason(
                column.name, ReasonCode.UNKNOWN_REFERENCE, f"{singular} {value} does not exist"
            )
            for index in groups[value]:
                if index in verdicts.valid:
                    missing.setdefault(index, []).append(reason)
                    waits.setdefault(index, []).append((column.references, value))
    for index, found in sorted(missing.items()):
        verdicts.reject(index, *found)
    return waits
