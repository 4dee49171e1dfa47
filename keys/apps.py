from django.apps import AppConfig


class KeysConfig(AppConfig):
    """Plans, subscriptions, API keys, authentication and the rate and quota limits."""

    name = "keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import pre_save
        from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

        from keys.token_storage import digest_outstanding_token

        pre_save.connect(
            digest_outstanding_token, sender=OutstandingToken, dispatch_uid="keys.token_digest"
        )
