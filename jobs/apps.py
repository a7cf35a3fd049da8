from django.apps import AppConfig


class JobsConfig(AppConfig):
    """The data jobs and their management commands."""

    name = "jobs"
