"""The historic CSV migration: load_csv, runs, resume after kill -9, S3, and the Lambda."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote_plus

import boto3
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from backend.models import Department, HiredEmployee, Job, LoadRun, Rejection
from jobs.loading import load_sources
from tests.conftest import SAMPLE_DIR

ROOT = Path(settings.BASE_DIR)


def load(*args: str) -> str:
    out = io.StringIO()
    call_command("load_csv", *args, stdout=out)
    return out.getvalue()


def stored_counts() -> tuple[int, int, int]:
    return Department.objects.count(), Job.objects.count(), HiredEmployee.objects.count()


@pytest.mark.django_db
def test_samples_load_with_every_bad_row_logged_by_line(gql) -> None:
    output = load(str(SAMPLE_DIR))

    assert stored_counts() == (12, 183, 1929)
    rejected = Rejection.objects.filter(table="hired_employees")
    assert rejected.count() == 70
    assert set(rejected.values_list("source", flat=True)) == {"csv"}
    second_line = rejected.get(position=2)  # "2,Ty Hofer,2021-05-30T05:43:46Z,8," has no job
    assert second_line.raw == "2,Ty Hofer,2021-05-30T05:43:46Z,8,"
    assert second_line.reasons == [
        {"field": "job_id", "code": "required", "message": "is required"}
    ]
    assert second_line.batch.uri.endswith("/data/sample/hired_employees.csv")
    lines = output.splitlines()
    assert lines[0].split()[:6] == ["table", "read", "inserted", "rejected", "skipped", "seconds"]
    assert lines[2].split()[:5] == ["departments", "12", "12", "0", "0"]
    assert lines[4].split()[:5] == ["hired_employees", "1999", "1929", "70", "0"]

    answer = gql(
        "{ rejections(table: HIRED_EMPLOYEES, first: 100) { totalCount nodes { index } } }"
    )
    assert answer.data["rejections"]["totalCount"] == "70"
    assert answer.data["rejections"]["nodes"][0]["index"] == "2"


@pytest.mark.django_db
def test_input_quirks_bom_crlf_quotes_header_and_no_final_newline(tmp_path: Path) -> None:
    (tmp_path / "departments.csv").write_bytes(
        b'\xef\xbb\xbfid,department\r\n1,"Sales, EMEA"\r\n2,  Legal  \r\n\r\n3,"R&D"'
    )
    summary = load(str(tmp_path / "departments.csv"))

    assert dict(Department.objects.values_list("id", "department")) == {
        1: "Sales, EMEA",
        2: "Legal",
        3: "R&D",
    }
    assert "departments" in summary
    assert Rejection.objects.count() == 0


@pytest.mark.django_db
def test_line_numbers_count_physical_lines_with_quoted_newlines(tmp_path: Path) -> None:
    (tmp_path / "jobs.csv").write_text('1,"Two\nlines"\n2,\n3,Ok\n', encoding="utf-8")
    load(str(tmp_path / "jobs.csv"))

    assert list(Job.objects.values_list("id", flat=True)) == [3]
    assert list(Rejection.objects.values_list("position", "raw")) == [
        (1, '1,"Two\nlines"'),  # a quoted line break is read, then refused by the names rule
        (3, "2,"),
    ]
    codes = [r.reasons[0]["code"] for r in Rejection.objects.order_by("position")]
    assert codes == ["control_character", "required"]


@pytest.mark.django_db
def test_rerun_of_an_unchanged_file_is_a_noop_and_force_rejects_duplicates(tmp_path: Path) -> None:
    """A forced rerun rejects the stored rows as duplicates, and the bad row, logged before,
    keeps its one entry with a second attempt."""
    path = tmp_path / "departments (1).csv"
    path.write_text("1,Sales\n2,Legal\nx,Bad\n", encoding="utf-8")
    load(str(path))
    again = load(str(path))

    assert "(unchanged)" in again
    assert LoadRun.objects.count() == 1
    assert Rejection.objects.count() == 1

    load(str(path), "--force")
    assert Department.objects.count() == 2
    entries = sorted((r.reasons[0]["code"], r.attempts) for r in Rejection.objects.all())
    assert entries == [("duplicate", 1), ("duplicate", 1), ("invalid_type", 2)]


@pytest.mark.django_db
def test_an_unknown_table_or_bad_source_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "salaries.csv").write_text("1,2\n", encoding="utf-8")
    with pytest.raises(CommandError, match=r"cannot tell the table of 'salaries\.csv'"):
        load(str(tmp_path / "salaries.csv"))
    with pytest.raises(CommandError, match="neither a file nor a folder"):
        load(str(tmp_path / "missing.csv"))
    with pytest.raises(CommandError, match="unsupported source"):
        load("ftp://example/departments.csv")
    assert LoadRun.objects.count() == 0


@pytest.mark.django_db
def test_progress_reports_each_file_with_its_rows_so_far() -> None:
    seen: list[tuple[str, int]] = []
    files = [SAMPLE_DIR / "jobs.csv", SAMPLE_DIR / "departments.csv"]

    load_sources([str(f) for f in files], chunk_size=100, progress=lambda *step: seen.append(step))

    departments, jobs = files[1].as_uri(), files[0].as_uri()
    assert seen == [(departments, 12), (jobs, 100), (jobs, 183)]  # in dependency order


@pytest.mark.django_db
def test_table_option_overrides_the_file_name(tmp_path: Path) -> None:
    (tmp_path / "export.csv").write_text("7,Support\n", encoding="utf-8")
    load(str(tmp_path / "export.csv"), "--table", "departments")
    assert list(Department.objects.values_list("id", "department")) == [(7, "Support")]


@pytest.mark.django_db
def test_hired_employees_before_departments_are_rejected_not_crashing() -> None:
    load(str(SAMPLE_DIR / "hired_employees.csv"))

    assert HiredEmployee.objects.count() == 0
    assert Rejection.objects.count() == 1999
    first = Rejection.objects.get(position=1)
    assert {r["code"] for r in first.reasons} == {"unknown_reference"}
    assert {r["field"] for r in first.reasons} == {"department_id", "job_id"}


def _generated_file(path: Path, rows: int) -> set[int]:
    """hired_employees rows for departments/jobs 1..3; every 50th row is bad. Returns bad lines."""
    bad = set()
    with path.open("w", encoding="utf-8") as out:
        for i in range(1, rows + 1):
            if i % 50 == 0:
                bad.add(i)
                out.write(f"{i},Name {i},not-a-date,1,1\n")
            else:
                out.write(f"{i},Name {i},2021-03-0{1 + i % 9}T10:00:00Z,{1 + i % 3},{1 + i % 3}\n")
    return bad


@pytest.mark.django_db(transaction=True)
def test_a_run_killed_midway_resumes_to_exactly_the_clean_result(tmp_path: Path) -> None:
    for i in (1, 2, 3):
        Department.objects.create(id=i, department=f"D{i}")
        Job.objects.create(id=i, job=f"J{i}")
    path = tmp_path / "hired_employees.csv"
    rows = 60_000
    bad_lines = _generated_file(path, rows)
    db = connection.settings_dict
    url = (
        f"sqlite:///{db['NAME']}"
        if connection.vendor == "sqlite"
        else f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    )
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "1", "LOG_LEVEL": "ERROR"}
    command = [sys.executable, "manage.py", "load_csv", str(path), "--chunk-size", "1000"]
    child = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run = LoadRun.objects.first()
            if run is not None and run.last_line >= 5000:
                break
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    killed = LoadRun.objects.get()
    assert killed.status == LoadRun.Status.RUNNING
    assert 5000 <= killed.last_line < rows, "the child finished before it could be killed"

    load(str(path))

    run = LoadRun.objects.get()
    assert (run.status, run.read, run.last_line) == ("completed", rows, rows)
    assert HiredEmployee.objects.count() == rows - len(bad_lines)
    assert set(Rejection.objects.values_list("position", flat=True)) == bad_lines
    assert Rejection.objects.count() == len(bad_lines)
    assert (run.inserted, run.rejected) == (rows - len(bad_lines), len(bad_lines))


@pytest.mark.django_db
def test_loads_an_s3_prefix_with_spaces_and_unicode_in_keys(bucket: str) -> None:
    client = boto3.client("s3")
    for key, name in [
        ("history 2021/departments ünï.csv", "departments.csv"),
        ("history 2021/jobs (1).csv", "jobs.csv"),
        ("history 2021/hired_employees ✓.csv", "hired_employees.csv"),
    ]:
        client.upload_file(str(SAMPLE_DIR / name), bucket, key)
    output = load(f"s3://{bucket}/history 2021/")

    assert stored_counts() == (12, 183, 1929)
    assert Rejection.objects.filter(table="hired_employees").count() == 70
    assert f"s3://{bucket}/history%202021/hired_employees%20%E2%9C%93.csv" in output


@pytest.mark.django_db
def test_s3_errors_are_clear(bucket: str) -> None:
    with pytest.raises(CommandError, match="does not exist"):
        load(f"s3://{bucket}/nothing/departments.csv")
    with pytest.raises(CommandError, match=r"holds no \.csv object"):
        load(f"s3://{bucket}/empty/")
    with pytest.raises(CommandError, match="bucket 'no-such-bucket-x' does not exist"):
        load("s3://no-such-bucket-x/departments.csv")


def _notification(bucket: str, key: str) -> dict:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key, safe="/"), "size": 178},
                },
            }
        ]
    }


def _eventbridge(bucket: str, key: str) -> dict:
    return {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 4237},
            "reason": "PutObject",
        },
    }


@pytest.mark.django_db
def test_lambda_loads_from_s3_notifications_and_eventbridge_idempotently(bucket: str) -> None:
    from lambdas.load_csv import handler

    client = boto3.client("s3")
    client.upload_file(str(SAMPLE_DIR / "departments.csv"), bucket, "in/departments ü 1.csv")
    client.upload_file(str(SAMPLE_DIR / "jobs.csv"), bucket, "in/jobs.csv")

    first = handler(_notification(bucket, "in/departments ü 1.csv"))
    assert [(r["table"], r["inserted"], r["unchanged"]) for r in first["runs"]] == [
        ("departments", 12, False)
    ]
    second = handler(_notification(bucket, "in/departments ü 1.csv"))
    assert [(r["inserted"], r["skipped"], r["unchanged"]) for r in second["runs"]] == [
        (0, 12, True)
    ]
    jobs = handler(_eventbridge(bucket, "in/jobs.csv"))
    assert [(r["table"], r["inserted"]) for r in jobs["runs"]] == [("jobs", 183)]
    assert stored_counts() == (12, 183, 0)


@pytest.mark.django_db
def test_lambda_refuses_a_key_that_matches_no_table(bucket: str) -> None:
    from jobs.csv_files import UnknownTableError
    from lambdas.events import EventError
    from lambdas.load_csv import handler

    with pytest.raises(UnknownTableError, match=r"cannot tell the table of 'in/salaries\.csv'"):
        handler(_eventbridge(bucket, "in/salaries.csv"))
    with pytest.raises(EventError, match="expected an S3 notification"):
        handler({"hello": "world"})
    assert LoadRun.objects.count() == 0


def test_a_checked_chunk_keeps_raw_fields_only_for_the_rows_the_rules_refused() -> None:
    """A valid row is written from its clean values and logged by its line's text: the chunk
    lets its raw fields go (half of a checked row's memory); a refused row keeps them, for its
    claimed id in the log."""
    from backend import dictionary
    from jobs.csv_files import parse_lines
    from jobs.loading import _Chunk

    table = dictionary.table("hired_employees")
    lines = [
        "1,Ana,2021-01-01T00:00:00Z,1,1\n",
        "x,Bob,not a time,1,1\n",
        "3,Cy,2021-02-01T00:00:00Z,2,3\n",
    ]
    chunk = _Chunk.check(table, list(parse_lines(lines, table)), for_copy=True)
    assert sorted(chunk.checked.valid) == [0, 2]
    assert chunk.checked.raws[0] is None and chunk.checked.raws[2] is None
    assert chunk.checked.raws[1]["name"] == "Bob"
    assert chunk.texts == [line.rstrip("\n") for line in lines] and chunk.lines == [1, 2, 3]
    assert chunk.checked.copy_lines is not None and sorted(chunk.checked.copy_lines) == [0, 2]
