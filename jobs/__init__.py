"""Roster's data jobs: the ingest pipeline, CSV loading, backup and restore."""
