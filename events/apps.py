from django.apps import AppConfig


class EventsConfig(AppConfig):
    """The outbox of events for webhooks and alerts (a bottom app: imports none of ours)."""

    name = "events"
    default_auto_field = "django.db.models.BigAutoField"
