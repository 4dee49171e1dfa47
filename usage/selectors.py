"""Read-side queries over usage: per-day series for a subscriber, recent errors.

Everything here reads `DailyUsage` rollups (never raw records), except `recent_errors`, which
lists the latest failed requests still within retention.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Sum

from keys.models import ApiKey, QuotaCounter, Subscription
from usage.models import (
    LATENCY_FIELDS,
    DailyUsage,
    UsageRecord,
    percentile_from_histogram,
)

SERIES_FIELDS = ("requests", "predictions", "errors", "throttled")


def days_between(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def period_start_of(period: str, day: date) -> date:
    """First day of the calendar quota period (UTC) that contains `day`."""
    from keys.limits import period_bounds

    start, _ = period_bounds(period, datetime.combine(day, time.min, tzinfo=UTC))
    return start.astimezone(UTC).date()


def sum_by_day(rows, fields) -> dict[date, dict]:
    """{day: {field: total}} for a DailyUsage queryset."""
    totals = rows.values("day").annotate(**{f: Sum(f) for f in fields}).order_by("day")
    return {row["day"]: row for row in totals}


def quota_used_by_day(*, subscription: Subscription, start: date, end: date) -> dict[date, dict]:
    """For each day: quota used in its period up to the end of that day, and the period limit.

    Quota is the subscription's (all keys and models), counted from the rollups' predictions;
    the limit is the plan's quota plus the period's one-off extension.
    """
    period = subscription.plan.quota_period
    first_period_day = period_start_of(period, start)
    predictions = sum_by_day(
        DailyUsage.objects.filter(subscription=subscription).between(first_period_day, end),
        ("predictions",),
    )
    period_of = {day: period_start_of(period, day) for day in days_between(start, end)}
    first = datetime.combine(first_period_day, time.min, tzinfo=UTC)
    extensions = {
        counter.period_start.astimezone(UTC).date(): counter.extension
        for counter in QuotaCounter.objects.filter(
            subscription=subscription, period_start__gte=first, extension__gt=0
        )
    }
    out: dict[date, dict] = {}
    running: dict[date, int] = defaultdict(int)
    for day in days_between(first_period_day, end):
        period_day = period_start_of(period, day) if day < start else period_of[day]
        running[period_day] += int((predictions.get(day) or {}).get("predictions") or 0)
        if day >= start:
            limit = subscription.plan.quota + extensions.get(period_day, 0)
            out[day] = {"used": running[period_day], "limit": limit}
    return _with_live_quota(out, subscription=subscription, period_of=period_of)


def _with_live_quota(out: dict, *, subscription: Subscription, period_of: dict) -> dict:
    """From today on in the open period, the live counter (what `/api/v1/me` shows), not the
    rollups: those trail it by the usage writer's buffer, and the counter is the quota itself."""
    from keys.limits import quota_status

    today = datetime.now(UTC).date()
    days = [day for day in out if day >= today]
    if not days:
        return out
    live = quota_status(subscription=subscription)
    open_period = live.period_start.astimezone(UTC).date()
    for day in days:
        if period_of[day] == open_period:
            out[day] = {"used": live.used, "limit": live.limit}
    return out


def daily_usage(
    *,
    subscription: Subscription,
    start: date,
    end: date,
    model: str | None = None,
    key_id: int | None = None,
) -> list[dict]:
    """The items of `GET /api/v1/usage`: one per day from start to end, zeros included."""
    rows = DailyUsage.objects.filter(subscription=subscription).between(start, end)
    if model is not None:
        rows = rows.filter(model_name=model)
    if key_id is not None:
        rows = rows.filter(key_id=key_id)
    totals = sum_by_day(rows, (*SERIES_FIELDS, *LATENCY_FIELDS))
    quota = quota_used_by_day(subscription=subscription, start=start, end=end)
    items = []
    for day in days_between(start, end):
        row = totals.get(day) or {}
        counts = [int(row.get(name) or 0) for name in LATENCY_FIELDS]
        used = quota[day]["used"]
        items.append(
            {
                "date": day.isoformat(),
                **{field: int(row.get(field) or 0) for field in SERIES_FIELDS},
                "quota_used": used,
                "quota_remaining": max(0, quota[day]["limit"] - used),
                "p50_ms": percentile_from_histogram(counts, 0.50),
                "p95_ms": percentile_from_histogram(counts, 0.95),
            }
        )
    return items


def recent_errors(*, subscription: Subscription, limit: int = 10) -> list[UsageRecord]:
    """The subscriber's latest failed requests (4xx/5xx, 429s included), newest first."""
    return list(
        UsageRecord.objects.for_subscription(subscription.pk)
        .failed()
        .select_related("key")
        .order_by("-time")[:limit]
    )


def subscriber_owns_key(*, subscription: Subscription, key_id: int) -> bool:
    """Key filters may name only the subscriber's own keys (revoked ones included)."""
    return ApiKey.objects.filter(pk=key_id, subscription=subscription).exists()


def subscriber_knows_model(*, subscription: Subscription, model: str) -> bool:
    """A model filter is valid if the registry has it or the subscriber has history with it."""
    from django.apps import apps

    registry = apps.get_model("predictions", "MLModel")  # by label: usage does not import it
    return (
        registry.objects.filter(name=model).exists()
        or DailyUsage.objects.filter(subscription=subscription, model_name=model).exists()
    )
