"""The state machine, the Distributed Map chunk handler, the failure recorder, and how every
handler fails: one line, its error's class name, one JSON log line with the request id."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dj_database_url
import pytest
from botocore.exceptions import ClientError
from django.conf import settings
from django.db import OperationalError, connections
from django.test import override_settings
from django.utils.module_loading import import_string

from backend.dictionary import HIRED_EMPLOYEES
from backend.models import Department, HiredEmployee, Job, LoadRun, Rejection

LAMBDAS = Path(settings.BASE_DIR) / "lambdas"


def _states(machine: dict) -> dict:
    """Every state, the Distributed Map's inner ones included."""
    found = dict(machine["States"])
    for state in machine["States"].values():
        if "ItemProcessor" in state:
            found |= _states(state["ItemProcessor"])
    return found


def test_state_machine_is_consistent_and_derives_csv_headers_from_the_dictionary() -> None:
    machine = json.loads((LAMBDAS / "state_machine.asl.json").read_text(encoding="utf-8"))
    states = _states(machine)

    targets = {s.get("Next") for s in states.values()} | {machine["StartAt"]}
    targets |= {c["Next"] for s in states.values() for c in s.get("Choices", [])}
    targets |= {c["Next"] for s in states.values() for c in s.get("Catch", [])}
    assert targets - {None} <= set(states)
    reader = states["LoadLargeFile"]["ItemReader"]["ReaderConfig"]
    assert reader["CSVHeaders"] == list(HIRED_EMPLOYEES.column_names)
    assert states["LoadLargeFile"]["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert {c["Next"] for c in states["LoadFile"]["Catch"]} == {"RecordFailure"}
    transient = states["LoadFile"]["Retry"][1]
    assert transient["BackoffRate"] > 1 and transient["MaxAttempts"] >= 3

    template = (LAMBDAS / "template.yaml").read_text(encoding="utf-8")
    for placeholder in ("LoadCsvFunctionArn", "LoadChunkFunctionArn", "RecordFailureFunctionArn"):
        assert "${" + placeholder + "}" in json.dumps(machine)
        assert f"{placeholder}: !GetAtt" in template
    assert "Resource: '*'" not in template and 'Resource: "*"' not in template


def _batch(items: list[tuple[int, dict]], key: str = "in/hired_employees big.csv") -> dict:
    return {
        "BatchInput": {"bucket": "landing", "key": key, "etag": '"abc123"'},
        "Items": [{"index": index, "row": row} for index, row in items],
    }


def _row(i: int, department: str = "1") -> dict:
    return {
        "id": str(i),
        "name": f"N{i}",
        "datetime": "2021-01-01T00:00:00Z",
        "department_id": department,
        "job_id": "1",
    }


@pytest.mark.django_db
def test_chunk_handler_loads_a_batch_once_even_when_retried() -> None:
    from lambdas.load_chunk import handler

    Department.objects.create(id=1, department="D")
    Job.objects.create(id=1, job="J")
    header = dict(zip(HIRED_EMPLOYEES.column_names, HIRED_EMPLOYEES.column_names, strict=True))
    event = _batch([(0, header), (1, _row(1)), (2, _row(2, department="9")), (3, _row(3))])

    first = handler(event)
    again = handler(event)

    assert (first["read"], first["inserted"], first["rejected"]) == (3, 2, 1)
    assert first["uri"] == "s3://landing/in/hired_employees%20big.csv#lines=2-4"
    assert (again["unchanged"], again["inserted"], again["skipped"]) == (True, 0, 3)
    assert sorted(HiredEmployee.objects.values_list("id", flat=True)) == [1, 3]
    (rejection,) = Rejection.objects.all()
    assert (rejection.position, rejection.reasons[0]["code"]) == (3, "unknown_reference")
    assert LoadRun.objects.filter(status="completed").count() == 1


@pytest.mark.django_db
def test_record_failure_leaves_a_failed_run() -> None:
    from lambdas.record_failure import handler

    event = {
        "detail": {"bucket": {"name": "landing"}, "object": {"key": "jobs 2.csv"}},
        "error": {"Error": "States.Timeout", "Cause": "the task timed out"},
    }
    answer = handler(event)

    run = LoadRun.objects.get(pk=answer["recorded"][0])
    assert (run.status, run.table, run.uri) == ("failed", "jobs", "s3://landing/jobs%202.csv")
    assert run.error == "States.Timeout: the task timed out"


# --- failures: one line, the error's class name kept, one JSON log line with the request id --


class _Context:
    """The part of Lambda's context object the handlers read."""

    aws_request_id = "3f2c1e0a-7b6d-4c5e-9f8a-1b2c3d4e5f60"


def _json_line(record: logging.LogRecord) -> dict:
    """``record`` as the project's JSON formatter writes it: one line, parsed."""
    spec = dict(settings.LOGGING["formatters"]["json"])
    formatter = import_string(spec.pop("()"))(**spec)
    line = formatter.format(record)
    assert "\n" not in line
    return json.loads(line)


def _failure_logged(caplog: pytest.LogCaptureFixture, handler: str, error: str) -> dict:
    (record,) = [r for r in caplog.records if r.name == "roster.lambdas"]
    logged = _json_line(record)
    assert (logged["level"], logged["handler"], logged["error"]) == ("ERROR", handler, error)
    assert logged["request_id"] == _Context.aws_request_id
    assert "Traceback (most recent call last)" in logged["exc_info"]
    return logged


def test_a_bad_event_fails_as_event_error_in_one_logged_line(caplog) -> None:
    from lambdas.load_csv import handler

    with pytest.raises(Exception) as raised:
        handler({"hello": "world"}, _Context())

    assert type(raised.value).__name__ == "EventError"
    assert str(raised.value) == (
        "expected an S3 notification (Records[].s3), an EventBridge Object Created event "
        "(detail.bucket.name, detail.object.key) or {'bucket': ..., 'key': ...}"
    )
    _failure_logged(caplog, "load_csv", "EventError")


def test_a_key_of_no_table_fails_as_unknown_table_error(caplog) -> None:
    from lambdas.load_csv import handler

    with pytest.raises(Exception) as raised:
        handler({"bucket": "landing", "key": "in/salaries.csv"}, _Context())

    assert type(raised.value).__name__ == "UnknownTableError"
    assert str(raised.value).startswith("cannot tell the table of 'in/salaries.csv': expected ")
    assert "\n" not in str(raised.value)
    _failure_logged(caplog, "load_csv", "UnknownTableError")


def test_a_missing_bucket_fails_as_source_error(s3_server: str, caplog) -> None:
    from lambdas.load_csv import handler

    with pytest.raises(Exception) as raised:
        handler({"bucket": "no-such-bucket-x", "key": "departments.csv"}, _Context())

    assert type(raised.value).__name__ == "SourceError"
    assert str(raised.value) == "bucket 'no-such-bucket-x' does not exist"
    _failure_logged(caplog, "load_csv", "SourceError")


@pytest.fixture
def database_gone(django_db_blocker, tmp_path: Path) -> Iterator[str]:
    """The default connection pointed at a database that is not there (PostgreSQL: a port where
    nothing listens; SQLite: a folder where the file should be); the message the driver gives."""
    database = connections["default"]
    saved = dict(database.settings_dict)
    if database.vendor == "postgresql":
        gone = {"HOST": "127.0.0.1", "PORT": 1}
        expected = 'connection to server at "127.0.0.1", port 1 failed: Connection refused'
    else:
        gone = {"NAME": str(tmp_path)}
        expected = "unable to open database file"
    with django_db_blocker.unblock():
        database.close()
        database.settings_dict.update(gone)
        try:
            yield expected
        finally:
            database.close()
            database.settings_dict.clear()
            database.settings_dict.update(saved)


def test_the_database_gone_fails_as_operational_error_in_one_line(database_gone: str,
                                                                  caplog) -> None:  # fmt: skip
    from lambdas.record_failure import handler

    event = {
        "detail": {"bucket": {"name": "landing"}, "object": {"key": "jobs.csv"}},
        "error": {"Error": "States.Timeout", "Cause": "the task timed out"},
    }
    with pytest.raises(OperationalError) as raised:
        handler(event, _Context())

    assert type(raised.value).__name__ == "OperationalError"
    assert str(raised.value) == f"the database is unreachable: {database_gone}"
    assert isinstance(raised.value.__cause__, OperationalError)
    logged = _failure_logged(caplog, "record_failure", "OperationalError")
    assert logged["message"] == f"record_failure failed: {raised.value}"


@pytest.mark.django_db
def test_an_s3_error_keeps_its_class_name_with_a_one_line_message(s3_server: str,
                                                                   caplog) -> None:  # fmt: skip
    from lambdas.restore import handler

    backups = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": "no-such-backups", "endpoint_url": s3_server},
    }
    with (
        override_settings(STORAGES={**settings.STORAGES, "backups": backups}),
        pytest.raises(Exception) as raised,
    ):
        handler({"table": "jobs"}, _Context())

    assert type(raised.value).__name__ == "NoSuchBucket"  # botocore's class for the code
    assert str(raised.value) == "the S3 bucket 'no-such-backups' does not exist"
    assert isinstance(raised.value.__cause__, ClientError)
    assert not isinstance(raised.value, ClientError)  # a stand-in: ClientError needs more
    _failure_logged(caplog, "restore", "NoSuchBucket")


@pytest.mark.django_db
def test_record_failure_keeps_a_lambda_errors_message_not_its_stack_trace() -> None:
    from lambdas.record_failure import handler

    cause = {
        "errorMessage": "the database is unreachable: connection to server failed",
        "errorType": "OperationalError",
        "requestId": _Context.aws_request_id,
        "stackTrace": ['  File "/var/task/lambdas/__init__.py", line 40, in invoke\n'],
    }
    event = {
        "detail": {"bucket": {"name": "landing"}, "object": {"key": "jobs.csv"}},
        "error": {"Error": "OperationalError", "Cause": json.dumps(cause)},
    }
    answer = handler(event, _Context())

    run = LoadRun.objects.get(pk=answer["recorded"][0])
    assert run.error == (
        "OperationalError: the database is unreachable: connection to server failed"
    )


# --- typed events: a malformed one is one EventError line, before any work -------------------

_CHUNK_SHAPE = (
    "expected a Distributed Map batch: {'BatchInput': {'bucket': ..., 'key': ..., 'etag': ...}, "
    "'Items': [{'index': 0, 'row': {...}}, ...]}"
)


@pytest.mark.parametrize(
    ("name", "event", "message"),
    [
        ("load_csv", None, "expected an S3 notification (Records[].s3), an EventBridge Object "
         "Created event (detail.bucket.name, detail.object.key) or {'bucket': ..., 'key': ...}"),
        ("load_csv", {"Records": [{"s3": {"bucket": {"name": "landing"}, "object": {}}}]},
         "an S3 notification record has no s3.bucket.name or s3.object.key"),
        ("load_chunk", {"Items": []}, _CHUNK_SHAPE),
        ("load_chunk", _batch([(0, _row(1))]) | {"Items": [{"index": "first", "row": {}}]},
         f"{_CHUNK_SHAPE}; an item's index is 'first'"),
        ("load_chunk", _batch([(0, _row(1))]) | {"Items": [{"index": 4, "row": "1,N1"}]},
         f"{_CHUNK_SHAPE}; item 4 has no 'row' object"),
        ("record_failure", {"bucket": "landing", "key": "jobs.csv", "error": "States.Timeout"},
         "expected 'error' to be the Catch's {'Error': ..., 'Cause': ...}"),
        ("backup", {"tables": "jobs"}, "expected 'tables' to be a list of table names, got 'jobs'"),
        ("backup", ["jobs"], "expected an object such as {'tables': ['jobs'], 'codec': 'deflate'}"),
        ("restore", "jobs", "expected {'table': ..., 'backup': ...} or {'all': true}"),
        ("restore", {"table": "jobs", "backup": 7},
         "expected 'backup' to be a key such as jobs/<timestamp>.avro"),
    ],
)  # fmt: skip
def test_a_malformed_event_is_one_event_error_line(name: str, event: object, message: str,
                                                   caplog) -> None:  # fmt: skip
    handler = import_string(f"lambdas.{name}.handler")

    with pytest.raises(Exception) as raised:
        handler(event, _Context())

    assert type(raised.value).__name__ == "EventError"
    assert str(raised.value) == message
    _failure_logged(caplog, name, "EventError")


def test_events_parse_into_typed_values() -> None:
    from lambdas.events import (
        BackupEvent,
        ChunkEvent,
        FailureEvent,
        RestoreEvent,
        S3Event,
        S3Object,
    )

    notification = {"Records": [{"s3": {"bucket": {"name": "b"}, "object": {"key": "in/a+b.csv"}}}]}
    assert S3Event.parse(notification) == S3Event((S3Object("b", "in/a b.csv"),))
    assert S3Event.parse({"bucket": "b", "key": "a+b.csv"}).objects[0].uri == "s3://b/a%2Bb.csv"
    chunk = ChunkEvent.parse(_batch([(0, _row(1)), (1, _row(2))]))
    assert (chunk.file, chunk.fingerprint) == (
        S3Object("landing", "in/hired_employees big.csv"),
        "etag:abc123",
    )
    assert chunk.rows == ((1, _row(1)), (2, _row(2)))
    failure = FailureEvent.parse({"bucket": "b", "key": "jobs.csv"})
    assert (failure.objects, failure.message) == ((S3Object("b", "jobs.csv"),), "Error:")
    assert BackupEvent.parse({"version": "0", "detail-type": "Scheduled Event"}) == BackupEvent()
    assert RestoreEvent.parse({"all": True, "table": "jobs"}).tables == (
        "departments",
        "jobs",
        "hired_employees",
    )
    assert RestoreEvent.parse({"table": "jobs"}) == RestoreEvent(("jobs",), "")


# --- every log line of an invocation carries its request id ---------------------------------


@pytest.mark.django_db
def test_every_log_line_of_an_invocation_carries_its_request_id(bucket: str, caplog) -> None:
    import boto3

    from lambdas.load_csv import handler

    boto3.client("s3").put_object(Bucket=bucket, Key="departments.csv", Body=b"1,A\n2,\nx,C\n")
    caplog.set_level(logging.INFO)

    before = len(caplog.records)
    answer = handler({"bucket": bucket, "key": "departments.csv"}, _Context())
    # the S3 test server (moto, a thread of this process) logs its requests as werkzeug: not ours
    during = [r for r in caplog.records[before:] if r.name != "werkzeug"]
    logging.getLogger("roster.test").info("after the invocation")

    (run,) = answer["runs"]
    assert (run["read"], run["inserted"], run["rejected"]) == (3, 1, 2)
    ingest = [r.getMessage() for r in during if r.name == "roster.ingest"]
    assert ingest == ["row rejected", "row rejected", "batch ingested"]
    assert {getattr(record, "request_id", None) for record in during} == {_Context.aws_request_id}
    assert all(_json_line(record)["request_id"] == _Context.aws_request_id for record in during)
    assert not hasattr(caplog.records[-1], "request_id")  # the id ends with the invocation


# --- the database through RDS Proxy: who may sign in, who may read the secret ---------------

_DEPLOYMENT = {  # one made-up deployment: the parameters and what CloudFormation would resolve
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "roster",
    "DatabaseInstanceId": "roster-db",
    "DatabaseName": "roster",
    "DatabaseUser": "roster",
    "DatabaseSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:roster-db-AbCdEf",
    "DatabaseSecretKmsKeyArn": "",
    "SecretKey": "s" * 50,
    "DatabaseProxy.DBProxyArn": "arn:aws:rds:eu-west-1:123456789012:db-proxy:prx-0123456789abcdef0",
    "DatabaseProxy.Endpoint": "roster-db.proxy-c0ffee0example.eu-west-1.rds.amazonaws.com",
}
_NO_VALUE = object()


class _Stack:
    """The SAM template's values resolved as CloudFormation would for ``values`` (parameters,
    pseudo parameters, attributes); another resource's ``Ref`` is ``ref:<logical id>``, and
    its ``GetAtt`` ``getatt:<logical id>.<attribute>``."""

    def __init__(self, **changes: str) -> None:
        from cfnlint.decode import decode_str  # cfn-lint's loader reads the !Sub, !Ref... tags

        self.template, problems = decode_str((LAMBDAS / "template.yaml").read_text("utf-8"))
        assert problems == []
        self.values = _DEPLOYMENT | changes
        self.conditions = {
            name: self.resolve(rule) for name, rule in self.template["Conditions"].items()
        }

    def resource(self, name: str) -> dict:
        return self.resolve(self.template["Resources"][name])

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in map(self.resolve, value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (function, argument), *_ = value.items()
            if function == "Ref":
                if argument == "AWS::NoValue":
                    return _NO_VALUE
                return self.values.get(argument, f"ref:{argument}")
            if function == "Fn::GetAtt":
                return self.values.get(".".join(argument), "getatt:" + ".".join(argument))
            if function == "Fn::Sub":
                text, names = (argument, {}) if isinstance(argument, str) else argument
                names = self.values | self.resolve(dict(names))
                return re.sub(r"\$\{([\w:.]+)\}", lambda found: names[found[1]], text)
            if function == "Fn::Select":
                return self.resolve(argument[1])[argument[0]]
            if function == "Fn::Split":
                return self.resolve(argument[1]).split(argument[0])
            if function == "Fn::If":
                return self.resolve(argument[1] if self.conditions[argument[0]] else argument[2])
            if function == "Fn::Equals":
                return self.resolve(argument[0]) == self.resolve(argument[1])
            if function == "Fn::Not":
                return not self.resolve(argument[0])
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def statements(self, function: str) -> tuple[set[str], list[dict]]:
        """A Lambda's SAM policy templates by name, and its other statements (its own and its
        managed policies')."""
        templates, statements = set(), []
        for policy in self.resource(function)["Properties"].get("Policies", []):
            if isinstance(policy, str) and policy.startswith("ref:"):
                managed = self.resource(policy.removeprefix("ref:"))
                statements += managed["Properties"]["PolicyDocument"]["Statement"]
            elif "Statement" in policy:
                statements += policy["Statement"]
            else:
                templates |= set(policy)
        return templates, statements


def test_the_lambdas_sign_in_to_the_proxy_as_its_user_and_nothing_more() -> None:
    stack = _Stack()
    functions = {
        name
        for name, resource in stack.template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    connect = {
        "Sid": "ConnectThroughTheProxy",
        "Effect": "Allow",
        "Action": "rds-db:connect",
        "Resource": "arn:aws:rds-db:eu-west-1:123456789012:dbuser:prx-0123456789abcdef0/roster",
    }

    granted = {name: stack.statements(name) for name in functions}

    assert {name: templates for name, (templates, _) in granted.items()} == {
        "BackupFunction": {"S3CrudPolicy"},  # SAM's S3 templates: s3 actions on one bucket
        "RestoreFunction": {"S3ReadPolicy"},
        "LoadCsvFunction": {"S3ReadPolicy"},
        "LoadChunkFunction": set(),
        "RecordFailureFunction": set(),
    }
    assert {name: statements for name, (_, statements) in granted.items()} == {
        name: [connect] for name in functions
    }
    variables = stack.resolve(stack.template["Globals"])["Function"]["Environment"]["Variables"]
    database = dj_database_url.parse(variables["DATABASE_URL"])
    assert (database["USER"], database["PASSWORD"], database["HOST"], database["PORT"]) == (
        "roster", "", _DEPLOYMENT["DatabaseProxy.Endpoint"], 5432
    )  # fmt: skip
    assert variables["DATABASE_IAM_AUTH"] == "1"
    assert all(
        "Environment" not in stack.template["Resources"][name]["Properties"] for name in functions
    )  # nothing overrides the database settings
    parameters = stack.template["Parameters"]
    assert [name for name, spec in parameters.items() if spec.get("NoEcho")] == ["SecretKey"]


@pytest.mark.parametrize("key", ["", "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab"])
def test_only_the_proxy_reads_the_secret_and_decrypts_it_only_through_secrets_manager(
    key: str,
) -> None:
    stack = _Stack(DatabaseSecretKmsKeyArn=key)
    secret = _DEPLOYMENT["DatabaseSecretArn"]
    get_secret = {
        "Sid": "GetTheSecret",
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": secret,
    }
    decrypt = {
        "Sid": "DecryptTheSecretThroughSecretsManager",
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": key,
        "Condition": {
            "StringEquals": {
                "kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com",
                "kms:EncryptionContext:SecretARN": secret,
            }
        },
    }

    role = stack.resource("DatabaseProxyRole")["Properties"]
    proxy = stack.resource("DatabaseProxy")["Properties"]
    targets = stack.resource("DatabaseProxyTargets")["Properties"]

    (policy,) = role["Policies"]
    assert policy["PolicyDocument"]["Statement"] == [get_secret] + ([decrypt] if key else [])
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert (trust["Principal"], trust["Action"]) == (
        {"Service": "rds.amazonaws.com"},
        "sts:AssumeRole",
    )
    assert (proxy["EngineFamily"], proxy["RequireTLS"], proxy["RoleArn"]) == (
        "POSTGRESQL", True, "getatt:DatabaseProxyRole.Arn"
    )  # fmt: skip
    assert [(a["AuthScheme"], a["SecretArn"], a["IAMAuth"]) for a in proxy["Auth"]] == [
        ("SECRETS", secret, "REQUIRED")
    ]
    assert (targets["DBProxyName"], targets["DBInstanceIdentifiers"]) == (
        "ref:DatabaseProxy", ["roster-db"]
    )  # fmt: skip
    mentions = [
        name for name in stack.template["Resources"] if secret in json.dumps(stack.resource(name))
    ]
    assert mentions == ["DatabaseProxy", "DatabaseProxyRole"]
    assert secret not in json.dumps(stack.resolve(stack.template["Globals"]))
