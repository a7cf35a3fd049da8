"""The read-ahead helper: order, errors, early exits and the interpreter settings it borrows."""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator

import pytest

from jobs.read_ahead import read_ahead, tuned_for_jobs


def test_every_item_arrives_in_order_from_another_thread() -> None:
    made_in: set[str] = set()

    def items() -> Iterator[int]:
        for number in range(1000):
            made_in.add(threading.current_thread().name)
            yield number

    with read_ahead(items()) as ready:
        assert list(ready) == list(range(1000))
    assert made_in == {"roster-read-ahead"}


def test_an_error_in_the_helper_is_raised_in_the_caller_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    received = []
    with pytest.raises(UnicodeDecodeError), read_ahead(items()) as ready:
        for item in ready:
            received.append(item)
    assert received == [1, 2]


def test_leaving_early_stops_the_helper_within_its_depth() -> None:
    made = []

    def items() -> Iterator[int]:
        for number in range(10_000):
            made.append(number)
            yield number

    with pytest.raises(RuntimeError, match="store failed"), read_ahead(items(), depth=2) as ready:
        for item in ready:
            if item == 3:
                raise RuntimeError("store failed")
    helpers = [t for t in threading.enumerate() if t.name == "roster-read-ahead"]
    assert helpers == []
    assert len(made) <= 3 + 1 + 2 + 1  # consumed, being stored, queued (depth), in hand


def test_interpreter_settings_are_put_back_even_when_job_entry_points_overlap() -> None:
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    with tuned_for_jobs():
        assert sys.getswitchinterval() == pytest.approx(0.0002)
        assert gc.get_threshold()[0] == max(thresholds[0], 10_000)
        with tuned_for_jobs():
            pass
        assert sys.getswitchinterval() == pytest.approx(0.0002)  # the outer one still runs
    assert sys.getswitchinterval() == interval
    assert gc.get_threshold() == thresholds


def test_a_read_ahead_alone_leaves_the_process_settings_alone() -> None:
    """A restore run by an admin inside a web worker must not retune that worker."""
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    with read_ahead(iter([1, 2])) as ready:
        assert (sys.getswitchinterval(), gc.get_threshold()) == (interval, thresholds)
        assert list(ready) == [1, 2]
    assert (sys.getswitchinterval(), gc.get_threshold()) == (interval, thresholds)


def test_job_commands_and_lambdas_run_tuned() -> None:
    from django.core.management import call_command

    from jobs.management.commands.load_csv import Command
    from lambdas import fails_in_one_line

    handler = fails_in_one_line(lambda event, context: {"interval": sys.getswitchinterval()})
    assert handler({}, None)["interval"] == pytest.approx(0.0002)

    seen: list[float] = []

    class Probe(Command):
        def handle(self, *args: object, **options: object) -> None:
            seen.append(sys.getswitchinterval())

    call_command(Probe(), "x.csv", verbosity=0)
    assert seen == [pytest.approx(0.0002)]
    assert sys.getswitchinterval() != pytest.approx(0.0002)
