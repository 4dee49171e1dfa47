from django.apps import AppConfig


class UsageConfig(AppConfig):
    """Usage records, daily rollups, analytics selectors and the admin usage report."""

    name = "usage"
    default_auto_field = "django.db.models.BigAutoField"
