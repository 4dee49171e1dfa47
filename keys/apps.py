from django.apps import AppConfig


class KeysConfig(AppConfig):
    """Plans, subscriptions, API keys, authentication and the rate and quota limits."""

    name = "keys"
    default_auto_field = "django.db.models.BigAutoField"
