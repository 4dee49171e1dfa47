from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The custom user model and the browser developer portal."""

    name = "portal"
    default_auto_field = "django.db.models.BigAutoField"
