"""A progress bar with rows/s for the jobs' commands: on a terminal only, never in a log."""

from __future__ import annotations

import sys
from typing import Any


class RowProgress:
    """One tqdm bar per label (a table or a file), fed with running row counts."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.label = ""

    def update(self, label: str, rows: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if label != self.label:
            self.close()
            self.label = label
            self.bar = tqdm(desc=label, unit=" rows", unit_scale=True, file=sys.stderr)
        self.bar.update(rows - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
