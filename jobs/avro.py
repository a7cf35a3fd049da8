"""AVRO schemas derived from the data dictionary, and checks of a backup's writer schema."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastavro.schema import parse_schema, to_parsing_canonical_form

from backend import dictionary
from backend.dictionary import Integer, Table, Text, Timestamp

NAMESPACE = "roster"

# The system Roster replaced wrote Django's attribute names for foreign keys.
LEGACY_NAMES = {"department_id_id": "department_id", "job_id_id": "job_id"}


class SchemaMismatch(ValueError):
    """A backup whose fields or types do not fit the table."""


def schema_for(table: Table) -> dict[str, Any]:
    """A named record with docs; ``datetime`` is a ``timestamp-micros`` long."""
    return {
        "type": "record",
        "name": table.model_name,
        "namespace": NAMESPACE,
        "doc": table.doc,
        "fields": [
            {"name": column.name, "type": column.kind.avro, "doc": column.doc}
            for column in table.columns
        ],
    }


def fingerprint(schema: dict[str, Any]) -> str:
    """SHA-256 of the schema's parsing canonical form: equal for equal schemas, docs aside."""
    canonical = to_parsing_canonical_form(parse_schema(schema))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def check_writer_schema(table: Table, writer: object) -> dict[str, str]:
    """Check that a backup's schema can fill ``table``; return {field in file: column}.

    Accepts Roster's own schema, nullable unions (``["null", "long"]``), ``int`` or ``long``
    ids, and the replaced system's names (``department_id_id``) and string datetimes.
    """
    if isinstance(writer, str):  # any other shape (a list, a primitive) holds no records
        writer = json.loads(writer)
    if not isinstance(writer, dict) or writer.get("type") != "record":
        raise SchemaMismatch("the file does not hold records")
    fields = {field["name"]: field["type"] for field in writer.get("fields", [])}
    renames = {name: LEGACY_NAMES.get(name, name) for name in fields}
    found = set(renames.values())
    expected = set(table.column_names)
    if found != expected:
        missing = ", ".join(sorted(expected - found)) or "none"
        extra = ", ".join(sorted(found - expected)) or "none"
        raise SchemaMismatch(
            f"the backup's fields do not match {table.name}: missing {missing}; unexpected {extra}"
        )
    for name, avro_type in fields.items():
        column = table.column(renames[name])
        if not _fits(column.kind, avro_type):
            raise SchemaMismatch(
                f"field {name!r} has type {json.dumps(avro_type)}, which cannot fill "
                f"{table.name}.{column.name}"
            )
    return renames


def _fits(kind: dictionary.Kind, avro_type: Any) -> bool:
    if isinstance(avro_type, list):  # a union: every non-null branch must fit
        branches = [t for t in avro_type if t != "null"]
        return bool(branches) and all(_fits(kind, t) for t in branches)
    base = avro_type.get("type") if isinstance(avro_type, dict) else avro_type
    logical = avro_type.get("logicalType") if isinstance(avro_type, dict) else None
    if isinstance(kind, Integer):
        return base in ("int", "long") and logical is None
    if isinstance(kind, Text):
        return base == "string"
    if isinstance(kind, Timestamp):
        return base == "string" or (
            base == "long" and logical in ("timestamp-micros", "timestamp-millis")
        )
    return False
