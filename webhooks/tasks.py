"""Celery tasks of the webhooks app: thin wrappers that take ids (see dispatch.py)."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready

from webhooks import alerts, dispatch, scheduled

log = logging.getLogger(__name__)


@shared_task(name="webhooks.dispatch_events", acks_late=True, reject_on_worker_lost=True)
def dispatch_events() -> int:
    """Fan undispatched outbox events out to deliveries and alert emails."""
    return dispatch.dispatch_events()


@shared_task(name="webhooks.deliver", acks_late=True, reject_on_worker_lost=True)
def deliver(delivery_id: int) -> str | None:
    """One attempt of one delivery, if it is due and no live worker holds it."""
    return dispatch.attempt_delivery(delivery_id=delivery_id)


@shared_task(name="webhooks.sweep")
def sweep() -> dict:
    """Re-enqueue due deliveries, undispatched events and unsent alert emails."""
    return dispatch.sweep()


@shared_task(name="webhooks.send_alert_emails", acks_late=True)
def send_alert_emails() -> int:
    """Send the pending alert emails."""
    return alerts.send_pending()


@shared_task(name="webhooks.scan_periodic_events")
def scan_periodic_events() -> dict:
    """Emit `key.expiring` notices and any `quota.threshold` a dead process failed to write."""
    return scheduled.scan()


@worker_ready.connect
def sweep_on_worker_start(sender=None, **kwargs) -> None:
    """A starting worker picks up what a killed one left (the embedded broker loses its
    unacknowledged messages with it)."""
    try:
        dispatch.sweep()
    except Exception:
        log.warning("webhook sweep at worker start failed", exc_info=True)
