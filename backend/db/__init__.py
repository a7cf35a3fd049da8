"""Roster's own Django database backends (``DATABASES[...]["ENGINE"]``)."""
