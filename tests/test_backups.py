"""AVRO backups and restores: the jobs, the commands and the Lambdas, on a folder and on S3."""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import io
import json
import os
import posixpath
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.core.management import CommandError, call_command
from django.test import override_settings
from storages.backends.s3 import S3Storage

from backend import dictionary
from backend.models import MODELS, Batch, Department, HiredEmployee, Job, Rejection, Source
from jobs.avro import fingerprint, schema_for
from jobs.backups import (
    BackupError,
    backup_tables,
    latest_backup,
    list_backups,
    prune_backups,
    restore_tables,
)
from jobs.ingest import ingest_rows
from lambdas import backup as backup_lambda
from lambdas import restore as restore_lambda

# --- helpers ---------------------------------------------------------------------------------


def _folder(path: Path) -> dict[str, Any]:
    return {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(path)},
    }


def _s3(bucket: str, endpoint: str) -> dict[str, Any]:
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint,
            "default_acl": None,
            "file_overwrite": False,
        },
    }


@pytest.fixture(params=["folder", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """The backup storage: a fresh folder, or a fresh bucket on the S3 test server."""
    if request.param == "folder":
        backend = _folder(tmp_path / "backups")
    else:
        backend = _s3(request.getfixturevalue("bucket"), request.getfixturevalue("s3_server"))
    with override_settings(STORAGES={**settings.STORAGES, "backups": backend}):
        yield storages["backups"]


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A folder backup storage, for tests that damage files on disk."""
    location = tmp_path / "backups"
    with override_settings(STORAGES={**settings.STORAGES, "backups": _folder(location)}):
        yield location


def checksum(table: str) -> str:
    """SHA-256 of a table's rows in id order, datetimes in UTC."""
    columns = dictionary.table(table).column_names
    digest = hashlib.sha256()
    for row in MODELS[table].objects.order_by("id").values_list(*columns):
        values = [v.astimezone(UTC).isoformat() if isinstance(v, datetime) else v for v in row]
        digest.update(repr(values).encode())
    return digest.hexdigest()


def checksums() -> dict[str, str]:
    return {table: checksum(table) for table in dictionary.TABLES}


def counts() -> tuple[int, int, int]:
    return Department.objects.count(), Job.objects.count(), HiredEmployee.objects.count()


def command(name: str, *args: str) -> str:
    out = io.StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def read_avro(storage: Storage, key: str) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """The writer schema, the records and the codec of a file in the storage."""
    with storage.open(key, "rb") as stream:
        reader = fastavro.reader(io.BytesIO(stream.read()))
        return reader.writer_schema, list(reader), reader.codec


def avro_bytes(schema: dict[str, Any], records: list[dict[str, Any]]) -> bytes:
    out = io.BytesIO()
    fastavro.writer(out, schema, records)
    return out.getvalue()


def put(storage: Storage, key: str, data: bytes) -> None:
    """Write ``data`` at exactly ``key``, replacing what is there."""
    if storage.exists(key):
        storage.delete(key)
    assert storage.save(key, ContentFile(data)) == key


def fetch(storage: Storage, key: str) -> bytes:
    with storage.open(key, "rb") as stream:
        return stream.read()


def small_data() -> None:
    """A few rows with non-ASCII names in every table."""
    ingest_rows(
        table="departments",
        rows=[{"id": 1, "department": "Recherche & Développement"}, {"id": 2, "department": "Ops"}],
        source=Source.GRAPHQL,
    )
    ingest_rows(
        table="jobs",
        rows=[{"id": 1, "job": "Ingénieure 工程师"}, {"id": 2, "job": "Analyst"}],
        source=Source.GRAPHQL,
    )
    ingest_rows(
        table="hired_employees",
        rows=[
            {"id": 1, "name": "Zoë Ångström 李雷", "datetime": "2021-07-27T16:02:08Z",
             "department_id": 1, "job_id": 1},
            {"id": 2, "name": "Ana", "datetime": "2021-01-01T23:30:00-03:00",
             "department_id": 2, "job_id": 2},
            {"id": 3, "name": "Bo", "datetime": "2021-12-31T00:00:00.123456Z",
             "department_id": 1, "job_id": 2},
        ],
        source=Source.GRAPHQL,
    )  # fmt: skip


def mutate() -> int:
    """Change every table: delete, rename, add; return how many employees are left."""
    HiredEmployee.objects.filter(id__lte=20).delete()
    HiredEmployee.objects.filter(id__gt=1500).update(name="Changed")
    Job.objects.filter(id=1).update(job="Someone else")
    Department.objects.create(id=500, department="New")
    return HiredEmployee.objects.count()


# --- round trip ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_restore_all_command_is_the_identity_after_changes(storage, sample_data) -> None:
    before = checksums()
    output = command("backup")
    left = mutate()
    assert checksums() != before

    restored = command("restore", "--all")

    assert checksums() == before
    assert counts() == (12, 183, 1929)
    assert output.splitlines()[0].split()[:4] == ["table", "rows", "bytes", "seconds"]
    assert [line.split()[:2] for line in output.splitlines()[2:]] == [
        ["departments", "12"],
        ["jobs", "183"],
        ["hired_employees", "1929"],
    ]
    rows = [line.split()[:5] for line in restored.splitlines()[2:]]
    assert rows == [
        ["departments", "12", "12", "0", "13"],
        ["jobs", "183", "183", "0", "183"],
        ["hired_employees", "1929", "1929", "0", str(left)],
    ]


@pytest.mark.django_db
def test_restore_tables_is_the_identity_after_deleting_everything(storage, sample_data) -> None:
    before = checksums()
    written = backup_tables()
    HiredEmployee.objects.all().delete()
    Job.objects.all().delete()
    Department.objects.all().delete()

    summaries = restore_tables(tables=["hired_employees", "departments", "jobs"])

    assert checksums() == before
    assert [(s.table, s.key, s.read, s.inserted, s.rejected, s.replaced) for s in summaries] == [
        ("departments", written[0].key, 12, 12, 0, 0),
        ("jobs", written[1].key, 183, 183, 0, 0),
        ("hired_employees", written[2].key, 1929, 1929, 0, 0),
    ]
    assert Rejection.objects.filter(source="restore").count() == 0


@pytest.mark.django_db
def test_unicode_and_microseconds_survive_the_round_trip(folder) -> None:
    small_data()
    before = checksums()
    backup_tables()
    Department.objects.filter(id=1).update(department="x")
    HiredEmployee.objects.filter(id=1).update(name="x")

    restore_tables(tables=list(dictionary.TABLES))

    assert checksums() == before
    assert Department.objects.get(id=1).department == "Recherche & Développement"
    assert Job.objects.get(id=1).job == "Ingénieure 工程师"
    assert HiredEmployee.objects.get(id=1).name == "Zoë Ångström 李雷"
    assert HiredEmployee.objects.get(id=2).datetime == datetime(2021, 1, 2, 2, 30, tzinfo=UTC)
    assert HiredEmployee.objects.get(id=3).datetime == datetime(
        2021, 12, 31, 0, 0, 0, 123456, tzinfo=UTC
    )


@pytest.mark.django_db
def test_empty_tables_back_up_and_restore_to_empty(folder) -> None:
    written = backup_tables()
    assert [(b.table, b.rows) for b in written] == [
        ("departments", 0),
        ("jobs", 0),
        ("hired_employees", 0),
    ]
    small_data()

    summaries = restore_tables(tables=list(dictionary.TABLES))

    assert counts() == (0, 0, 0)
    assert [(s.read, s.inserted, s.replaced) for s in summaries] == [
        (0, 0, 2),
        (0, 0, 2),
        (0, 0, 3),
    ]
    _, records, _ = read_avro(storages["backups"], written[2].key)
    assert records == []


# --- what a backup writes --------------------------------------------------------------------


@pytest.mark.django_db
def test_backup_writes_avro_and_manifest_listed_newest_first(storage) -> None:
    small_data()
    first = backup_tables(tables=["departments"])
    time.sleep(0.002)
    second = backup_tables(tables=["hired_employees", "departments"])

    assert [b.table for b in second] == ["departments", "hired_employees"]
    (department,) = first
    stamp = department.key.removeprefix("departments/").removesuffix(".avro")
    assert datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC) == (
        datetime.fromisoformat(department.snapshot_time)
    )
    data = fetch(storage, department.key)
    manifest = json.loads(fetch(storage, department.key.removesuffix(".avro") + ".json"))
    assert manifest == {
        "table": "departments",
        "key": department.key,
        "rows": 2,
        "sha256": hashlib.sha256(data).hexdigest(),
        "schema_fingerprint": fingerprint(schema_for(dictionary.DEPARTMENTS)),
        "roster_version": department.roster_version,
        "snapshot_time": department.snapshot_time,
        "codec": "deflate",
        "size": len(data),
        "tables": ["departments"],
    }
    assert manifest["schema_fingerprint"].startswith("sha256:")
    assert manifest["roster_version"] not in ("", "unknown")
    assert datetime.fromisoformat(manifest["snapshot_time"]).utcoffset().total_seconds() == 0

    listed = list_backups()
    assert [b.key for b in listed] == [second[1].key, second[0].key, department.key]
    assert [b.key for b in list_backups("departments")] == [second[0].key, department.key]
    assert [b.rows for b in list_backups("departments")] == [2, 2]
    assert [b.key for b in list_backups("jobs")] == []
    assert second[0].key.split("/")[1] == second[1].key.split("/")[1]  # one snapshot


@pytest.mark.django_db
def test_avro_schema_is_a_named_record_with_docs_and_timestamp_micros(storage) -> None:
    small_data()
    (file,) = backup_tables(tables=["hired_employees"])

    schema, records, codec = read_avro(storage, file.key)

    assert codec == "deflate"
    assert schema["type"] == "record"
    assert schema["name"] == "roster.HiredEmployee"
    assert schema["doc"] == dictionary.HIRED_EMPLOYEES.doc
    fields = {field["name"]: field for field in schema["fields"]}
    assert list(fields) == ["id", "name", "datetime", "department_id", "job_id"]
    assert fields["datetime"]["type"] == {"type": "long", "logicalType": "timestamp-micros"}
    assert fields["id"]["type"] == "int"
    assert fields["name"]["type"] == "string"
    assert all(field["doc"] for field in fields.values())
    assert records[0] == {
        "id": 1,
        "name": "Zoë Ångström 李雷",
        "datetime": datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC),
        "department_id": 1,
        "job_id": 1,
    }
    assert [r["id"] for r in records] == [1, 2, 3]


@pytest.mark.django_db
def test_codec_null_works_and_an_unknown_codec_is_a_command_error(folder) -> None:
    small_data()
    output = command("backup", "jobs", "--codec", "null")
    (file,) = list_backups("jobs")
    _, records, codec = read_avro(storages["backups"], file.key)
    assert (codec, file.codec, len(records)) == ("null", "null", 2)
    assert file.key in output

    with pytest.raises(CommandError, match="codec 'nope' is not available here; use one of: null"):
        command("backup", "--codec", "nope")
    assert [b.key for b in list_backups()] == [file.key]
    assert sorted(p.name for p in folder.rglob("*")) == sorted(
        ["jobs", Path(file.key).name, Path(file.key).with_suffix(".json").name]
    )


# --- damaged files ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_truncated_file_without_manifest_is_refused_and_nothing_changes(
    folder, sample_data
) -> None:
    (file,) = backup_tables(tables=["hired_employees"])
    path = folder / file.key
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    (folder / file.key).with_suffix(".json").unlink()
    HiredEmployee.objects.filter(id__lte=100).delete()
    before, left = checksums(), HiredEmployee.objects.count()

    with pytest.raises(CommandError, match=rf"{file.key} is not a readable AVRO file"):
        command("restore", "hired_employees", "--backup", file.key)

    assert checksums() == before
    assert HiredEmployee.objects.count() == left < 1929
    assert Rejection.objects.filter(source="restore").count() == 0


@pytest.mark.django_db
def test_file_cut_at_a_block_boundary_without_manifest_is_refused(folder, sample_data) -> None:
    (file,) = backup_tables(tables=["hired_employees"])
    path = folder / file.key
    data = path.read_bytes()
    sync = data[-16:]  # every AVRO file ends with its sync marker
    ends = [i + 16 for i in range(len(data)) if data.startswith(sync, i)]
    assert len(ends) >= 3  # the header's, then one per block
    path.write_bytes(data[: ends[1]])  # the header and the first block: still readable
    assert 0 < sum(1 for _ in fastavro.reader(io.BytesIO(data[: ends[1]]))) < 1929
    path.with_suffix(".json").unlink()
    HiredEmployee.objects.filter(id__lte=100).delete()
    before = checksums()

    with pytest.raises(CommandError) as raised:
        command("restore", "hired_employees", "--backup", file.key)

    assert str(raised.value) == (
        f"{file.key} is a Roster backup without its manifest "
        f"{file.key.removesuffix('.avro')}.json: whether it is complete cannot be checked"
    )
    assert checksums() == before


@pytest.mark.django_db
def test_truncated_file_with_manifest_fails_its_checksum(folder) -> None:
    small_data()
    (file,) = backup_tables(tables=["departments"])
    data = fetch(storages["backups"], file.key)
    put(storages["backups"], file.key, data[: len(data) // 2])
    Department.objects.create(id=3, department="Third")
    before = checksums()

    with pytest.raises(BackupError, match="does not match its manifest's sha256"):
        restore_tables(tables=["departments"], backups={"departments": file.key})
    assert checksums() == before


@pytest.mark.django_db
def test_checksum_mismatch_with_the_manifest_is_refused(storage) -> None:
    small_data()
    (file,) = backup_tables(tables=["jobs"])
    manifest_key = file.key.removesuffix(".avro") + ".json"
    manifest = json.loads(fetch(storage, manifest_key))
    put(storage, manifest_key, json.dumps({**manifest, "sha256": "0" * 64}).encode())
    Job.objects.filter(id=2).update(job="Changed")
    before = checksums()

    with pytest.raises(CommandError) as raised:
        command("restore", "jobs", "--backup", file.key)

    assert str(raised.value) == (
        f"{file.key} does not match its manifest's sha256: the file is damaged"
    )
    assert checksums() == before
    assert Job.objects.get(id=2).job == "Changed"


@pytest.mark.django_db
def test_manifest_row_count_mismatch_is_refused(folder) -> None:
    small_data()
    (file,) = backup_tables(tables=["hired_employees"])
    manifest_path = (folder / file.key).with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "rows": 5}))
    HiredEmployee.objects.filter(id=2).delete()

    with pytest.raises(BackupError, match=rf"{file.key} holds 3 rows but its manifest says 5"):
        restore_tables(tables=["hired_employees"], backups={"hired_employees": file.key})
    assert list(HiredEmployee.objects.values_list("id", flat=True)) == [1, 3]


# --- schema mismatches -----------------------------------------------------------------------


@pytest.mark.django_db
def test_jobs_backup_under_departments_is_refused(folder) -> None:
    small_data()
    (file,) = backup_tables(tables=["jobs"])
    put(storages["backups"], "departments/from-jobs.avro", fetch(storages["backups"], file.key))
    before = checksums()

    with pytest.raises(CommandError) as raised:
        command("restore", "departments", "--backup", "departments/from-jobs.avro")

    assert str(raised.value) == (
        "departments/from-jobs.avro: the backup's fields do not match departments: "
        "missing department; unexpected job"
    )
    assert checksums() == before


def _departments_schema(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "Department", "fields": list(fields)}


ID = {"name": "id", "type": "long"}
NAME = {"name": "department", "type": "string"}


@pytest.mark.parametrize(
    ("schema", "records", "message"),
    [
        (
            _departments_schema(ID, NAME, {"name": "budget", "type": "long"}),
            [{"id": 7, "department": "Extra", "budget": 3}],
            "the backup's fields do not match departments: missing none; unexpected budget",
        ),
        (
            _departments_schema(ID),
            [{"id": 7}],
            "the backup's fields do not match departments: missing department; unexpected none",
        ),
        (
            _departments_schema({"name": "id", "type": "string"}, NAME),
            [{"id": "7", "department": "Typed"}],
            "field 'id' has type \"string\", which cannot fill departments.id",
        ),
        (
            {"type": "array", "items": "long"},
            [[1, 2]],
            "the file does not hold records",
        ),
    ],
    ids=["extra-field", "missing-field", "wrong-type", "not-records"],
)
@pytest.mark.django_db
def test_hand_written_file_with_other_fields_is_refused(folder, schema, records, message) -> None:
    small_data()
    put(storages["backups"], "departments/hand.avro", avro_bytes(schema, records))
    before = checksums()

    with pytest.raises(BackupError) as raised:
        restore_tables(tables=["departments"], backups={"departments": "departments/hand.avro"})

    assert str(raised.value) == f"departments/hand.avro: {message}"
    assert checksums() == before
    assert Department.objects.filter(id=7).exists() is False


@pytest.mark.django_db
def test_a_file_that_is_not_avro_is_refused(folder) -> None:
    small_data()
    put(storages["backups"], "jobs/text.avro", b"id,job\n1,Nope\n")
    before = checksums()

    with pytest.raises(CommandError, match=r"^jobs/text.avro is not a readable AVRO file \("):
        command("restore", "jobs", "--backup", "jobs/text.avro")
    assert checksums() == before


# --- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("../../etc/passwd", "'../../etc/passwd' leaves the backup storage"),
        ("/etc/passwd", "'/etc/passwd' leaves the backup storage"),
        ("jobs/../departments/x.avro", "'jobs/../departments/x.avro' leaves the backup storage"),
        ("jobs\\..\\..\\etc\\passwd", "leaves the backup storage"),
        ("departments/x.avro", "'departments/x.avro' is not a backup of jobs"),
        ("jobs/x.json", "'jobs/x.json' is not a backup of jobs"),
        ("jobs/missing.avro", "no backup 'jobs/missing.avro' in the backup storage"),
    ],
)
@pytest.mark.django_db
def test_keys_outside_the_table_are_refused(folder, key, message) -> None:
    small_data()
    backup_tables()
    put(
        storages["backups"],
        "departments/x.avro",
        fetch(storages["backups"], list_backups("jobs")[0].key),
    )
    Job.objects.filter(id=1).update(job="Changed")
    before = checksums()

    with pytest.raises(CommandError, match=re.escape(message)):
        command("restore", "jobs", "--backup", key)

    assert checksums() == before
    assert Job.objects.get(id=1).job == "Changed"


@pytest.mark.django_db
def test_restore_without_a_backup_and_bad_arguments_are_command_errors(folder) -> None:
    small_data()
    with pytest.raises(CommandError, match="there is no backup of jobs in the backup storage"):
        command("restore", "jobs")
    with pytest.raises(CommandError, match="give a TABLE"):
        command("restore")
    with pytest.raises(CommandError, match="give a TABLE"):
        command("restore", "jobs", "--all")
    assert counts() == (2, 2, 3)


# --- foreign keys ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_restore_that_would_orphan_hired_employees_fails(storage, sample_data) -> None:
    backup_tables(tables=["departments"])
    ingest_rows(table="departments", rows=[{"id": 99, "department": "Late"}], source="graphql")
    ingest_rows(
        table="hired_employees",
        rows=[{"id": 5000, "name": "Orphan To Be", "datetime": "2022-01-01T00:00:00Z",
               "department_id": 99, "job_id": 1}],
        source="graphql",
    )  # fmt: skip
    before = checksums()

    with pytest.raises(CommandError) as raised:
        command("restore", "departments")

    assert "orphan 1 hired employees whose department_id" in str(raised.value)
    assert "nothing was changed" in str(raised.value)
    assert checksums() == before
    assert Department.objects.filter(id=99).exists()
    assert HiredEmployee.objects.get(id=5000).department_id == 99


@pytest.mark.django_db
def test_restore_all_from_a_consistent_backup_removes_later_rows(folder, sample_data) -> None:
    before = checksums()
    backup_tables()
    ingest_rows(table="departments", rows=[{"id": 99, "department": "Late"}], source="graphql")
    ingest_rows(
        table="hired_employees",
        rows=[{"id": 5000, "name": "Later", "datetime": "2022-01-01T00:00:00Z",
               "department_id": 99, "job_id": 1}],
        source="graphql",
    )  # fmt: skip

    command("restore", "--all")

    assert checksums() == before
    assert not Department.objects.filter(id=99).exists()
    assert not HiredEmployee.objects.filter(id=5000).exists()


# --- readers during a restore ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_readers_never_see_an_empty_or_partial_table_during_restores(folder) -> None:
    departments = [{"id": i, "department": f"D{i}"} for i in range(1, 6)]
    jobs = [{"id": i, "job": f"J{i}"} for i in range(1, 6)]
    employees = [
        {"id": i, "name": f"Employee {i}", "datetime": "2021-03-04T05:06:07Z",
         "department_id": i % 5 + 1, "job_id": i % 3 + 1}
        for i in range(1, 3001)
    ]  # fmt: skip
    ingest_rows(table="departments", rows=departments, source="graphql")
    ingest_rows(table="jobs", rows=jobs, source="graphql")
    ingest_rows(table="hired_employees", rows=employees, source="graphql")
    (full,) = backup_tables(tables=["hired_employees"])
    HiredEmployee.objects.filter(id__gt=2000).delete()
    (partial,) = backup_tables(tables=["hired_employees"])
    assert (full.rows, partial.rows) == (3000, 2000)

    seen: list[int] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def read() -> None:
        from django.db import connection as own

        try:
            while not stop.is_set():
                seen.append(HiredEmployee.objects.count())
        except BaseException as error:  # reported by the main thread
            failures.append(error)
        finally:
            own.close()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        time.sleep(0.05)
        for key in (full.key, partial.key, full.key):
            restore_tables(tables=["hired_employees"], backups={"hired_employees": key})
        time.sleep(0.05)
    finally:
        stop.set()
        reader.join(timeout=30)

    assert failures == []
    assert not reader.is_alive()
    assert set(seen) == {2000, 3000}
    assert len(seen) >= 20
    assert HiredEmployee.objects.count() == 3000


# --- the replaced system's format ------------------------------------------------------------

LEGACY_SCHEMA = {
    "type": "record",
    "name": "hired_employees",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "datetime", "type": "string"},
        {"name": "department_id_id", "type": "long"},
        {"name": "job_id_id", "type": "long"},
    ],
}
NULLABLE_SCHEMA = {
    "type": "record",
    "name": "hired_employees",
    "fields": [
        {"name": "id", "type": ["null", "long"]},
        {"name": "name", "type": ["null", "string"]},
        {"name": "datetime", "type": ["null", "string"]},
        {"name": "department_id_id", "type": ["null", "long"]},
        {"name": "job_id_id", "type": ["null", "long"]},
    ],
}


@pytest.mark.parametrize(
    ("storage", "schema"),
    [("s3", LEGACY_SCHEMA), ("folder", NULLABLE_SCHEMA)],
    ids=["s3-plain", "folder-nullable"],
    indirect=["storage"],
)
@pytest.mark.django_db
def test_legacy_backup_restores_with_utc_datetimes_and_foreign_keys(storage, schema) -> None:
    small_data()
    records = [
        {"id": 10, "name": "Ty Hofer", "datetime": "2021-07-27T16:02:08Z",
         "department_id_id": 2, "job_id_id": 1},
        {"id": 11, "name": "Zoë", "datetime": "2021-07-27T18:02:08+02:00",
         "department_id_id": 1, "job_id_id": 2},
    ]  # fmt: skip
    put(storage, "hired_employees/legacy.avro", avro_bytes(schema, records))

    (summary,) = restore_tables(
        tables=["hired_employees"], backups={"hired_employees": "hired_employees/legacy.avro"}
    )

    assert (summary.read, summary.inserted, summary.rejected, summary.replaced) == (2, 2, 0, 3)
    assert list(
        HiredEmployee.objects.order_by("id").values_list(
            "id", "name", "datetime", "department_id", "job_id"
        )
    ) == [
        (10, "Ty Hofer", datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC), 2, 1),
        (11, "Zoë", datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC), 1, 2),
    ]
    (listed,) = list_backups("hired_employees")
    assert (listed.key, listed.rows, listed.sha256) == ("hired_employees/legacy.avro", -1, "")


@pytest.mark.django_db
def test_legacy_files_list_last_so_the_default_restore_takes_roster_backups(folder) -> None:
    small_data()
    legacy = [{"id": 9, "name": "Old", "datetime": "2020-01-01T00:00:00Z",
               "department_id_id": 1, "job_id_id": 1}]  # fmt: skip
    put(storages["backups"], "hired_employees/legacy.avro", avro_bytes(LEGACY_SCHEMA, legacy))
    (file,) = backup_tables(tables=["hired_employees"])
    HiredEmployee.objects.filter(id=1).delete()

    assert [b.key for b in list_backups("hired_employees")] == [
        file.key,
        "hired_employees/legacy.avro",
    ]
    (summary,) = restore_tables(tables=["hired_employees"])

    assert (summary.key, summary.read, summary.replaced) == (file.key, 3, 2)
    assert list(HiredEmployee.objects.values_list("id", flat=True)) == [1, 2, 3]


@pytest.mark.django_db
def test_bad_rows_in_a_legacy_backup_are_rejected_and_logged(folder) -> None:
    small_data()
    records = [
        {"id": 10, "name": "Good", "datetime": "2021-07-27T16:02:08Z",
         "department_id_id": 1, "job_id_id": 1},
        {"id": 11, "name": None, "datetime": "2021-07-27T16:02:08Z",
         "department_id_id": 1, "job_id_id": 1},
        {"id": 12, "name": "Lost", "datetime": "2021-07-27T16:02:08Z",
         "department_id_id": 777, "job_id_id": 1},
        {"id": 13, "name": "When", "datetime": "yesterday",
         "department_id_id": 1, "job_id_id": 1},
    ]  # fmt: skip
    put(storages["backups"], "hired_employees/legacy.avro", avro_bytes(NULLABLE_SCHEMA, records))

    output = command("restore", "hired_employees", "--backup", "hired_employees/legacy.avro")

    assert output.splitlines()[2].split()[:5] == ["hired_employees", "4", "1", "3", "3"]
    assert list(HiredEmployee.objects.values_list("id", "name")) == [(10, "Good")]
    rejections = Rejection.objects.filter(source="restore").order_by("position")
    assert [(r.table, r.position, r.row_id, r.reasons) for r in rejections] == [
        ("hired_employees", 2, 11,
         [{"field": "name", "code": "required", "message": "is required"}]),
        ("hired_employees", 3, 12,
         [{"field": "department_id", "code": "unknown_reference",
           "message": "department 777 does not exist"}]),
        ("hired_employees", 4, 13,
         [{"field": "datetime", "code": "invalid_datetime",
           "message": "must be an ISO 8601 date and time such as 2021-07-27T16:02:08Z, "
                      "got 'yesterday'"}]),
    ]  # fmt: skip
    assert rejections[0].raw["name"] is None
    batch = Batch.objects.get(source="restore")
    assert (batch.uri, batch.received, batch.inserted, batch.rejected) == (
        "hired_employees/legacy.avro",
        4,
        1,
        3,
    )


# --- Lambdas ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_backup_lambda_on_a_scheduled_event_backs_up_every_table(storage) -> None:
    small_data()
    event = {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": "2024-01-01T00:00:00Z",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/roster-backup"],
        "detail": {},
    }

    answer = backup_lambda.handler(event, None)

    written = answer["backups"]
    assert [(f["table"], f["rows"], f["codec"]) for f in written] == [
        ("departments", 2, "deflate"),
        ("jobs", 2, "deflate"),
        ("hired_employees", 3, "deflate"),
    ]
    for file in written:
        assert hashlib.sha256(fetch(storage, file["key"])).hexdigest() == file["sha256"]
    assert sorted(b.key for b in list_backups()) == sorted(f["key"] for f in written)
    json.dumps(answer)  # a Lambda's answer must be JSON


@pytest.mark.django_db
def test_restore_lambda_restores_one_table_and_refuses_bad_events(folder) -> None:
    small_data()
    (file,) = backup_tables(tables=["jobs"])
    Job.objects.filter(id=2).update(job="Changed")

    answer = restore_lambda.handler({"table": "jobs", "backup": file.key}, None)

    assert [(r["table"], r["key"], r["read"], r["inserted"], r["replaced"])
            for r in answer["restored"]] == [("jobs", file.key, 2, 2, 2)]  # fmt: skip
    assert Job.objects.get(id=2).job == "Analyst"
    with pytest.raises(BackupError, match="'table' must be one of"):
        restore_lambda.handler({"table": "people"}, None)
    with pytest.raises(BackupError, match="leaves the backup storage"):
        restore_lambda.handler({"table": "jobs", "backup": "../../etc/passwd"}, None)
    assert Job.objects.get(id=2).job == "Analyst"


# --- a backup commits by its manifests -------------------------------------------------------


def every_file(storage: Storage, folder: str = "") -> list[str]:
    """Every file in the storage, temporary ones included, sorted."""
    try:
        folders, files = storage.listdir(folder)
    except FileNotFoundError:
        return []
    found = [posixpath.join(folder, name) for name in files]
    for name in folders:
        found += every_file(storage, posixpath.join(folder, name))
    return sorted(found)


def many_employees(count: int) -> None:
    """``count`` more hired employees with names that compress badly, straight into the table."""
    HiredEmployee.objects.bulk_create(
        HiredEmployee(id=1000 + i, name=f"E{i} {secrets.token_hex(24)}",
                      datetime=datetime(2021, 1, 1, tzinfo=UTC), department_id=1, job_id=1)
        for i in range(count)
    )  # fmt: skip


@pytest.fixture
def small_disk(tmp_path: Path, settings) -> Iterator[Path]:
    """A folder backup storage on a 256 KiB tmpfs: a disk that fills up for real."""
    location = tmp_path / "small-disk"
    location.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(location)], check=True)
    try:
        settings.STORAGES = {**settings.STORAGES, "backups": _folder(location)}
        assert isinstance(storages["backups"], FileSystemStorage)
        assert storages["backups"].location == str(location)
        yield location
    finally:
        subprocess.run(["umount", str(location)], check=True)


@pytest.mark.django_db
def test_backup_to_a_full_disk_fails_cleanly_and_keeps_the_previous_backup(small_disk) -> None:
    small_data()
    previous = backup_tables()
    files_before = every_file(storages["backups"])
    assert len(files_before) == 6
    many_employees(40_000)
    seen: list[list[str]] = []

    def progress(table: str, rows: int) -> None:  # what the folder holds mid-way
        if table == "hired_employees" and not seen:
            seen.append(every_file(storages["backups"]))

    with pytest.raises(BackupError) as raised:
        backup_tables(progress=progress)

    message = str(raised.value)
    assert re.fullmatch(
        r"the backup failed while writing hired_employees/\d{8}T\d{6}\.\d{6}Z\.avro: "
        r"No space left on device; nothing of it was kept",
        message,
    ), message
    (midway,) = seen  # departments and jobs were in place, hired_employees in a temporary file
    new = sorted(set(midway) - set(files_before))
    assert [posixpath.dirname(k) for k in new] == ["departments", "hired_employees", "jobs"]
    assert new[0].endswith(".avro") and new[2].endswith(".avro")
    assert re.fullmatch(r"hired_employees/\.\d{8}T\d{6}\.\d{6}Z\.avro\.[0-9a-f]{12}\.part", new[1])
    assert every_file(storages["backups"]) == files_before  # no .avro, .json or .part left
    assert [b.key for b in list_backups()] == [
        previous[1].key,
        previous[2].key,
        previous[0].key,
    ]
    assert [latest_backup(table) for table in dictionary.TABLES] == [b.key for b in previous]

    with pytest.raises(CommandError, match="No space left on device; nothing of it was kept"):
        command("backup")
    assert every_file(storages["backups"]) == files_before
    restore_tables(tables=list(dictionary.TABLES))
    assert counts() == (2, 2, 3)


@pytest.mark.django_db
def test_a_backup_in_progress_is_not_listed(storage) -> None:
    small_data()
    (previous,) = backup_tables(tables=["jobs"])
    during: list[tuple[list[str], list[str]]] = []

    def progress(table: str, rows: int) -> None:
        if table == "hired_employees":
            during.append((every_file(storage), [b.key for b in list_backups()]))

    written = backup_tables(progress=progress)

    files, listed = during[-1]
    assert listed == [previous.key]  # two data files written, no manifest yet
    assert {written[0].key, written[1].key} <= set(files)
    assert not any(key.endswith(".json") and key != _json(previous.key) for key in files)
    assert [b.key for b in list_backups()] == [
        written[1].key, written[2].key, written[0].key, previous.key
    ]  # fmt: skip
    assert every_file(storage) == sorted(
        [previous.key, _json(previous.key)] + [k for b in written for k in (b.key, _json(b.key))]
    )
    assert [b.tables for b in list_backups("jobs")] == [list(dictionary.TABLES), ["jobs"]]


def _json(key: str) -> str:
    return key.removesuffix(".avro") + ".json"


class FailingS3(S3Storage):
    """S3 storage that records what it saves, and fails the save of keys matching ``fail_on``
    the way S3 does when it refuses a request."""

    fail_on = ""
    saved: list[str] = []  # reset by the fixture

    def _save(self, name: str, content: Any) -> str:
        if self.fail_on and fnmatch.fnmatch(name, self.fail_on):
            error = {"Code": "SlowDown", "Message": "Please reduce your request rate."}
            raise ClientError({"Error": error}, "PutObject")
        saved = super()._save(name, content)
        type(self).saved.append(saved)
        return saved


class FailingFolder(FileSystemStorage):
    """A folder whose files matching ``fail_on`` cannot be created (an I/O error)."""

    fail_on = ""

    def path(self, name: str) -> str:
        if self.fail_on and fnmatch.fnmatch(name, self.fail_on):
            raise OSError(errno.EIO, os.strerror(errno.EIO), name)
        return super().path(name)


@pytest.fixture(params=["folder", "s3"])
def failing(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[type]:
    """A backup storage that fails on the keys the test sets in ``fail_on``."""
    if request.param == "folder":
        cls: type = FailingFolder
        backend = {**_folder(tmp_path / "backups"), "BACKEND": "tests.test_backups.FailingFolder"}
    else:
        cls = FailingS3
        bucket = request.getfixturevalue("bucket")
        backend = {**_s3(bucket, request.getfixturevalue("s3_server")),
                   "BACKEND": "tests.test_backups.FailingS3"}  # fmt: skip
    cls.fail_on, cls.saved = "", []
    with override_settings(STORAGES={**settings.STORAGES, "backups": backend}):
        assert type(storages["backups"]) is cls
        yield cls
    cls.fail_on = ""


@pytest.mark.parametrize(
    "fail_on",
    ["hired_employees/*.avro", "departments/*.json", "hired_employees/*.json"],
    ids=["third-data-file", "first-manifest", "last-manifest"],
)
@pytest.mark.django_db
def test_a_failed_backup_removes_every_file_it_wrote(failing, fail_on) -> None:
    small_data()
    failing.fail_on = fail_on
    with pytest.raises(BackupError) as raised:
        backup_tables()
    failing.fail_on = ""

    reason = (
        r"S3 refused PutObject: SlowDown \(Please reduce your request rate\.\)"
        if failing is FailingS3
        else "Input/output error"
    )
    table = fail_on.split("/")[0]
    assert re.fullmatch(
        rf"the backup failed while writing {table}/\d{{8}}T\d{{6}}\.\d{{6}}Z\.{fail_on[-4:]}: "
        rf"{reason}; nothing of it was kept",
        str(raised.value),
    ), str(raised.value)
    assert every_file(storages["backups"]) == []
    assert list_backups() == []
    if failing is FailingS3:  # what it had saved before the failure, all since removed
        written = {
            "hired_employees/*.avro": 2,
            "departments/*.json": 3,
            "hired_employees/*.json": 5,
        }
        assert len(failing.saved) == written[fail_on]

    written = backup_tables()  # the storage works again: a backup goes through
    assert [b.key for b in list_backups()] == [written[i].key for i in (1, 2, 0)]


@pytest.mark.parametrize("error", [RuntimeError("a bug"), KeyboardInterrupt()], ids=repr)
@pytest.mark.django_db
def test_a_backup_stopped_by_another_error_removes_its_files_and_raises_it_as_is(
    storage, error
) -> None:
    small_data()
    (previous,) = backup_tables(tables=["jobs"])

    def progress(table: str, rows: int) -> None:
        if table == "hired_employees":
            placed = [k for k in every_file(storage) if not k.endswith(".part")]
            assert len(placed) == 4  # departments and jobs are in place
            raise error

    with pytest.raises(type(error)) as raised:
        backup_tables(progress=progress)

    assert raised.value is error  # not reworded: the caller words the database, a bug, ^C
    assert every_file(storage) == [previous.key, _json(previous.key)]
    assert [b.key for b in list_backups()] == [previous.key]


@pytest.mark.django_db
def test_on_s3_the_manifests_are_written_last(failing) -> None:
    if failing is not FailingS3:
        return  # the folder's order shows in test_a_backup_in_progress_is_not_listed
    small_data()
    written = backup_tables()
    keys = [b.key for b in written]
    assert failing.saved == keys + [_json(key) for key in keys]


@pytest.mark.django_db
def test_a_backup_to_a_missing_bucket_is_a_clean_error(s3_server) -> None:
    small_data()
    backend = _s3(f"roster-missing-{secrets.token_hex(4)}", s3_server)
    with (
        override_settings(STORAGES={**settings.STORAGES, "backups": backend}),
        pytest.raises(CommandError) as raised,
    ):
        command("backup", "jobs")
    assert re.fullmatch(
        r"the backup failed while writing jobs/\S+\.avro: S3 refused PutObject: NoSuchBucket "
        r"\(The specified bucket does not exist\); nothing of it was kept",
        str(raised.value),
    ), str(raised.value)


# --- files without a manifest ----------------------------------------------------------------


@pytest.mark.django_db
def test_a_roster_file_without_its_manifest_is_not_listed_nor_restored_by_default(storage) -> None:
    small_data()
    (older,) = backup_tables(tables=["hired_employees"])
    HiredEmployee.objects.filter(id=3).delete()
    (newer,) = backup_tables(tables=["hired_employees"])
    storage.delete(_json(newer.key))
    HiredEmployee.objects.filter(id=1).delete()

    assert [b.key for b in list_backups()] == [older.key]
    (summary,) = restore_tables(tables=["hired_employees"])

    assert (summary.key, summary.read) == (older.key, 3)
    assert list(HiredEmployee.objects.order_by("id").values_list("id", flat=True)) == [1, 2, 3]


@pytest.mark.django_db
def test_a_legacy_file_is_listed_as_legacy_and_never_the_default_restore(folder) -> None:
    small_data()
    legacy = [{"id": 9, "name": "Old", "datetime": "2020-01-01T00:00:00Z",
               "department_id_id": 1, "job_id_id": 1}]  # fmt: skip
    put(storages["backups"], "hired_employees/~legacy.avro", avro_bytes(LEGACY_SCHEMA, legacy))

    (listed,) = list_backups()
    assert (listed.key, listed.rows, listed.legacy, listed.problem) == (
        "hired_employees/~legacy.avro", -1, True, ""
    )  # fmt: skip
    with pytest.raises(BackupError) as raised:
        restore_tables(tables=["hired_employees"])
    assert str(raised.value) == (
        "there is no intact Roster backup of hired_employees to restore by default, only 1 "
        "damaged or replaced-system file(s); name the one to restore"
    )
    assert counts() == (2, 2, 3)

    (file,) = backup_tables(tables=["hired_employees"])  # sorts before "~legacy" by name
    assert [(b.key, b.legacy) for b in list_backups()] == [
        (file.key, False),
        ("hired_employees/~legacy.avro", True),
    ]
    assert latest_backup("hired_employees") == file.key
    (summary,) = restore_tables(
        tables=["hired_employees"], backups={"hired_employees": "hired_employees/~legacy.avro"}
    )  # by name, it restores
    assert (summary.read, summary.inserted) == (1, 1)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (avro_bytes(schema_for(dictionary.JOBS), [{"id": 1, "job": "x"}]),
         "no manifest, and not a backup of departments: the backup's fields do not match "
         "departments: missing department; unexpected job"),
        (b"id,department\n1,Nope\n",
         "no manifest, and not a readable AVRO file (cannot read header - is it an avro file?)"),
    ],
    ids=["other-schema", "not-avro"],
)  # fmt: skip
@pytest.mark.django_db
def test_a_file_without_manifest_in_no_known_format_is_listed_with_its_problem(
    folder, data, problem
) -> None:
    small_data()
    (file,) = backup_tables(tables=["departments"])
    put(storages["backups"], "departments/~stray.avro", data)

    listed = list_backups("departments")

    assert [(b.key, b.rows, b.legacy, b.problem) for b in listed] == [
        ("departments/~stray.avro", -1, False, problem),
        (file.key, 2, False, ""),
    ]
    assert latest_backup("departments") == file.key


@pytest.mark.django_db
def test_a_backup_of_several_tables_with_one_manifest_removed_is_not_listed(storage) -> None:
    small_data()
    (older,) = backup_tables(tables=["departments"])
    Department.objects.filter(id=2).update(department="Later")
    written = backup_tables()
    assert [b.key for b in list_backups("departments")] == [written[0].key, older.key]

    storage.delete(_json(written[1].key))  # jobs' manifest

    assert [b.key for b in list_backups()] == [older.key]
    assert latest_backup("departments") == older.key
    with pytest.raises(BackupError, match="there is no backup of jobs in the backup storage"):
        latest_backup("jobs")
    restore_tables(tables=["departments"])
    assert Department.objects.get(id=2).department == "Ops"


@pytest.mark.django_db
def test_a_manifest_without_tables_reads_as_one_tables_backup(folder) -> None:
    small_data()
    written = backup_tables()
    path = folder / _json(written[1].key)
    manifest = json.loads(path.read_text())
    del manifest["tables"]
    path.write_text(json.dumps(manifest))

    jobs = list_backups("jobs")

    assert [(b.key, b.tables, b.problem) for b in jobs] == [(written[1].key, ["jobs"], "")]
    assert len(list_backups()) == 3
    (summary,) = restore_tables(tables=["jobs"])
    assert (summary.key, summary.read) == (written[1].key, 2)


# --- damaged and lying manifests -------------------------------------------------------------


def _lie(manifest: dict[str, Any], files: dict[str, str]) -> dict[str, bytes]:
    """Ways to damage the newest jobs manifest, each as the bytes written in its place."""
    older = files["oldest"].split("/")[1]

    def changed(**changes: Any) -> bytes:
        return json.dumps({**manifest, **changes}).encode()

    missing = {k: v for k, v in manifest.items() if k not in ("rows", "sha256")}
    return {
        "dotdot-to-an-older-file": changed(key=f"jobs/~/../{older}"),
        "key-outside-the-storage": changed(key=f"../../../{older}"),
        "key-of-another-table": changed(key=files["departments"]),
        "key-with-no-slash": changed(key=older),
        "another-table": changed(table="departments"),
        "missing-fields": json.dumps(missing).encode(),
        "rows-as-text": changed(rows="2"),
        "rows-as-boolean": changed(rows=True),
        "sha256-not-hex": changed(sha256="z" * 64),
        "snapshot-time-of-another-file": changed(snapshot_time="2099-01-01T00:00:00+00:00"),
        "tables-not-a-list": changed(tables="jobs"),
        "tables-without-jobs": changed(tables=["departments"]),
        "not-json": b"{'key': 'jobs/x.avro'",
        "not-utf8": b"\xff\xfe\x00{",
        "a-list": json.dumps([manifest]).encode(),
        "null": b"null",
    }


LIES = {
    "dotdot-to-an-older-file": "names the file 'jobs/~/../",
    "key-outside-the-storage": "names the file '../../../",
    "key-of-another-table": "names the file 'departments/",
    "key-with-no-slash": "names the file '",
    "another-table": "is for the table 'departments', not jobs",
    "missing-fields": "has no 'rows'",
    "rows-as-text": "has a string for 'rows', not an integer",
    "rows-as-boolean": "has a boolean for 'rows', not an integer",
    "sha256-not-hex": "has a 'sha256' that is not 64 hex digits",
    "snapshot-time-of-another-file": "has a 'snapshot_time' '2099-01-01T00:00:00+00:00' that",
    "tables-not-a-list": "has a 'tables' that is not a list of tables with jobs: 'jobs'",
    "tables-without-jobs": "has a 'tables' that is not a list of tables with jobs",
    "not-json": "is not valid JSON",
    "not-utf8": "is not valid JSON",
    "a-list": "holds an array, not an object",
    "null": "holds null, not an object",
}


def three_jobs_backups() -> dict[str, str]:
    """Three jobs backups (job 1 named after each), a departments one; job 1 is now "now"."""
    files = {}
    for version in ("oldest", "middle", "newest"):
        Job.objects.filter(id=1).update(job=version)
        (files[version],) = (b.key for b in backup_tables(tables=["jobs"]))
        time.sleep(0.002)
    (files["departments"],) = (b.key for b in backup_tables(tables=["departments"]))
    Job.objects.filter(id=1).update(job="now")
    return files


@pytest.mark.parametrize("lie", list(LIES))
@pytest.mark.django_db
def test_a_damaged_manifest_is_listed_as_damaged_and_never_the_default(storage, lie) -> None:
    small_data()
    files = three_jobs_backups()
    manifest = json.loads(fetch(storage, _json(files["newest"])))
    put(storage, _json(files["newest"]), _lie(manifest, files)[lie])

    listed = list_backups("jobs")

    assert [b.key for b in listed] == [files["newest"], files["middle"], files["oldest"]]
    damaged = listed[0]
    assert damaged.problem.startswith(f"the manifest {_json(files['newest'])} {LIES[lie]}")
    assert (damaged.table, damaged.rows, damaged.sha256, damaged.legacy) == ("jobs", -1, "", False)
    assert [b.problem for b in listed[1:]] == ["", ""]
    assert len(list_backups()) == 4
    assert latest_backup("jobs") == files["middle"]

    (summary,) = restore_tables(tables=["jobs"])

    assert summary.key == files["middle"]
    assert Job.objects.get(id=1).job == "middle"
    with pytest.raises(BackupError) as raised:
        restore_tables(tables=["jobs"], backups={"jobs": files["newest"]})
    assert str(raised.value) == f"{files['newest']} cannot be checked: {damaged.problem}"
    assert Job.objects.get(id=1).job == "middle"


@pytest.mark.django_db
def test_the_manifests_of_a_legacy_name_or_a_foreign_file_cannot_vouch_for_it(folder) -> None:
    small_data()
    files = three_jobs_backups()
    data = fetch(storages["backups"], files["oldest"])
    manifest = json.loads(fetch(storages["backups"], _json(files["oldest"])))
    put(storages["backups"], "jobs/~copy.avro", data)  # a copy, and its manifest, renamed
    put(
        storages["backups"],
        "jobs/~copy.json",
        json.dumps({**manifest, "key": "jobs/~copy.avro"}).encode(),
    )

    (copy, *rest) = list_backups("jobs")

    assert copy.key == "jobs/~copy.avro"
    assert copy.problem == (
        f"the manifest jobs/~copy.json has a 'snapshot_time' {manifest['snapshot_time']!r} "
        "that is not its file's"
    )
    assert [b.key for b in rest] == [files["newest"], files["middle"], files["oldest"]]
    assert latest_backup("jobs") == files["newest"]


# --- retention -------------------------------------------------------------------------------


def named_backups(table: str, names: list[str], **options: Any) -> list[str]:
    """A backup of ``table`` after each rename of department or job 1; their keys."""
    keys = []
    for name in names:
        MODELS[table].objects.filter(id=1).update(**{table.removesuffix("s"): name})
        (written,) = backup_tables(tables=[table], **options)
        keys.append(written.key)
    return keys


def pairs(keys: list[str]) -> list[str]:
    """Each key with its manifest, sorted as ``every_file`` lists them."""
    return sorted(keys + [_json(key) for key in keys])


@pytest.mark.django_db
def test_backup_keep_keeps_exactly_the_newest_n_and_the_default_restore_works(storage) -> None:
    small_data()
    with override_settings(BACKUP_KEEP=3):
        keys = named_backups("departments", ["v1", "v2", "v3", "v4", "v5"])
        (jobs,) = backup_tables(tables=["jobs"])

    assert [b.key for b in list_backups("departments")] == keys[:1:-1]
    assert every_file(storage) == pairs([*keys[2:], jobs.key])
    Department.objects.filter(id=1).update(department="now")
    (done,) = restore_tables(tables=["departments"])
    assert (done.key, Department.objects.get(id=1).department) == (keys[-1], "v5")
    assert restore_tables(tables=["departments"], backups={"departments": keys[2]})[0].read == 2
    assert Department.objects.get(id=1).department == "v3"


@pytest.mark.django_db
def test_backup_keep_0_by_default_keeps_every_backup(folder) -> None:
    small_data()
    assert settings.BACKUP_KEEP == 0
    keys = named_backups("jobs", ["a", "b", "c", "d"])
    assert [b.key for b in list_backups("jobs")] == keys[::-1]


@pytest.mark.django_db
def test_the_keep_option_of_the_command_overrides_backup_keep(folder) -> None:
    small_data()
    with override_settings(BACKUP_KEEP=1):
        keys = named_backups("jobs", ["a", "b", "c"], keep=0)  # 0 keeps every backup
        assert len(list_backups("jobs")) == 3
        command("backup", "jobs", "--keep", "2", "--verbosity", "0")
        listed = [b.key for b in list_backups("jobs")]
        assert (len(listed), listed[1]) == (2, keys[-1])
        command("backup", "jobs", "--verbosity", "0")  # the setting: 1
        assert [b.key for b in list_backups("jobs")] == [latest_backup("jobs")]
        with pytest.raises(
            CommandError, match=r"keep must be 0 \(keep every backup\) or more, got -1"
        ):
            command("backup", "jobs", "--keep", "-1")
    assert [b.key for b in list_backups("jobs")] == [latest_backup("jobs")]


@pytest.mark.django_db
def test_a_snapshot_of_several_tables_goes_only_when_no_table_keeps_it(storage) -> None:
    small_data()
    (everything, *_) = backup_tables()  # departments, jobs, hired_employees at once
    stamp = everything.key.split("/")[1]
    snapshot = [f"{table}/{stamp}" for table in dictionary.TABLES]
    named_backups("jobs", ["a", "b"], keep=2)
    # jobs keeps its 2 newest, but departments and hired_employees still keep the snapshot:
    # none of its tables loses a file, and each of them is still listed.
    assert len(list_backups("jobs")) == 3
    assert [b.key for b in list_backups("departments")] == [snapshot[0]]
    named_backups("departments", ["a", "b"], keep=2)
    assert [b.key for b in list_backups("hired_employees")] == [snapshot[2]]
    assert set(pairs(snapshot)) <= set(every_file(storage))

    (employees,) = backup_tables(tables=["hired_employees"], keep=1)  # now no table keeps it

    assert not set(pairs(snapshot)) & set(every_file(storage))
    assert [b.key for b in list_backups("hired_employees")] == [employees.key]
    assert [len(list_backups(table)) for table in ("departments", "jobs")] == [2, 2]


@pytest.mark.django_db
def test_retention_never_deletes_legacy_or_damaged_files(folder) -> None:
    small_data()
    damaged = named_backups("departments", ["old"])[0]
    (folder / _json(damaged)).write_text("{not json")
    legacy = "departments/legacy.avro"
    put(
        storages["backups"],
        legacy,
        avro_bytes(_departments_schema(ID, NAME), [{"id": 1, "department": "x"}]),
    )
    keys = named_backups("departments", ["a", "b", "c"], keep=1)

    listed = [(b.key, b.legacy, bool(b.problem)) for b in list_backups("departments")]
    assert listed == [(keys[-1], False, False), (damaged, False, True), (legacy, True, False)]
    assert prune_backups(tables=["departments"], keep=1) == []


@pytest.mark.django_db
def test_a_failed_backup_deletes_no_old_backup(failing) -> None:
    small_data()
    old = [backup.key for _ in range(3) for backup in backup_tables()]
    before = every_file(storages["backups"])
    assert len(before) == 18

    failing.fail_on = "hired_employees/*.json"
    with pytest.raises(BackupError, match="nothing of it was kept"):
        backup_tables(keep=1)
    failing.fail_on = ""

    assert every_file(storages["backups"]) == before
    assert sorted(b.key for b in list_backups()) == sorted(old)
    kept = backup_tables(keep=1)  # the next good backup prunes
    assert sorted(b.key for b in list_backups()) == sorted(b.key for b in kept)


@pytest.mark.django_db
def test_the_backup_lambda_keeps_backup_keep_backups(folder) -> None:
    small_data()
    with override_settings(BACKUP_KEEP=2):
        answers = [backup_lambda.handler({"tables": ["jobs"]}, None) for _ in range(4)]
    keys = [answer["backups"][0]["key"] for answer in answers]
    assert [b.key for b in list_backups("jobs")] == keys[:1:-1]
