"""From the outbox to the wire: fan events out to deliveries, attempt them, schedule retries.

At least once, never from a request thread:
* `dispatch_events` (a task) turns each undispatched `Event` into one `Delivery` per endpoint
  that wants it (and one `AlertEmail` per owner who wants it), marking the event dispatched in
  the same transaction; unique constraints make a second dispatcher harmless.
* `attempt_delivery` claims a due delivery with a lease (one conditional UPDATE), POSTs it
  outside any transaction, and records the result: 2xx ends it, anything else schedules the
  next attempt at `base * 2**(attempts-1)` seconds, until `MLAPI_WEBHOOK_RETRY_WINDOW_S` (24 h)
  after the event, with a last attempt at the window's end.
* A worker killed mid-attempt leaves a lease that expires; `sweep` (beat, and every worker at
  start) re-enqueues due deliveries and undispatched events, so nothing is lost.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from events.models import Event
from webhooks import alerts, crypto, transport
from webhooks.models import Delivery, DeliveryStatus, WebhookEndpoint

log = logging.getLogger(__name__)
DISPATCH_BATCH = 200


def _send(task_name: str, *args, countdown: float | None = None, retry: bool = True) -> None:
    from mlapi.celery import app

    options = {"queue": settings.MLAPI_WEBHOOK_QUEUE} if settings.MLAPI_WEBHOOK_QUEUE else {}
    app.send_task(task_name, args=args, countdown=countdown, retry=retry, **options)


def _wake() -> None:
    try:
        _send("webhooks.dispatch_events", retry=False)
    except Exception:  # the broker may be down: the event waits in the outbox for the sweep
        log.warning("could not wake the webhook dispatcher; the sweep will", exc_info=True)


def wake_dispatcher(sender=None, **kwargs) -> None:
    """After an event's commit: ask a worker to dispatch, from a short-lived thread, so the
    request that caused the event (a predict crossing a quota threshold) never waits on the
    broker. A wake-up lost with its process is covered by the periodic sweep."""
    threading.Thread(target=_wake, name="webhooks-wake", daemon=True).start()


def _fan_out(event: Event, endpoints: list[WebhookEndpoint], now: datetime) -> list[Delivery]:
    wanted = [
        e
        for e in endpoints
        if (e.pk == event.endpoint_id if event.endpoint_id else e.wants(event.type))
    ]
    rows = [Delivery(endpoint=e, event=event, next_attempt_at=now, created_at=now) for e in wanted]
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    return list(Delivery.objects.filter(event=event, status=DeliveryStatus.PENDING))


def dispatch_events() -> int:
    """Fan out up to DISPATCH_BATCH undispatched events; enqueue their first attempts."""
    now = timezone.now()
    with transaction.atomic():
        events = list(
            Event.objects.undispatched().select_for_update(skip_locked=True)[:DISPATCH_BATCH]
        )
        orgs = {e.organization_id for e in events}
        endpoints: dict[int, list[WebhookEndpoint]] = {}
        for endpoint in WebhookEndpoint.objects.filter(organization_id__in=orgs):
            endpoints.setdefault(endpoint.organization_id, []).append(endpoint)
        deliveries: list[Delivery] = []
        for event in events:
            deliveries += _fan_out(event, endpoints.get(event.organization_id, []), now)
            alerts.queue_alert_emails(event=event)
        Event.objects.filter(pk__in=[e.pk for e in events]).update(dispatched_at=now)
    ids = [d.pk for d in deliveries]
    transaction.on_commit(lambda: [_send("webhooks.deliver", pk) for pk in ids])
    if any(e.type in alerts.ALERT_EVENTS for e in events):
        transaction.on_commit(lambda: _send("webhooks.send_alert_emails"))
    return len(events)


def next_attempt(delivery: Delivery, now: datetime) -> datetime | None:
    """When to try again after `delivery.attempts` failed attempts; None once the window closed."""
    window_end = delivery.event.created_at + timedelta(
        seconds=settings.MLAPI_WEBHOOK_RETRY_WINDOW_S
    )
    if now >= window_end:
        return None
    delay = settings.MLAPI_WEBHOOK_RETRY_BASE_S * 2 ** max(0, delivery.attempts - 1)
    return min(now + timedelta(seconds=delay), window_end)


def _claim(delivery_id: int, now: datetime) -> bool:
    lease = now + timedelta(seconds=settings.MLAPI_WEBHOOK_LEASE_S)
    return bool(
        Delivery.objects.due(now)
        .filter(pk=delivery_id)
        .update(lease_until=lease, attempts=F("attempts") + 1, last_attempt_at=now)
    )


def _request(delivery: Delivery) -> transport.AttemptResult:
    body = json.dumps(delivery.event.payload(), separators=(",", ":"))
    try:
        secret = crypto.decrypt_secret(delivery.endpoint.secret_encrypted)
    except crypto.SecretUnreadable as exc:
        return transport.AttemptResult(None, 0, str(exc), permanent=True)
    headers = crypto.signature_headers(secret=secret, msg_id=delivery.event.webhook_id, body=body)
    return transport.post(
        delivery.endpoint.url, body.encode(), headers, timeout=settings.MLAPI_WEBHOOK_TIMEOUT_S
    )


def attempt_delivery(*, delivery_id: int) -> str | None:
    """One attempt if the delivery is due and unclaimed; returns its status afterwards."""
    now = timezone.now()
    if not _claim(delivery_id, now):
        _requeue_if_early(delivery_id, now)
        return None
    delivery = Delivery.objects.select_related("endpoint", "event").get(pk=delivery_id)
    result = _request(delivery)
    done = timezone.now()
    fields = {
        "lease_until": None,
        "response_status": result.status,
        "duration_ms": result.duration_ms,
        "error": result.error[:300],
        "response_excerpt": result.excerpt[:500],
    }
    retry_at = None if result.ok or result.permanent else next_attempt(delivery, done)
    if result.ok:
        fields.update(status=DeliveryStatus.SUCCEEDED, delivered_at=done, next_attempt_at=None)
    elif retry_at is None:
        fields.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    else:
        fields.update(next_attempt_at=retry_at)
    Delivery.objects.filter(pk=delivery_id).update(**fields)
    if (
        retry_at is not None
        and (retry_at - done).total_seconds() <= settings.MLAPI_WEBHOOK_MAX_COUNTDOWN_S
    ):
        _send("webhooks.deliver", delivery_id, countdown=(retry_at - done).total_seconds())
    return fields.get("status", DeliveryStatus.PENDING)


def _requeue_if_early(delivery_id: int, now: datetime) -> None:
    """A retry whose message arrived before its time (a broker's or worker's timer can fire
    a few milliseconds early, or a redelivery came in between) is sent again for the rest of
    its wait instead of being dropped until the sweep."""
    due_at = (
        Delivery.objects.waiting(now)
        .filter(pk=delivery_id, next_attempt_at__gt=now)
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    if due_at is not None:
        wait = (due_at - now).total_seconds()
        if wait <= settings.MLAPI_WEBHOOK_MAX_COUNTDOWN_S:
            _send("webhooks.deliver", delivery_id, countdown=wait)


def sweep() -> dict[str, int]:
    """Re-enqueue what a lost message or a dead worker left: due deliveries, undispatched events."""
    now = timezone.now()
    due = list(Delivery.objects.due(now).values_list("pk", flat=True)[:1000])
    for pk in due:
        _send("webhooks.deliver", pk)
    stale = Event.objects.undispatched().filter(created_at__lte=now - timedelta(seconds=2))
    waiting = stale.exists()
    if waiting:
        _send("webhooks.dispatch_events")
    if alerts.unsent_exist():
        _send("webhooks.send_alert_emails")
    return {"deliveries": len(due), "events_waiting": int(waiting)}


@transaction.atomic
def redeliver(*, delivery: Delivery) -> Delivery:
    """Send again now (same event, same `webhook-id`), whatever the delivery's state."""
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.PENDING, next_attempt_at=timezone.now(), lease_until=None
    )
    transaction.on_commit(lambda: _send("webhooks.deliver", delivery.pk))
    delivery.refresh_from_db()
    return delivery
