from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    """Model registry, validation and inference, v1 and V2 views, batch jobs."""

    name = "predictions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from predictions import (
            checks,  # noqa: F401 - registers the object-storage system check
            schema,  # noqa: F401 - registers the OpenAPI security schemes
            signals,  # noqa: F401 - connects the cache invalidation
        )
