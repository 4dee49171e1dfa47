from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Delivers the outbox's events: signed webhook POSTs (Celery) and email alerts."""

    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from events.services import event_committed
        from webhooks import dispatch

        event_committed.connect(dispatch.wake_dispatcher, dispatch_uid="webhooks.wake")
