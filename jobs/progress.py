"""How a data job reports its progress, and the bar the commands show it with.

A job takes ``progress: Progress | None`` and calls it with what it is working on (a table or
a file) and the rows done so far; it never knows who listens. The commands pass a
``ProgressBar``; the Lambda handlers and the mutations pass nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

Progress = Callable[[str, int], None]
"""``progress(label, rows)``: ``label`` (a table, a file's URI) has ``rows`` rows done so far."""


class ProgressBar:
    """A ``Progress`` shown as one tqdm bar per label, on stderr; a no-op when not enabled
    (the command decides: a terminal, and ``--verbosity`` 2 or more), so it never reaches a
    log."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.label = ""

    def __call__(self, label: str, rows: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm  # only a terminal pays for the import

        if label != self.label:
            self.close()
            self.label = label
            self.bar = tqdm(desc=label, unit=" rows", unit_scale=True, file=sys.stderr)
        self.bar.update(rows - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
