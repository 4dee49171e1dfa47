"""Celery tasks of the usage app (scheduled by CELERY_BEAT_SCHEDULE in settings)."""

from celery import shared_task

from usage.services import prune_usage_records as prune


@shared_task(name="usage.tasks.prune_usage_records")
def prune_usage_records() -> int:
    """Expire raw usage records past MLAPI_USAGE_RETENTION_DAYS (hourly, from beat)."""
    return prune()
