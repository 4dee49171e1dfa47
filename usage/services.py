"""Usage workflows: retention of raw records (rollups are kept)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from usage.models import UsageRecord

PRUNE_CHUNK = 5000


def prune_usage_records(*, retention_days: int | None = None) -> int:
    """Delete raw usage records older than the retention, in chunks; returns how many.

    Chunked so a large backlog never holds the (SQLite) write lock for long. `DailyUsage`
    rollups are untouched: reports and the usage API keep working for any past range.
    """
    days = settings.MLAPI_USAGE_RETENTION_DAYS if retention_days is None else retention_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        ids = list(
            UsageRecord.objects.older_than(cutoff).values_list("pk", flat=True)[:PRUNE_CHUNK]
        )
        if not ids:
            return deleted
        deleted += UsageRecord.objects.filter(pk__in=ids).delete()[0]
