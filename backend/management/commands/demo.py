"""``python manage.py demo``: the embedded default, with the sample data, ready to explore."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandParser

from backend.auth import create_token
from backend.models import ApiToken, Department, Scope
from jobs.loading import load_sources
from jobs.management.base import OperatorCommand


class Command(OperatorCommand):
    help = "Migrate, load the sample CSV files once, print an admin token, and run the server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--addrport", default="127.0.0.1:8000", help="Where to serve (default 127.0.0.1:8000)."
        )
        parser.add_argument("--no-serve", action="store_true", help="Set up, but do not serve.")

    def handle(self, *args: Any, addrport: str, no_serve: bool, **options: Any) -> None:
        call_command("migrate", verbosity=0)
        if not Department.objects.exists():
            # The 70 incomplete sample rows are logged in the rejection log; keep the console calm.
            logging.getLogger("roster.ingest").setLevel(logging.ERROR)
            for s in load_sources([str(settings.BASE_DIR / "data" / "sample")]):
                if self.verbosity > 0:
                    self.stdout.write(
                        f"loaded {s.table}: {s.inserted} inserted, {s.rejected} rejected"
                    )
            logging.getLogger("roster.ingest").setLevel(logging.NOTSET)
        ApiToken.objects.filter(name="demo").delete()
        token = create_token(name="demo", scope=Scope.ADMIN)
        self.stdout.write(
            f"\nGraphiQL: http://{addrport}/graphql\n"
            f"Token (admin scope), for the Headers tab:\n"
            f'  {{"Authorization": "Bearer {token}"}}\n'
        )
        if not no_serve:
            call_command("runserver", addrport, use_reloader=False)
