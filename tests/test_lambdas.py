"""The state machine, the Distributed Map chunk handler and the failure recorder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings

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
