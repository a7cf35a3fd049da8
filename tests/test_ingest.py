"""The ingest pipeline against the real database: rules, references, repeats, atomic batches,
the rejection log, the audit rows, batch sizes, concurrent writers and the structured log."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from backend.dictionary import HIRED_EMPLOYEES, MAX_BATCH_ROWS
from backend.models import Batch, Department, HiredEmployee, Job, Rejection, Source
from jobs.ingest import (
    BatchSizeError,
    IngestResult,
    check_batch_size,
    check_rows,
    in_transaction,
    ingest_rows,
)
from tests.conftest import employee

pytestmark = pytest.mark.django_db


def codes(result: IngestResult) -> dict[int, list[str]]:
    """The reason codes of every rejection, by position."""
    return {r.position: [reason.code for reason in r.reasons] for r in result.rejections}


def stored_ids() -> list[int]:
    return list(HiredEmployee.objects.order_by("id").values_list("id", flat=True))


def logged(batch_id: Any) -> dict[int, list[str]]:
    """The reason codes stored in the Rejection table for a batch, by position."""
    rows = Rejection.objects.filter(batch_id=batch_id).order_by("position")
    return {r.position: [reason["code"] for reason in r.reasons] for r in rows}


@pytest.fixture
def seeded() -> None:
    """Departments 1, 2 and jobs 1, 2 for employees to reference."""
    Department.objects.bulk_create(
        [Department(id=1, department="Sales"), Department(id=2, department="Research")]
    )
    Job.objects.bulk_create([Job(id=1, job="Clerk"), Job(id=2, job="Engineer")])


def ingest(rows: list[Any], **options: Any) -> IngestResult:
    options.setdefault("table", "hired_employees")
    options.setdefault("source", Source.REST)
    return ingest_rows(rows=rows, **options)


# --- valid rows ----------------------------------------------------------------------------


def test_valid_rows_are_stored_cleaned(seeded: None) -> None:
    result = ingest(
        [
            employee(1, name="  Ada  ", datetime="2021-07-27T18:02:08+02:00"),
            employee("2", datetime="2021-07-27 16:02", department_id="2", job_id=" 2 "),
        ]
    )
    assert (result.received, result.inserted, result.rejected, result.status) == (
        2,
        2,
        0,
        "completed",
    )
    ada, second = HiredEmployee.objects.order_by("id")
    assert (ada.id, ada.name, ada.datetime, ada.department_id, ada.job_id) == (
        1,
        "Ada",
        datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC),
        1,
        1,
    )
    assert (second.id, second.datetime, second.department_id, second.job_id) == (
        2,
        datetime(2021, 7, 27, 16, 2, tzinfo=UTC),
        2,
        2,
    )
    assert Rejection.objects.count() == 0


def test_departments_and_jobs_are_ingested_by_table_name() -> None:
    departments = ingest_rows(
        table="departments", rows=[{"id": 1, "department": "Sales"}], source=Source.CSV
    )
    jobs = ingest_rows(
        table="jobs", rows=[{"id": "5", "job": " VP "}, {"id": 6, "job": ""}], source="graphql"
    )
    assert (departments.inserted, jobs.inserted, jobs.rejected) == (1, 1, 1)
    assert list(Department.objects.values_list("id", "department")) == [(1, "Sales")]
    assert list(Job.objects.values_list("id", "job")) == [(5, "VP")]
    assert codes(jobs) == {1: ["required"]}
    rejection = Rejection.objects.get()
    assert (rejection.table, rejection.source, rejection.row_id) == ("jobs", "graphql", 6)


def test_table_may_be_given_as_a_dictionary_table(seeded: None) -> None:
    result = ingest_rows(table=HIRED_EMPLOYEES, rows=[employee(1)], source=Source.GRAPHQL)
    assert (result.table, result.inserted, stored_ids()) == ("hired_employees", 1, [1])


def test_unknown_table_name_raises_key_error_and_stores_nothing() -> None:
    with pytest.raises(KeyError, match="unknown table 'employees'"):
        ingest_rows(table="employees", rows=[{"id": 1}], source=Source.REST)
    assert (Batch.objects.count(), Rejection.objects.count()) == (0, 0)


# --- every rule, as the pipeline reports it ------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"name": None}, "name", "required"),
        ({"name": "   "}, "name", "required"),
        ({"id": True}, "id", "invalid_type"),
        ({"id": 1.5}, "id", "invalid_type"),
        ({"id": "abc"}, "id", "invalid_type"),
        ({"department_id": [1]}, "department_id", "invalid_type"),
        ({"name": 12}, "name", "invalid_type"),
        ({"id": 0}, "id", "not_positive"),
        ({"id": -1}, "id", "not_positive"),
        ({"job_id": 2**31}, "job_id", "out_of_range"),
        ({"name": "n" * 256}, "name", "too_long"),
        ({"datetime": "2021-07-27"}, "datetime", "invalid_datetime"),
        ({"datetime": "2021/01/01 10:00"}, "datetime", "invalid_datetime"),
        ({"datetime": "not a date"}, "datetime", "invalid_datetime"),
        ({"datetime": "2021-13-01T10:00:00"}, "datetime", "invalid_datetime"),
        ({"salary": 10}, "salary", "unknown_field"),
        ({"department_id": 99}, "department_id", "unknown_reference"),
        ({"job_id": 99}, "job_id", "unknown_reference"),
    ],
    ids=lambda value: repr(value)[:40] if isinstance(value, dict) else str(value),
)
def test_each_rule_rejects_the_row_with_its_code(
    seeded: None, changes: dict[str, Any], field: str, code: str
) -> None:
    result = ingest([employee(1), employee(7, **changes)])
    assert (result.inserted, result.rejected, stored_ids()) == (1, 1, [1])
    (rejection,) = result.rejections
    assert [(r.field, r.code) for r in rejection.reasons] == [(field, code)]
    stored = Rejection.objects.get()
    assert [(r["field"], r["code"]) for r in stored.reasons] == [(field, code)]


def test_missing_key_is_required(seeded: None) -> None:
    raw = employee(3)
    del raw["datetime"]
    result = ingest([raw])
    assert codes(result) == {0: ["required"]}
    assert Rejection.objects.get().reasons == [
        {"field": "datetime", "code": "required", "message": "is required"}
    ]


def test_name_of_255_characters_is_stored_and_trimmed_before_measuring(seeded: None) -> None:
    result = ingest([employee(1, name="a" * 255), employee(2, name="  " + "b" * 255 + "  ")])
    assert (result.inserted, result.rejected) == (2, 0)
    names = list(HiredEmployee.objects.order_by("id").values_list("name", flat=True))
    assert names == ["a" * 255, "b" * 255]


def test_naive_datetime_is_stored_as_utc_and_offsets_are_converted(seeded: None) -> None:
    ingest(
        [
            employee(1, datetime="2021-01-01T10:00:00"),
            employee(2, datetime="2021-01-01 10:00:00"),
            employee(3, datetime="2021-01-01T12:00:00+02:00"),
            employee(4, datetime="2021-01-01T05:00:00-0500"),
            employee(5, datetime="2021-01-01T10:00:00Z"),
        ]
    )
    moments = set(HiredEmployee.objects.values_list("datetime", flat=True))
    assert moments == {datetime(2021, 1, 1, 10, tzinfo=UTC)}
    assert HiredEmployee.objects.filter(datetime__hour=10).count() == 5


def test_unknown_references_on_both_keys_are_both_reported(seeded: None) -> None:
    result = ingest([employee(1, department_id=50, job_id="60")])
    (rejection,) = result.rejections
    assert [reason.as_dict() for reason in rejection.reasons] == [
        {
            "field": "department_id",
            "code": "unknown_reference",
            "message": "department 50 does not exist",
        },
        {"field": "job_id", "code": "unknown_reference", "message": "job 60 does not exist"},
    ]
    assert stored_ids() == []


def test_unknown_reference_checks_many_ids_in_one_batch(seeded: None) -> None:
    Department.objects.bulk_create([Department(id=i, department=f"D{i}") for i in range(3, 1200)])
    rows = [employee(i, department_id=i) for i in range(1, 1001)]
    rows[-1]["department_id"] = 5000
    result = ingest(rows)
    assert (result.inserted, codes(result)) == (999, {999: ["unknown_reference"]})


def test_several_reasons_on_one_row_are_all_logged(seeded: None) -> None:
    raw = {"id": "x", "name": "", "datetime": "2021-02-30T00:00:00", "job_id": 0, "extra": 1}
    result = ingest([raw])
    expected = [
        ("extra", "unknown_field"),
        ("id", "invalid_type"),
        ("name", "required"),
        ("datetime", "invalid_datetime"),
        ("department_id", "required"),
        ("job_id", "not_positive"),
    ]
    assert [(r.field, r.code) for r in result.rejections[0].reasons] == expected
    stored = Rejection.objects.get()
    assert [(r["field"], r["code"]) for r in stored.reasons] == expected
    assert (stored.raw, stored.row_id) == (raw, None)


def test_non_object_rows_are_invalid_rows_logged_as_received(seeded: None) -> None:
    result = ingest([["1", "Ada"], "1,Ada", None, 42, employee(9)])
    assert (result.inserted, result.rejected) == (1, 4)
    assert codes(result) == {i: ["invalid_row"] for i in range(4)}
    stored = list(Rejection.objects.order_by("position").values_list("position", "row_id", "raw"))
    assert stored == [(0, None, ["1", "Ada"]), (1, None, "1,Ada"), (2, None, None), (3, None, 42)]


# --- duplicates ----------------------------------------------------------------------------


def test_duplicate_of_a_stored_id_is_rejected_and_the_stored_row_kept(seeded: None) -> None:
    ingest([employee(5, name="Original")])
    result = ingest([employee(5, name="Impostor"), employee(6)])
    assert (result.inserted, codes(result)) == (1, {0: ["duplicate"]})
    assert result.rejections[0].reasons[0].as_dict() == {
        "field": "id",
        "code": "duplicate",
        "message": "id 5 already exists in hired_employees",
    }
    assert HiredEmployee.objects.get(id=5).name == "Original"
    assert stored_ids() == [5, 6]


def test_duplicate_in_batch_rejects_the_second_occurrence_and_inserts_the_first(
    seeded: None,
) -> None:
    result = ingest([employee(3, name="First"), employee(4), employee("3", name="Second")])
    assert (result.inserted, codes(result)) == (2, {2: ["duplicate_in_batch"]})
    assert HiredEmployee.objects.get(id=3).name == "First"
    assert result.rejections[0].reasons[0].message == "id 3 repeats row 0 of this batch"
    assert Rejection.objects.get().row_id == 3


def test_duplicate_in_batch_message_names_the_first_rows_position(seeded: None) -> None:
    result = ingest([employee(3), employee(3)], positions=[10, 11])
    (rejection,) = result.rejections
    assert rejection.position == 11
    assert rejection.reasons[0].message == "id 3 repeats row 10 of this batch"


def test_first_valid_occurrence_claims_the_id_when_an_earlier_one_is_invalid(
    seeded: None,
) -> None:
    result = ingest(
        [employee(8, name=""), employee(8, department_id=77), employee(8, name="Valid")]
    )
    assert codes(result) == {0: ["required"], 1: ["unknown_reference"]}
    assert (result.inserted, HiredEmployee.objects.get(id=8).name) == (1, "Valid")


def test_stored_id_repeated_in_batch_gives_duplicate_then_duplicate_in_batch(
    seeded: None,
) -> None:
    ingest([employee(5)])
    result = ingest([employee(5), employee(5)])
    assert (result.inserted, codes(result)) == (0, {0: ["duplicate"], 1: ["duplicate_in_batch"]})


# --- the rejection log and the audit row --------------------------------------------------


def test_mixed_batch_stores_valid_rows_and_logs_invalid_ones(seeded: None) -> None:
    rows = [
        employee(1),
        {
            "id": "2",
            "name": "  Bo ",
            "datetime": "2021-07-27",
            "department_id": 1,
            "job_id": 1,
            "note": {"nested": [1, None, True, 2.5]},
        },
        employee(3),
        employee(4, department_id=42),
        employee(5, job_id=2),
    ]
    result = ingest(rows, source=Source.GRAPHQL, uri="s3://bucket/key")
    assert (result.received, result.inserted, result.rejected, result.status) == (
        5,
        3,
        2,
        "completed",
    )
    assert stored_ids() == [1, 3, 5]

    batch = Batch.objects.get()
    assert batch.id == result.batch_id
    assert (batch.source, batch.table, batch.uri, batch.atomic) == (
        "graphql",
        "hired_employees",
        "s3://bucket/key",
        False,
    )
    assert (batch.received, batch.inserted, batch.rejected, batch.status) == (5, 3, 2, "completed")
    assert batch.error == ""
    assert batch.started_at <= batch.finished_at

    logged_rows = list(Rejection.objects.order_by("position"))
    assert [(r.batch_id, r.source, r.table) for r in logged_rows] == [
        (result.batch_id, "graphql", "hired_employees")
    ] * 2
    first, second = logged_rows
    assert (first.position, first.row_id, first.raw) == (1, 2, rows[1])
    assert first.raw["name"] == "  Bo "  # exactly as received, not trimmed
    assert first.raw["note"] == {"nested": [1, None, True, 2.5]}
    assert first.reasons == [
        {"field": "note", "code": "unknown_field", "message": "is not a column of hired_employees"},
        {
            "field": "datetime",
            "code": "invalid_datetime",
            "message": "must be an ISO 8601 date and time such as 2021-07-27T16:02:08Z,"
            " got '2021-07-27'",
        },
    ]
    assert (second.position, second.row_id, second.raw) == (3, 4, rows[3])
    assert second.reasons == [
        {
            "field": "department_id",
            "code": "unknown_reference",
            "message": "department 42 does not exist",
        }
    ]
    assert all(set(reason) == {"field", "code", "message"} for reason in second.reasons)


def test_rejection_row_id_only_when_it_fits_an_integer(seeded: None) -> None:
    rows = [
        employee(0),
        employee(" 12 ", name=""),
        employee(2**31),
        employee(-5),
        employee(True, name=""),
        employee("abc"),
        employee(None),
    ]
    result = ingest(rows)
    assert result.rejected == 7
    assert [r.row_id for r in result.rejections] == [0, 12, None, -5, None, None, None]
    stored = list(Rejection.objects.order_by("position").values_list("row_id", flat=True))
    assert stored == [0, 12, None, -5, None, None, None]


def test_rows_with_extreme_values_are_rejected_not_crashing_the_batch(seeded: None) -> None:
    rows = [
        employee("9" * 5000, name="Huge"),
        employee("²"),
        employee(float("nan")),
        employee(4, datetime="0001-01-01T00:00:00+01:00"),
        employee(5),
    ]
    result = ingest(rows)
    assert (result.inserted, stored_ids()) == (1, [5])
    assert codes(result) == {
        0: ["out_of_range"],
        1: ["invalid_type"],
        2: ["invalid_type"],
        3: ["invalid_datetime"],
    }
    assert [r.row_id for r in result.rejections] == [None, None, None, 4]
    assert logged(result.batch_id) == codes(result)
    raws = list(Rejection.objects.order_by("position").values_list("raw", flat=True))
    assert raws[0]["id"] == "9" * 5000
    assert raws[1]["id"] == "²"
    assert raws[2]["id"] == "nan"  # JSON has no NaN: kept as its text


def test_text_no_database_can_store_is_rejected_and_logged_escaped(seeded: None) -> None:
    rows = [
        employee(1, name="A\x00da"),
        employee(2, name="Bo\ud800"),
        employee(3, name="", **{"x\x00": "v\x00"}),
        employee(4, name="José 😀"),
    ]
    result = ingest(rows)
    assert (result.inserted, stored_ids()) == (1, [4])
    assert HiredEmployee.objects.get().name == "José 😀"
    assert codes(result) == {
        0: ["control_character"],
        1: ["invalid_type"],
        2: ["unknown_field", "required"],
    }
    assert logged(result.batch_id) == codes(result)
    first, second, third = Rejection.objects.order_by("position")
    assert (first.raw["name"], second.raw["name"]) == ("A\\u0000da", "Bo\\ud800")
    assert third.raw["x\\u0000"] == "v\\u0000"
    assert third.reasons[0]["field"] == "x\\u0000"


@pytest.mark.parametrize("source", [Source.REST, Source.CSV])
def test_invisible_and_control_character_names_are_rejected_and_logged(
    seeded: None, source: str
) -> None:
    # CSV: 1,500 rows go through COPY on PostgreSQL; the first rows carry the hostile names.
    rows = [
        employee(1, name="\u200b"),
        employee(2, name="\ufeff\u200b\u00a0"),
        employee(3, name="Ada\nLovelace"),
        employee(4, name="Mal\x1b[2Jlory"),
        employee(5, name="\u200bGrace Hopper\ufeff"),
        employee(6, name="👩\u200d💻 Lin"),
        employee(7, name="Bob\x00"),
    ]
    rows += [employee(i) for i in range(8, 1501)]
    result = ingest(rows, source=source)
    assert codes(result) == {
        0: ["required"],
        1: ["required"],
        2: ["control_character"],
        3: ["control_character"],
        6: ["control_character"],  # at an end too: refused, never cut
    }
    assert logged(result.batch_id) == codes(result)
    assert (result.inserted, stored_ids()[:4]) == (1495, [5, 6, 8, 9])
    names = dict(HiredEmployee.objects.filter(id__in=[5, 6, 7]).values_list("id", "name"))
    assert names == {5: "Grace Hopper", 6: "👩\u200d💻 Lin"}
    raws = Rejection.objects.filter(batch_id=result.batch_id).order_by("position")
    assert [r.raw["name"] for r in raws] == [
        "\u200b",
        "\ufeff\u200b\u00a0",
        "Ada\nLovelace",
        "Mal\x1b[2Jlory",
        "Bob\\u0000",  # NUL is stored as its escape text
    ]


def test_positions_number_the_rejections(seeded: None) -> None:
    rows = [employee(1), employee(2, name=""), employee(3), employee(4, job_id="x")]
    result = ingest(rows, positions=[2, 3, 5, 9], source=Source.CSV)
    assert codes(result) == {3: ["required"], 9: ["invalid_type"]}
    assert sorted(Rejection.objects.values_list("position", "row_id")) == [(3, 2), (9, 4)]


def test_positions_must_number_every_row(seeded: None) -> None:
    with pytest.raises(ValueError, match=r"must (number|cover) every row"):
        ingest([employee(1), employee(2)], positions=[1])
    assert (stored_ids(), Batch.objects.count()) == ([], 0)


def test_every_batch_leaves_its_own_audit_row(seeded: None) -> None:
    first = ingest([employee(1)], source=Source.CSV, uri="file:///a.csv")
    second = ingest([employee(1), employee(2)], source=Source.RESTORE)
    batches = {b.id: b for b in Batch.objects.all()}
    assert set(batches) == {first.batch_id, second.batch_id}
    assert (batches[first.batch_id].source, batches[first.batch_id].uri) == (
        "csv",
        "file:///a.csv",
    )
    b = batches[second.batch_id]
    assert (b.source, b.received, b.inserted, b.rejected, b.status) == (
        "restore",
        2,
        1,
        1,
        "completed",
    )
    assert logged(second.batch_id) == {0: ["duplicate"]}
    assert logged(first.batch_id) == {}


# --- atomic batches ------------------------------------------------------------------------


def test_atomic_batch_with_one_invalid_row_stores_nothing_and_logs_every_row(
    seeded: None,
) -> None:
    rows = [employee(1), employee(2, name=""), employee(3)]
    result = ingest(rows, atomic=True)
    assert (result.received, result.inserted, result.rejected, result.status) == (
        3,
        0,
        3,
        "rejected",
    )
    assert stored_ids() == []
    assert codes(result) == {0: ["batch_aborted"], 1: ["required"], 2: ["batch_aborted"]}
    assert logged(result.batch_id) == codes(result)
    aborted = Rejection.objects.get(position=0)
    assert (aborted.row_id, aborted.raw) == (1, rows[0])
    assert aborted.reasons == [
        {
            "field": None,
            "code": "batch_aborted",
            "message": "not inserted: the atomic batch has invalid rows",
        }
    ]
    batch = Batch.objects.get()
    assert (batch.atomic, batch.inserted, batch.rejected, batch.status) == (True, 0, 3, "rejected")


def test_atomic_batch_with_a_duplicate_of_a_stored_row_stores_nothing(seeded: None) -> None:
    ingest([employee(2, name="Stored")])
    result = ingest([employee(1), employee(2, name="New"), employee(3)], atomic=True)
    assert (result.inserted, result.status) == (0, "rejected")
    assert codes(result) == {0: ["batch_aborted"], 1: ["duplicate"], 2: ["batch_aborted"]}
    assert stored_ids() == [2]
    assert HiredEmployee.objects.get(id=2).name == "Stored"
    batch = Batch.objects.get(id=result.batch_id)
    assert (batch.inserted, batch.rejected, batch.status) == (0, 3, "rejected")
    assert logged(result.batch_id) == codes(result)


def test_atomic_batch_with_a_repeat_in_the_batch_stores_nothing(seeded: None) -> None:
    result = ingest([employee(1), employee(1)], atomic=True)
    assert codes(result) == {0: ["batch_aborted"], 1: ["duplicate_in_batch"]}
    assert (result.inserted, stored_ids()) == (0, [])


def test_atomic_batch_of_valid_rows_is_stored_completely(seeded: None) -> None:
    result = ingest([employee(i) for i in range(1, 6)], atomic=True)
    assert (result.inserted, result.rejected, result.status) == (5, 0, "completed")
    assert stored_ids() == [1, 2, 3, 4, 5]
    assert Batch.objects.get().status == "completed"


def test_atomic_batch_of_only_invalid_rows_is_rejected(seeded: None) -> None:
    result = ingest([employee(0), "x"], atomic=True)
    assert (result.inserted, result.status, codes(result)) == (
        0,
        "rejected",
        {0: ["not_positive"], 1: ["invalid_row"]},
    )


# --- batch sizes ---------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, -1, MAX_BATCH_ROWS + 1, 10_000])
def test_check_batch_size_refuses_empty_and_oversized_batches(count: int) -> None:
    with pytest.raises(BatchSizeError, match=f"1 to 1000 rows, got {count}"):
        check_batch_size(count)


@pytest.mark.parametrize("count", [1, 500, MAX_BATCH_ROWS])
def test_check_batch_size_accepts_1_to_1000(count: int) -> None:
    assert check_batch_size(count) is None


def test_batch_size_error_is_a_value_error() -> None:
    assert issubclass(BatchSizeError, ValueError)


def test_batch_of_one_row(seeded: None) -> None:
    check_batch_size(1)
    result = ingest([employee(1)])
    assert (result.inserted, stored_ids()) == (1, [1])


def test_batch_of_1000_rows_is_stored_completely(seeded: None) -> None:
    rows = [employee(i, job_id=1 + i % 2) for i in range(1, MAX_BATCH_ROWS + 1)]
    check_batch_size(len(rows))
    result = ingest(rows)
    assert (result.received, result.inserted, result.rejected) == (1000, 1000, 0)
    assert HiredEmployee.objects.count() == 1000
    assert HiredEmployee.objects.filter(job_id=2).count() == 500
    assert stored_ids() == list(range(1, 1001))


def test_large_file_chunk_with_duplicates_spread_over_pages(seeded: None) -> None:
    """More rows than one INSERT takes on SQLite (999 parameters): every page is written."""
    ingest([employee(i) for i in range(1, 3001, 7)])
    result = ingest([employee(i) for i in range(1, 3001)], source=Source.CSV)
    already = len(range(1, 3001, 7))
    assert (result.inserted, result.rejected) == (3000 - already, already)
    assert {code for c in codes(result).values() for code in c} == {"duplicate"}
    assert stored_ids() == list(range(1, 3001))


def test_empty_batch_records_an_empty_audit_row() -> None:
    result = ingest([])
    assert (result.received, result.inserted, result.rejected, result.status) == (
        0,
        0,
        0,
        "completed",
    )
    assert Batch.objects.get().received == 0


# --- the structured log --------------------------------------------------------------------


def test_one_structured_log_record_per_rejected_row(
    seeded: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="roster.ingest")
    result = ingest(
        [employee(1), employee(2, name=""), employee(3, department_id=9), "junk"],
        positions=[4, 5, 6, 7],
        source=Source.CSV,
    )
    names = {"row rejected": logging.WARNING, "row parked": logging.INFO}
    rejected = [r for r in caplog.records if r.name == "roster.ingest" and r.msg in names]
    assert len(rejected) == result.rejected == 3
    # a row missing only a reference is parked, not a fault yet: its line is at INFO
    assert [(r.msg, r.levelno) for r in rejected] == [
        ("row rejected", logging.WARNING), ("row parked", logging.INFO),
        ("row rejected", logging.WARNING),
    ]  # fmt: skip
    assert [(r.position, r.row_id) for r in rejected] == [(5, 2), (6, 3), (7, None)]
    assert {(r.batch_id, r.source, r.table) for r in rejected} == {
        (str(result.batch_id), "csv", "hired_employees")
    }
    assert rejected[0].reasons == [{"field": "name", "code": "required", "message": "is required"}]
    assert [reason["code"] for reason in rejected[1].reasons] == ["unknown_reference"]
    assert rejected[2].reasons[0]["code"] == "invalid_row"

    (summary,) = [r for r in caplog.records if r.msg == "batch ingested"]
    assert summary.levelno == logging.INFO
    assert (summary.received, summary.inserted, summary.rejected, summary.status) == (
        4,
        1,
        3,
        "completed",
    )
    assert summary.batch_id == str(result.batch_id)
    assert summary.seconds >= 0


def test_no_row_rejected_record_for_a_clean_batch(
    seeded: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="roster.ingest")
    ingest([employee(1), employee(2)])
    assert [r.msg for r in caplog.records if r.name == "roster.ingest"] == ["batch ingested"]


# --- concurrent writers --------------------------------------------------------------------


def _run_writers(batches: dict[str, list[dict[str, Any]]]) -> dict[str, IngestResult]:
    """Run one ingest_rows per batch, each in its own thread and connection, all at once."""
    barrier = threading.Barrier(len(batches))
    results: dict[str, IngestResult] = {}
    errors: list[BaseException] = []

    def write(name: str, rows: list[dict[str, Any]]) -> None:
        try:
            barrier.wait(timeout=30)
            results[name] = ingest_rows(table="hired_employees", rows=rows, source=Source.REST)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=item) for item in batches.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    assert errors == []
    return results


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_writers_with_overlapping_ids_store_each_id_once() -> None:
    Department.objects.create(id=1, department="Sales")
    Job.objects.create(id=1, job="Clerk")
    for round_number in range(3):
        base = round_number * 1000
        a_ids = range(base + 1, base + 601)
        b_ids = range(base + 300, base + 901)
        results = _run_writers(
            {
                "A": [employee(i, name=f"A {i}") for i in a_ids],
                "B": [employee(i, name=f"B {i}") for i in b_ids],
            }
        )
        a, b = results["A"], results["B"]
        overlap = set(a_ids) & set(b_ids)
        assert len(overlap) == 301

        ids = list(
            HiredEmployee.objects.filter(id__gt=base, id__lte=base + 1000)
            .order_by("id")
            .values_list("id", flat=True)
        )
        assert ids == list(range(base + 1, base + 901))
        assert a.inserted + b.inserted == 900
        assert (a.received, b.received) == (600, 601)

        rejected_a = {r.row_id for r in a.rejections}
        rejected_b = {r.row_id for r in b.rejections}
        assert rejected_a.isdisjoint(rejected_b)
        assert rejected_a | rejected_b == overlap
        assert a.rejected + b.rejected == 301
        assert {c for r in (a, b) for codes_ in codes(r).values() for c in codes_} == {"duplicate"}
        # Each id stored is the version of the writer that did not reject it.
        names = dict(
            HiredEmployee.objects.filter(id__in=overlap).values_list("id", "name").iterator()
        )
        assert all(names[i] == ("B" if i in rejected_a else "A") + f" {i}" for i in overlap)

        logged_rows = Rejection.objects.filter(batch_id__in=[a.batch_id, b.batch_id])
        assert sorted(logged_rows.values_list("row_id", flat=True)) == sorted(overlap)
        assert {r["code"] for row in logged_rows for r in row.reasons} == {"duplicate"}
        assert Rejection.objects.count() == 301 * (round_number + 1)
        audit = Batch.objects.filter(id__in=[a.batch_id, b.batch_id])
        assert sorted(audit.values_list("inserted", flat=True)) == sorted([a.inserted, b.inserted])
    assert HiredEmployee.objects.count() == 2700


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_of_the_same_ids_in_opposite_orders_do_not_deadlock() -> None:
    Department.objects.create(id=1, department="Sales")
    Job.objects.create(id=1, job="Clerk")
    ids = list(range(1, 401))
    results = _run_writers(
        {
            "up": [employee(i) for i in ids],
            "down": [employee(i) for i in reversed(ids)],
            "odd": [employee(i) for i in ids if i % 2],
        }
    )
    assert sum(r.inserted for r in results.values()) == 400
    assert sum(r.rejected for r in results.values()) == 400 + 200
    assert stored_ids() == ids
    # the same rows rejected by two writers: one entry each, with both attempts counted
    assert Rejection.objects.count() == 400
    assert sum(Rejection.objects.values_list("attempts", flat=True)) == 600
    assert Batch.objects.filter(status="completed").count() == 3


# --- transactions started again, and the COPY path's CSV ----------------------------------


class _Deadlock(Exception):
    """What psycopg2 raises when PostgreSQL breaks a deadlock (Django wraps it)."""

    pgcode = "40P01"


@pytest.mark.django_db(transaction=True)
def test_in_transaction_starts_again_after_a_deadlock_and_keeps_one_outcome() -> None:
    calls: list[int] = []

    def work() -> int:
        calls.append(len(calls) + 1)
        Department.objects.create(id=900 + len(calls), department=f"Try {len(calls)}")
        if len(calls) == 1:
            raise DatabaseError("deadlock detected") from _Deadlock()
        return len(calls)

    assert in_transaction(work) == 2
    assert list(Department.objects.values_list("id", flat=True)) == [902]


@pytest.mark.django_db(transaction=True)
def test_in_transaction_does_not_repeat_other_errors() -> None:
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        Department.objects.create(id=901, department="Once")
        Department.objects.create(id=901, department="Twice")

    with pytest.raises(IntegrityError):
        in_transaction(work)
    assert calls == [1]
    assert Department.objects.count() == 0


def test_in_transaction_inside_a_callers_transaction_is_a_savepoint_and_no_retry(db) -> None:
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        Department.objects.create(id=903, department="Undone")
        raise DatabaseError("deadlock detected") from _Deadlock()

    with transaction.atomic():
        Department.objects.create(id=904, department="Kept")
        with pytest.raises(DatabaseError):
            in_transaction(work)
        assert list(Department.objects.values_list("id", flat=True)) == [904]
    assert calls == [1]


def test_check_rows_is_the_only_way_to_build_checked_rows() -> None:
    checked = check_rows(table="departments", rows=[{"id": 1, "department": "A"}])
    with pytest.raises(ValueError, match="order must list every valid row"):
        type(checked)(checked.table, checked.raws, checked.valid, {}, [], {}, False, None)


TRICKY_NAMES = [
    "Comma, Inc.",
    'Quote "the" name',
    "Back\\slash \\. \\N",
    "NULL",
    "Ünïcödé 名前 🎉",
    "Zero\u200dwidth joiner",
    "No-break\u00a0space",
]
CONTROL_NAMES = ["Line\nbreak", "Carriage\rreturn", "Tab\tinside"]  # rejected, never stored


def test_a_file_chunk_stores_every_character_of_its_names_exactly(seeded: None) -> None:
    """More than 1000 rows from a file: COPY on PostgreSQL, multi-row INSERTs on SQLite."""
    rows = [employee(i, name=TRICKY_NAMES[i % len(TRICKY_NAMES)] + f" {i}") for i in range(1, 1501)]
    rows += [employee(1500 + i, name=name) for i, name in enumerate(CONTROL_NAMES, start=1)]
    result = ingest(rows, source=Source.CSV)
    assert (result.inserted, result.rejected) == (1500, 3)
    assert codes(result) == {1500 + i: ["control_character"] for i in range(3)}
    stored = dict(HiredEmployee.objects.values_list("id", "name"))
    assert stored == {row["id"]: row["name"] for row in rows[:1500]}
    assert HiredEmployee.objects.get(id=1).datetime == datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC)
