from django.apps import AppConfig


class BackendConfig(AppConfig):
    """The models app: the HR tables, the rejection log, batch audit and API tokens."""

    name = "backend"
    label = "backend"
    verbose_name = "Roster"
    default_auto_field = "django.db.models.BigAutoField"
