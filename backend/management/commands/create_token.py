"""``python manage.py create_token NAME --scope read|write|admin``"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from backend.auth import create_token
from backend.models import ApiToken, Scope
from jobs.management.base import OperatorCommand


class Command(OperatorCommand):
    help = "Create an API token and print it (alone, on the last line). It is shown only once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="A unique name for the token, such as who holds it.")
        parser.add_argument(
            "--scope", choices=Scope.values, default=Scope.READ,
            help="read (default), write or admin; each includes the ones before it.",
        )  # fmt: skip
        parser.add_argument(
            "--replace", action="store_true", help="Replace an existing token of the same name."
        )

    def handle(self, *args: Any, name: str, scope: str, replace: bool, **options: Any) -> None:
        if ApiToken.objects.filter(name=name).exists():
            if not replace:
                raise CommandError(f"a token named {name!r} exists; use --replace to rotate it")
            ApiToken.objects.filter(name=name).delete()
        token = create_token(name=name, scope=scope)
        if self.verbosity > 0:
            self.stderr.write(f"Created the {scope} token {name!r}. Store it now: it is not kept.")
        self.stdout.write(token)
