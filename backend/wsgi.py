"""WSGI entry point for gunicorn: ``gunicorn backend.wsgi``.

Each worker tunes its garbage collector once it has loaded everything (Django, the URLs, the
GraphQL schema): those objects live as long as the worker, so ``gc.freeze()`` keeps them out of
the collector's passes, and a first generation of 20,000 objects instead of 700 lets a
request's short-lived objects (a page's rows and answers) die before the collector looks at
them. Together about 0.5 ms of a 6 ms nested page (docs/benchmarks.md, "Beside PostGraphile").
Objects in cycles are still collected, only in larger and rarer passes.
"""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

GC_FIRST_GENERATION = 20_000  # objects

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
application = get_wsgi_application()
get_resolver().url_patterns  # noqa: B018  # imports the URLs' views and the schema now
gc.collect()
gc.freeze()
gc.set_threshold(GC_FIRST_GENERATION, *gc.get_threshold()[1:])
