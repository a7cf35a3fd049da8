"""The admin-only GraphQL API of backups: backup, backups and restore."""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import fastavro
import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.test import override_settings

from backend.dictionary import DEPARTMENTS
from backend.models import Department, Job
from jobs.avro import fingerprint, schema_for
from jobs.backups import backup_tables
from jobs.ingest import ingest_rows

BACKUP = """
mutation ($tables: [Table!]) {
  backup(tables: $tables) {
    table key rows sha256 schemaFingerprint rosterVersion snapshotTime codec size
  }
}
"""
BACKUPS = "query ($table: Table) { backups(table: $table) { table key rows sha256 codec } }"
RESTORE = """
mutation ($table: Table!, $backup: String) {
  restore(table: $table, backup: $backup) { table backup read inserted rejected replaced }
}
"""


@pytest.fixture(params=["folder", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | None]:
    """The backup storage; yields the folder's path (None for S3)."""
    if request.param == "folder":
        location = tmp_path / "backups"
        backend = {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(location)},
        }
    else:
        location = None
        backend = {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": request.getfixturevalue("bucket"),
                "endpoint_url": request.getfixturevalue("s3_server"),
                "default_acl": None,
                "file_overwrite": False,
            },
        }
    with override_settings(STORAGES={**settings.STORAGES, "backups": backend}):
        yield location


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    location = tmp_path / "backups"
    backend = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(location)},
    }
    with override_settings(STORAGES={**settings.STORAGES, "backups": backend}):
        yield location


def name_time(key: str) -> str:
    """The time a Roster backup's file name holds, written as the API writes a DateTime."""
    name = key.split("/")[1]
    return datetime.strptime(name, "%Y%m%dT%H%M%S.%fZ.avro").replace(tzinfo=UTC).isoformat()


def departments() -> list[tuple[int, str]]:
    return list(Department.objects.order_by("id").values_list("id", "department"))


def two_departments() -> None:
    ingest_rows(
        table="departments",
        rows=[{"id": 1, "department": "Recherche & Développement"}, {"id": 2, "department": "Ops"}],
        source="graphql",
    )


def stored_keys() -> list[str]:
    """Every file in the backup storage."""
    storage = storages["backups"]
    keys = []
    try:
        folders, _ = storage.listdir("")
    except FileNotFoundError:
        return []
    for name in folders:
        keys += [f"{name}/{file}" for file in storage.listdir(name)[1]]
    return sorted(keys)


@pytest.mark.django_db
def test_backup_list_and_restore_through_graphql(gql, storage) -> None:
    two_departments()
    before = datetime.now(UTC)

    answer = gql(BACKUP, {"tables": ["DEPARTMENTS"]})

    assert answer.errors == []
    (file,) = answer.data["backup"]
    key = file["key"]
    assert before <= datetime.fromisoformat(file["snapshotTime"]) <= datetime.now(UTC)
    assert key.startswith("departments/") and key.endswith("Z.avro")
    with storages["backups"].open(key, "rb") as stream:
        data = stream.read()
    assert file == {
        "table": "DEPARTMENTS",
        "key": key,
        "rows": "2",  # a BigInt: decimal digits in a string
        "sha256": hashlib.sha256(data).hexdigest(),
        "schemaFingerprint": fingerprint(schema_for(DEPARTMENTS)),
        "rosterVersion": file["rosterVersion"],
        "snapshotTime": name_time(key),  # a DateTime in UTC, the time the file is named after
        "codec": "deflate",
        "size": str(len(data)),
    }
    assert stored_keys() == [key, key.removesuffix(".avro") + ".json"]

    listed = gql(BACKUPS, {"table": "DEPARTMENTS"})
    assert listed.data == {
        "backups": [
            {"table": "DEPARTMENTS", "key": key, "rows": "2", "sha256": file["sha256"],
             "codec": "deflate"}
        ]
    }  # fmt: skip
    assert gql(BACKUPS, {"table": "JOBS"}).data == {"backups": []}

    Department.objects.filter(id=2).update(department="Changed")
    ingest_rows(table="departments", rows=[{"id": 3, "department": "Third"}], source="graphql")

    restored = gql(RESTORE, {"table": "DEPARTMENTS"})

    assert restored.errors == []
    assert restored.data["restore"] == {
        "table": "DEPARTMENTS",
        "backup": key,
        "read": "2",  # BigInts: a file's rows need not fit the table's ids
        "inserted": 2,
        "rejected": "0",
        "replaced": 3,
    }
    assert departments() == [(1, "Recherche & Développement"), (2, "Ops")]


@pytest.mark.django_db
def test_backup_of_every_table_by_default_and_restore_of_a_named_key(gql, folder) -> None:
    two_departments()
    ingest_rows(table="jobs", rows=[{"id": 7, "job": "Analyst"}], source="graphql")

    answer = gql(BACKUP)

    files = answer.data["backup"]
    assert [(f["table"], f["rows"]) for f in files] == [
        ("DEPARTMENTS", "2"),
        ("JOBS", "1"),
        ("HIRED_EMPLOYEES", "0"),
    ]
    assert {f["snapshotTime"] for f in files} == {name_time(files[0]["key"])}  # one snapshot
    Job.objects.filter(id=7).update(job="Changed")
    restored = gql(RESTORE, {"table": "JOBS", "backup": files[1]["key"]})
    assert restored.data["restore"]["backup"] == files[1]["key"]
    assert list(Job.objects.values_list("id", "job")) == [(7, "Analyst")]
    assert [b["table"] for b in gql(BACKUPS).data["backups"]] == [
        "JOBS",
        "HIRED_EMPLOYEES",
        "DEPARTMENTS",
    ]


@pytest.mark.parametrize("scope", ["write", "read", None])
@pytest.mark.django_db
def test_only_admins_back_up_list_and_restore(gql, storage, scope) -> None:
    two_departments()

    answers = [
        gql(BACKUP, {"tables": ["DEPARTMENTS"]}, scope=scope),
        gql(BACKUPS, scope=scope),
        gql(RESTORE, {"table": "DEPARTMENTS"}, scope=scope),
    ]

    expected = "FORBIDDEN" if scope else "UNAUTHENTICATED"
    for answer in answers:
        assert answer.codes == [expected], answer.body
        assert answer.data is None
    assert stored_keys() == []
    assert departments() == [(1, "Recherche & Développement"), (2, "Ops")]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("../../etc/passwd", "'../../etc/passwd' leaves the backup storage"),
        ("/etc/passwd", "'/etc/passwd' leaves the backup storage"),
        ("jobs/x.avro", "'jobs/x.avro' is not a backup of departments"),
        ("departments/none.avro", "no backup 'departments/none.avro' in the backup storage"),
    ],
)
@pytest.mark.django_db
def test_a_bad_backup_key_is_bad_user_input(gql, folder, key, message) -> None:
    two_departments()
    gql(BACKUP, {"tables": ["DEPARTMENTS"]})
    Department.objects.filter(id=2).update(department="Changed")

    answer = gql(RESTORE, {"table": "DEPARTMENTS", "backup": key})

    assert answer.codes == ["BAD_USER_INPUT"]
    assert answer.errors[0]["message"].startswith(message)
    assert answer.data is None
    assert departments() == [(1, "Recherche & Développement"), (2, "Changed")]


@pytest.mark.django_db
def test_restore_without_any_backup_and_a_damaged_file_are_bad_user_input(gql, folder) -> None:
    two_departments()

    missing = gql(RESTORE, {"table": "DEPARTMENTS"})
    assert missing.codes == ["BAD_USER_INPUT"]
    assert missing.errors[0]["message"] == (
        "there is no backup of departments in the backup storage"
    )

    (file,) = gql(BACKUP, {"tables": ["DEPARTMENTS"]}).data["backup"]
    manifest = folder / (file["key"].removesuffix(".avro") + ".json")
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "sha256": "0" * 64}))
    damaged = gql(RESTORE, {"table": "DEPARTMENTS", "backup": file["key"]})
    assert damaged.codes == ["BAD_USER_INPUT"]
    assert damaged.errors[0]["message"] == (
        f"{file['key']} does not match its manifest's sha256: the file is damaged"
    )
    assert departments() == [(1, "Recherche & Développement"), (2, "Ops")]


@pytest.mark.django_db
def test_an_orphaning_restore_is_bad_user_input(gql, folder) -> None:
    two_departments()
    ingest_rows(table="jobs", rows=[{"id": 1, "job": "Analyst"}], source="graphql")
    gql(BACKUP, {"tables": ["DEPARTMENTS"]})
    ingest_rows(table="departments", rows=[{"id": 99, "department": "Late"}], source="graphql")
    ingest_rows(
        table="hired_employees",
        rows=[{"id": 1, "name": "Ann", "datetime": "2022-01-01T00:00:00Z",
               "department_id": 99, "job_id": 1}],
        source="graphql",
    )  # fmt: skip

    answer = gql(RESTORE, {"table": "DEPARTMENTS"})

    assert answer.codes == ["BAD_USER_INPUT"]
    assert "would orphan 1 hired employees" in answer.errors[0]["message"]
    assert departments() == [(1, "Recherche & Développement"), (2, "Ops"), (99, "Late")]


BACKUPS_CHECKED = "query ($table: Table) { backups(table: $table) { key rows problem } }"


def three_departments_backups(gql) -> list[str]:
    """Backups of departments with department 2 named "v1", "v2", "v3"; it is now "now"."""
    two_departments()
    keys = []
    for name in ("v1", "v2", "v3"):
        Department.objects.filter(id=2).update(department=name)
        (file,) = gql(BACKUP, {"tables": ["DEPARTMENTS"]}).data["backup"]
        keys.append(file["key"])
        time.sleep(0.002)
    Department.objects.filter(id=2).update(department="now")
    return keys


@pytest.mark.parametrize(
    ("lie", "problem"),
    [
        ({"key": "departments/~/../{v1}"}, "names the file 'departments/~/../"),
        ({"key": "../../../{v1}"}, "names the file '../../../"),
        ({"key": "{v1}"}, "names the file '"),
        ({"rows": None, "sha256": None}, "has null for 'rows', not an integer"),
    ],
    ids=["dotdot-to-the-oldest", "outside-the-storage", "no-slash", "nulls"],
)
@pytest.mark.django_db
def test_a_lying_manifest_is_listed_with_its_problem_and_never_restored_by_default(
    gql, storage, lie, problem
) -> None:
    v1, v2, v3 = three_departments_backups(gql)
    manifest_key = v3.removesuffix(".avro") + ".json"
    with storages["backups"].open(manifest_key, "rb") as stream:
        manifest = json.loads(stream.read())
    changes = {k: v.format(v1=v1.split("/")[1]) if v else v for k, v in lie.items()}
    storages["backups"].delete(manifest_key)
    storages["backups"].save(manifest_key, ContentFile(json.dumps({**manifest, **changes})))

    listed = gql(BACKUPS_CHECKED, {"table": "DEPARTMENTS"})

    assert listed.errors == []
    damaged, *intact = listed.data["backups"]
    assert (damaged["key"], damaged["rows"]) == (v3, "-1")
    assert damaged["problem"].startswith(f"the manifest {manifest_key} {problem}")
    assert intact == [
        {"key": v2, "rows": "2", "problem": None},
        {"key": v1, "rows": "2", "problem": None},
    ]

    restored = gql(RESTORE, {"table": "DEPARTMENTS"})

    assert restored.errors == []
    assert restored.data["restore"]["backup"] == v2
    assert departments() == [(1, "Recherche & Développement"), (2, "v2")]
    refused = gql(RESTORE, {"table": "DEPARTMENTS", "backup": v3})
    assert refused.codes == ["BAD_USER_INPUT"]
    assert refused.errors[0]["message"] == f"{v3} cannot be checked: {damaged['problem']}"


@pytest.mark.django_db
def test_a_backup_that_fails_in_the_storage_is_bad_input_and_leaves_nothing(gql, s3_server) -> None:
    two_departments()
    backend = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": "roster-no-such-bucket", "endpoint_url": s3_server},
    }
    with override_settings(STORAGES={**settings.STORAGES, "backups": backend}):
        answer = gql(BACKUP)

    assert answer.codes == ["BAD_USER_INPUT"]
    assert answer.data is None
    assert answer.errors[0]["message"].startswith("the backup failed while writing departments/")
    assert answer.errors[0]["message"].endswith(
        ": S3 refused PutObject: NoSuchBucket (The specified bucket does not exist); "
        "nothing of it was kept"
    )


TIMES = "{ backups(table: DEPARTMENTS) { key rows problem snapshotTime } }"


@pytest.mark.django_db
def test_snapshot_time_is_utc_and_a_backup_without_a_usable_manifest_has_one_too(
    gql, storage
) -> None:
    """An intact manifest's time is answered in UTC; a damaged manifest's file answers the
    time its name holds; a replaced system's file, whose name holds none, answers the epoch."""
    two_departments()
    (intact,) = gql(BACKUP, {"tables": ["DEPARTMENTS"]}).data["backup"]
    time.sleep(0.002)
    (damaged,) = gql(BACKUP, {"tables": ["DEPARTMENTS"]}).data["backup"]
    backups = storages["backups"]
    intact_manifest = intact["key"].removesuffix(".avro") + ".json"
    with backups.open(intact_manifest, "rb") as stream:
        manifest = json.loads(stream.read())
    in_paris = datetime.fromisoformat(intact["snapshotTime"]).astimezone(
        timezone(timedelta(hours=1))
    )
    backups.delete(intact_manifest)  # the same moment, written at +01:00: still intact
    backups.save(
        intact_manifest,
        ContentFile(json.dumps({**manifest, "snapshot_time": in_paris.isoformat()})),
    )
    damaged_manifest = damaged["key"].removesuffix(".avro") + ".json"
    backups.delete(damaged_manifest)
    backups.save(damaged_manifest, ContentFile(b"{not json"))
    legacy = io.BytesIO()
    schema = {
        "type": "record",
        "name": "Department",
        "fields": [{"name": "id", "type": "long"}, {"name": "department", "type": "string"}],
    }
    fastavro.writer(legacy, schema, [{"id": 1, "department": "Old"}])
    backups.save("departments/legacy.avro", ContentFile(legacy.getvalue()))

    answer = gql(TIMES)

    assert answer.errors == []
    assert answer.data["backups"] == [
        {"key": damaged["key"], "rows": "-1", "snapshotTime": name_time(damaged["key"]),
         "problem": f"the manifest {damaged_manifest} is not valid JSON"},
        {"key": intact["key"], "rows": "2", "snapshotTime": name_time(intact["key"]),
         "problem": None},
        {"key": "departments/legacy.avro", "rows": "-1",
         "snapshotTime": "1970-01-01T00:00:00+00:00", "problem": None},
    ]  # fmt: skip
    assert in_paris.isoformat().endswith("+01:00")
    assert intact["snapshotTime"] == name_time(intact["key"])


# --- sizes past 32 bits, and pages of backups ------------------------------------------------

SIZES = "query ($table: Table) { backups(table: $table) { key rows size } }"


@pytest.mark.django_db
def test_a_backup_of_3_gib_lists_its_size_and_rows_exactly_as_big_ints(gql, storage) -> None:
    (v1, *_) = three_departments_backups(gql)
    manifest_key = v1.removesuffix(".avro") + ".json"
    with storages["backups"].open(manifest_key, "rb") as stream:
        manifest = json.loads(stream.read())
    storages["backups"].delete(manifest_key)
    big = {"size": 3 * 2**30, "rows": 2**33 + 1}  # past Int's 2,147,483,647, and exact
    storages["backups"].save(manifest_key, ContentFile(json.dumps({**manifest, **big})))

    answer = gql(SIZES, {"table": "DEPARTMENTS"})

    assert answer.errors == []
    oldest = answer.data["backups"][-1]
    assert oldest == {"key": v1, "rows": "8589934593", "size": "3221225472"}


def test_big_int_is_a_documented_scalar_sent_as_a_string() -> None:
    from graph.schema import schema

    sdl = schema.as_str()
    assert 'sent as a string of decimal digits ("3221225472")' in sdl
    assert "scalar BigInt" in sdl
    assert "rows: BigInt!" in sdl and "size: BigInt!" in sdl
    big_int = schema.get_type_by_name("BigInt")
    assert big_int is not None
    scalar = schema._schema.get_type("BigInt")
    assert scalar.serialize(3 * 2**30) == "3221225472"
    assert scalar.parse_value("3221225472") == 3 * 2**30
    assert scalar.parse_value(-1) == -1
    with pytest.raises(ValueError, match="BigInt must be an integer or a string of decimal"):
        scalar.parse_value("12e3")


PAGE = """
query ($table: Table, $first: Int, $after: String) {
  backups(table: $table, first: $first, after: $after) { key cursor }
}
"""


def walk(gql, first: int, table: str | None = "DEPARTMENTS") -> list[list[str]]:
    """Every page of backups, following each page's last cursor until a short page."""
    pages, after = [], None
    while True:
        answer = gql(PAGE, {"table": table, "first": first, "after": after})
        assert answer.errors == []
        page = answer.data["backups"]
        pages.append([backup["key"] for backup in page])
        if len(page) < first:
            return pages
        after = page[-1]["cursor"]


@pytest.mark.django_db
def test_pages_of_ten_walk_25_backups_newest_first_without_repeats(gql, storage) -> None:
    two_departments()
    written = [backup_tables(tables=["departments"])[0].key for _ in range(25)]
    backup_tables(tables=["jobs"])  # another table's backups are not in the pages

    pages = walk(gql, 10)

    assert [len(page) for page in pages] == [10, 10, 5]
    assert [key for page in pages for key in page] == written[::-1]
    assert (
        gql(PAGE, {"table": "DEPARTMENTS"}).data["backups"]
        == gql(PAGE, {"table": "DEPARTMENTS", "first": 100}).data["backups"]
    )  # first is 100 when left out
    assert [len(page) for page in walk(gql, 10, table=None)] == [10, 10, 6]


@pytest.mark.django_db
def test_a_backup_made_or_deleted_between_pages_never_repeats_or_skips_one(gql, folder) -> None:
    two_departments()
    written = [backup_tables(tables=["departments"])[0].key for _ in range(6)]
    first_page = gql(PAGE, {"table": "DEPARTMENTS", "first": 3}).data["backups"]
    newer = backup_tables(tables=["departments"])[0].key  # lists before the cursor
    (folder / written[2]).unlink()  # the page's last backup goes (a restore names it no more)
    (folder / (written[2].removesuffix(".avro") + ".json")).unlink()

    after = first_page[-1]["cursor"]
    rest = gql(PAGE, {"table": "DEPARTMENTS", "first": 10, "after": after}).data["backups"]

    assert [b["key"] for b in first_page] == written[:2:-1]
    assert [b["key"] for b in rest] == written[1::-1]
    assert newer not in [b["key"] for b in rest]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"first": 1001}, "'first' must be between 0 and 1000, got 1001"),
        ({"first": -1}, "'first' must be between 0 and 1000, got -1"),
        ({"after": "bm90IGEgY3Vyc29y"}, "'after' is not a backup cursor this API returned"),
        ({"after": "%%%"}, "'after' is not a backup cursor this API returned"),
    ],
    ids=["over-1000", "negative", "not-ours", "not-base64"],
)
@pytest.mark.django_db
def test_bad_page_arguments_are_bad_user_input(gql, folder, variables, message) -> None:
    answer = gql(PAGE, {"table": "DEPARTMENTS", **variables})
    assert answer.codes == ["BAD_USER_INPUT"]
    assert answer.errors[0]["message"].startswith(message)
