"""Prepare the next chunk in a thread while the database stores this one.

A load spends its time both in Python (parsing, the dictionary's rules) and waiting on
PostgreSQL (``COPY``, the commit's foreign-key checks). psycopg2 lets go of the GIL while it
waits, so a thread that reads and checks the next chunk meanwhile overlaps the two. The thread
never touches the database: every write, and the run's progress, stays in the caller's thread
and transaction, so a killed run still resumes after its last commit.

Two interpreter settings make the overlap pay. They are process-wide, so library code never
sets them: a data job's entry point does (``tuned_for_jobs``, entered by every job command and
Lambda handler), never a web worker, even when an admin runs a restore there. Both are undone
on the way out:

- a short GIL switch interval (0.2 ms instead of the default 5 ms). The caller makes a dozen
  short database calls per chunk, and after each one it waits for the GIL while the helper
  holds it; at the default interval those waits cost about what the overlap saves;
- fewer, cheaper garbage collections: ``gc.freeze()`` keeps the objects of Django's start-up
  out of the collector's full passes, and a larger first generation (10,000 objects instead of
  700) lets a chunk's short-lived rows die before the collector looks at them.

docs/benchmarks.md holds what each setting is worth.
"""

from __future__ import annotations

import contextvars
import gc
import queue
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

_DONE = object()
_SWITCH_INTERVAL = 0.0002  # seconds
_GC_FIRST_GENERATION = 10_000  # objects


@contextmanager
def read_ahead(items: Iterable[T], *, depth: int = 2) -> Iterator[Iterator[T]]:
    """Iterate ``items`` in a helper thread, at most ``depth`` items ahead of the caller.

    An error in the helper is raised in the caller at the item where it happened. Leaving
    the ``with`` block early (an error while storing) stops the helper and waits for it, so
    the source it reads can be closed safely afterwards.
    """
    ready: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry: tuple[object, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
        except BaseException as error:  # handed to the caller, who raises it
            offer((_DONE, error))
            return
        offer((_DONE, None))

    def consume() -> Iterator[T]:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item  # type: ignore[misc]

    # The helper runs in the caller's context: its log lines carry what the caller's do (a
    # Lambda's request id).
    context = contextvars.copy_context()
    helper = threading.Thread(
        target=context.run, args=(produce,), name="roster-read-ahead", daemon=True
    )
    helper.start()
    try:
        yield consume()
    finally:
        stop.set()
        helper.join()


_tuning_lock = threading.Lock()
_tuning_users = 0
_saved: tuple[float, tuple[int, ...]] = (0.0, ())


@contextmanager
def tuned_for_jobs() -> Iterator[None]:
    """The switch interval and collector settings above, for a data job's entry point (a
    management command, a Lambda handler) and never a web worker. Nested or overlapping uses
    share them: the first one in saves and sets them, and the last one out puts them back."""
    global _tuning_users, _saved
    with _tuning_lock:
        if _tuning_users == 0:
            _saved = (sys.getswitchinterval(), gc.get_threshold())
            sys.setswitchinterval(min(_saved[0], _SWITCH_INTERVAL))
            gc.set_threshold(max(_saved[1][0], _GC_FIRST_GENERATION), *_saved[1][1:])
            gc.freeze()
        _tuning_users += 1
    try:
        yield
    finally:
        with _tuning_lock:
            _tuning_users -= 1
            if _tuning_users == 0:
                gc.unfreeze()
                gc.set_threshold(*_saved[1])
                sys.setswitchinterval(_saved[0])
