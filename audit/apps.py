from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The append-only audit log of management actions (a bottom app: imports none of ours)."""

    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"
