#!/usr/bin/env python
"""Django's command-line utility for Roster."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
    from django.conf import settings
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except Exception as error:
        # Settings that fail to load (SECRET_KEY missing, a bad DATABASE_URL) leave Django
        # unconfigured: say why in one line. Any other error is the command's to report.
        if settings.configured or "--traceback" in sys.argv:
            raise
        sys.exit(f"error: {' '.join(str(error).split()) or type(error).__name__}")


if __name__ == "__main__":
    main()
