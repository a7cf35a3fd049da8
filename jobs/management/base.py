"""The one shape of Roster's management commands.

``OperatorCommand``: however a command fails (a mistake, a fault such as a full disk or the
database gone, a bug), it ends with one line on stderr, ``error: …``, and a non-zero exit.
The details go to the JSON logs as one line at ERROR, traceback included; ``--traceback`` or
DEBUG also prints the traceback, above the ``error:`` line. ``jobs.faults`` words the line.

``JobCommand``: a data job (``load_csv``, ``backup``, ``restore``, ``replay_rejections``), one
``handle`` for all four: the job runs with the interpreter settings of a data job, a progress
bar on stderr, then a summary table on stdout. It skips the system checks (no URLs or GraphQL
schema to import).

Called through ``call_command`` (tests, other commands), errors are raised, as Django does:
the jobs' refusals (``SourceError``, ``BackupError``...) as a ``CommandError``, the rest as
they are.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from django.conf import settings
from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    SystemCheckError,
)

from jobs.faults import is_job_refusal, one_line
from jobs.progress import ProgressBar
from jobs.read_ahead import tuned_for_jobs
from jobs.summary import Column, summary_table

logger = logging.getLogger("roster.commands")

INTERRUPTED = 130  # the shell's code for a Ctrl-C


class _OneLineParser(CommandParser):
    """A usage mistake (an unknown option, a bad choice) is one ``error: …`` line too, exit 2,
    instead of argparse's usage block; ``--help`` still shows the usage."""

    def error(self, message: str) -> NoReturn:
        if not self.called_from_command_line:
            super().error(message)  # Django raises CommandError
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


class OperatorCommand(BaseCommand):
    """A command whose every failure ends as one ``error: …`` line and a non-zero exit."""

    verbosity = 1

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = _OneLineParser  # Django builds a CommandParser; ours only words errors
        return parser

    def execute(self, *args: Any, **options: Any) -> Any:
        self.verbosity = options.get("verbosity", 1)
        try:
            return super().execute(*args, **options)
        except SystemCheckError:  # Django words the checks' report itself
            raise
        except (Exception, KeyboardInterrupt) as error:
            if getattr(self, "_called_from_command_line", False):
                self.fail(error, show_traceback=options.get("traceback") or settings.DEBUG)
            if is_job_refusal(error):
                raise CommandError(str(error)) from error
            raise

    def fail(self, error: BaseException, *, show_traceback: bool) -> NoReturn:
        """Log ``error`` once, print ``error: <one line>`` last, and exit."""
        message = one_line(error)
        command = type(self).__module__.rpartition(".")[2]
        logger.error(
            "%s failed: %s", command, message,
            exc_info=error, extra={"command": command, "error": type(error).__name__},
        )  # fmt: skip
        if show_traceback:
            self.stderr.write("".join(traceback.format_exception(error)), ending="")
        self.stderr.write(f"error: {message}")
        if isinstance(error, KeyboardInterrupt):
            raise SystemExit(INTERRUPTED)
        raise SystemExit(error.returncode if isinstance(error, CommandError) else 1)


class JobCommand(OperatorCommand):
    """A data job. A subclass declares its options, its summary table's ``columns``, and
    ``run_job``, which parses the options, calls the job in ``jobs/`` and returns its
    summaries (one per table or file); ``handle`` does the rest, the same for every job.

    ``--verbosity``, as Django's commands read it:

    - 0: errors only (the ``error: …`` line);
    - 1 (the default): the summary table on stdout once the job is done;
    - 2 or more: a progress bar with rows/s on stderr as well, on a terminal only (never in a
      log or a pipe).
    """

    requires_system_checks: list[str] = []  # skip importing the URLs and GraphQL schema
    columns: Sequence[Column] = ()
    """The summary table: a column per (header, the summary's attribute or a function of it)."""

    def execute(self, *args: Any, **options: Any) -> Any:
        with tuned_for_jobs():  # the interpreter settings the read-ahead pays off with
            return super().execute(*args, **options)

    def handle(self, *args: Any, **options: Any) -> None:
        with self.progress_bar() as progress:
            summaries = self.run_job(*args, progress=progress, **options)
        if self.verbosity >= 1:
            self.stdout.write(summary_table(self.columns, summaries))

    run_job: Callable[..., Sequence[object]]
    """``run_job(*, progress, **options)``: run the job with the parsed ``options``, reporting
    to ``progress``; a user's mistake is a ``CommandError``. Each command names its options."""

    @contextmanager
    def progress_bar(self) -> Iterator[ProgressBar]:
        """The job's ``Progress``: a bar at verbosity 2+ on a terminal, closed before any
        error is printed."""
        bar = ProgressBar(enabled=self.verbosity >= 2 and sys.stderr.isatty())
        try:
            yield bar
        finally:
            bar.close()
