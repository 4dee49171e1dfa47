"""Per-version numbers for operators: traffic, latency, error rate and shadow agreement.

Traffic comes from the raw usage records of the last day (`UsageRecord` carries the answering
version; the daily rollups do not split by version), shadow agreement from predictions.shadow.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Avg, Count, Q
from django.utils import timezone

from predictions.shadow import agreement
from usage.models import UsageRecord


def version_traffic(*, model_name: str, hours: int = 24) -> dict[str, dict]:
    """{version: {requests, errors, error_rate, latency_ms}} over the last `hours`."""
    since = timezone.now() - timedelta(hours=hours)
    rows = (
        UsageRecord.objects.filter(model_name=model_name, time__gte=since)
        .exclude(model_version="")
        .values("model_version")
        .annotate(
            requests=Count("id"),
            errors=Count("id", filter=Q(status__gte=400) & ~Q(status=429)),
            latency_ms=Avg("latency_ms"),
        )
    )
    return {
        row["model_version"]: {
            "requests": row["requests"],
            "errors": row["errors"],
            "error_rate": row["errors"] / row["requests"] if row["requests"] else 0.0,
            "latency_ms": row["latency_ms"] or 0.0,
        }
        for row in rows
    }


def shadow_agreement(*, model_name: str) -> list[dict]:
    """[{version, shadow_version, compared, agreement}] for the model's shadow pairs."""
    out = []
    for (version, shadow), counts in sorted(agreement(model_name).items()):
        compared = counts["agree"] + counts["disagree"]
        out.append(
            {
                "version": version,
                "shadow_version": shadow,
                "compared": int(compared),
                "agreement": counts["agree"] / compared if compared else None,
            }
        )
    return out
