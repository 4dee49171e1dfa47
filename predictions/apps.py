from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    """Model registry, validation and inference, v1 and V2 views, batch jobs."""

    name = "predictions"
    default_auto_field = "django.db.models.BigAutoField"
