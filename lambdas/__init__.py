"""AWS Lambda handlers: thin doors over the same jobs the management commands run.

Importing any handler imports this package first, which sets Django up once per container.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
django.setup()
