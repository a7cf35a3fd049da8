"""The ingest pipeline: every row that enters Roster comes through ``ingest_rows`` (or, for a
loader that checks its next chunk while the database stores this one, ``check_rows`` then
``store_rows``). The GraphQL mutation, the REST route, the CSV loader, the restore and the
replay all call it, so a rule is enforced the same way everywhere.

One batch, one transaction, five steps (``pipeline._ingest``):

1. ``rules``: the dictionary's rules, row by row (pure Python);
2. ``references``: each ``department_id`` and ``job_id`` must exist (one query per table;
   on PostgreSQL it locks what it finds ``FOR KEY SHARE`` until the commit);
3. ``rules.reject_repeats``: an id repeated within the batch goes in once;
4. ``writers``: the bulk write (COPY or INSERT ... ON CONFLICT), which skips the ids that
   exist and isolates a row the database refuses; a large batch's ``COPY`` skips the foreign
   keys' per-row triggers where the role may, since step 2 holds what they would check;
5. ``audit``: the ``Batch`` row, the rejection log (``rejection_log``) and the log lines; once
   the batch commits, ``replay`` sends again the parked rows it let in.

``transactions.in_transaction`` starts the batch again after a deadlock; ``raw`` bounds what
the log keeps of a row.
"""

from jobs.ingest.audit import IngestResult, RejectedRow
from jobs.ingest.pipeline import ingest_rows, store_rows
from jobs.ingest.rules import BatchSizeError, CheckedRows, check_batch_size, check_rows
from jobs.ingest.transactions import in_transaction

__all__ = [
    "BatchSizeError",
    "CheckedRows",
    "IngestResult",
    "RejectedRow",
    "check_batch_size",
    "check_rows",
    "in_transaction",
    "ingest_rows",
    "store_rows",
]
