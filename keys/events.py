"""The events keys decides: quota thresholds, key expiry and revocation, subscription changes.

`note_admitted` is on the predict path: pure arithmetic on the state `limits.admit` returned,
and a write only for the request whose units crossed 80, 90 or 100 % of the period's quota.
Each admit reports the count before and after its units (a store whose counts can be revised
down reports its high-water mark as "before"), so every threshold is crossed by some request;
the outbox's unique `dedupe_key` (subscription, period start, threshold) makes it exactly once
even when refunds let a later request cross the same line again, or when a second node
reaches it concurrently. A process that dies between its admit and that write is covered by
`reconcile_quota_thresholds` (periodic), which emits any crossing the counters show and the
outbox lacks.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from events.services import (
    KEY_EXPIRING,
    KEY_REVOKED,
    QUOTA_THRESHOLD,
    SUBSCRIPTION_UPDATED,
    emit_event,
)

log = logging.getLogger(__name__)
THRESHOLDS = (80, 90, 100)
EXPIRY_NOTICE = timedelta(days=7)


def threshold_units(limit: int, percent: int) -> int:
    """The `used` value at which `percent` of `limit` is reached (rounded up)."""
    return -(-limit * percent // 100)


def crossed(*, before: int, used: int, limit: int) -> tuple[int, ...]:
    """Thresholds that going from `before` to `used` crossed (pure arithmetic)."""
    if limit <= 0:
        return ()
    return tuple(p for p in THRESHOLDS if before < threshold_units(limit, p) <= used)


def _emit_threshold(*, subscription_id, organization_id, percent, used, limit, start, end) -> int:
    return (
        emit_event(
            type=QUOTA_THRESHOLD,
            organization_id=organization_id,
            data={
                "threshold": percent,
                "used": used,
                "limit": limit,
                "period_start": start,
                "period_end": end,
            },
            dedupe_key=f"quota.threshold:{subscription_id}:{start.isoformat()}:{percent}",
        )
        is not None
    )


def note_admitted(*, principal, state, before: int | None = None) -> None:
    """After an admit: emit `quota.threshold` for each threshold crossed between `before`
    (default: the count the admit reported before its units) and `state.used`, together;
    never fails the request that noticed them (logged)."""
    hits = crossed(
        before=state.before if before is None else before, used=state.used, limit=state.quota
    )
    if not hits or principal.organization_id is None:
        return
    try:
        with transaction.atomic():
            for percent in hits:
                _emit_threshold(
                    subscription_id=principal.subscription_id,
                    organization_id=principal.organization_id,
                    percent=percent,
                    used=state.used,
                    limit=state.quota,
                    start=state.period_start,
                    end=state.period_end,
                )
    except Exception:
        log.warning("quota.threshold not written", exc_info=True)


def reconcile_quota_thresholds() -> int:
    """Emit every threshold the current periods' counters have reached (deduplicated)."""
    from keys.limits import quota_status
    from keys.models import Subscription

    recent = timezone.now() - timedelta(days=32)  # the longest period: a month
    candidates = (
        Subscription.objects.filter(quota_counters__period_start__gte=recent)
        .select_related("plan")
        .distinct()
    )
    emitted = 0
    for subscription in candidates:
        status = quota_status(subscription=subscription)
        hits = crossed(before=0, used=status.used, limit=status.limit)
        with transaction.atomic():
            for percent in hits:
                emitted += _emit_threshold(
                    subscription_id=subscription.pk,
                    organization_id=subscription.organization_id,
                    percent=percent,
                    used=status.used,
                    limit=status.limit,
                    start=status.period_start,
                    end=status.resets_at,
                )
    return emitted


def key_data(api_key) -> dict:
    return {
        "id": api_key.pk,
        "name": api_key.name,
        "prefix": api_key.prefix,
        "expires_at": api_key.expires_at,
        "revoked_at": api_key.revoked_at,
    }


def emit_key_revoked(*, api_key, organization_id: int) -> None:
    """`key.revoked` (call inside the revocation's transaction)."""
    emit_event(type=KEY_REVOKED, organization_id=organization_id, data=key_data(api_key))


def emit_subscription_updated(*, subscription) -> None:
    """`subscription.updated` `{plan, status}` (call inside the change's transaction)."""
    emit_event(
        type=SUBSCRIPTION_UPDATED,
        organization_id=subscription.organization_id,
        data={"plan": subscription.plan.name, "status": subscription.status},
    )


def emit_expiring_keys(now: datetime | None = None) -> int:
    """`key.expiring` once per key (and expiry time) whose `expires_at` is within 7 days."""
    from keys.models import ApiKey

    now = now or datetime.now(UTC)
    keys = ApiKey.objects.usable(now).filter(
        expires_at__lte=now + EXPIRY_NOTICE, rotated_to__isnull=True
    )
    emitted = 0
    for api_key in keys.select_related("subscription"):
        with transaction.atomic():
            emitted += None is not emit_event(
                type=KEY_EXPIRING,
                organization_id=api_key.subscription.organization_id,
                data=key_data(api_key),
                dedupe_key=f"key.expiring:{api_key.pk}:{api_key.expires_at.isoformat()}",
            )
    return emitted


def note_consumed(*, principal) -> None:
    """After quota taken without `admit` (a batch job): every threshold now reached, deduped."""
    from keys.limits import LimitError, peek
    from mlapi.exceptions import ServiceUnavailable

    try:
        state = peek(principal=principal)
    except (LimitError, ServiceUnavailable):
        return  # the periodic reconciliation emits it
    note_admitted(principal=principal, state=state, before=0)
