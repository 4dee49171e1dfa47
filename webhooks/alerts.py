"""Email alerts to an organization's owners for quota.threshold, job.failed and key.expiring.

Each owner gets one email per event unless they opted out of that event type (portal, per
member). Rows (`AlertEmail`) are written when the event is dispatched, in its transaction;
`send_pending` sends them at least once (a crash between send and mark sends again).
"""

from __future__ import annotations

import logging

from django.core.mail import send_mail
from django.db.models import F

from events.models import Event
from keys.models import Membership, Role
from webhooks.models import ALERT_EVENTS, AlertEmail, AlertOptOut

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5

__all__ = ["ALERT_EVENTS", "queue_alert_emails", "send_pending", "unsent_exist"]


def queue_alert_emails(*, event: Event) -> int:
    """One pending `AlertEmail` per owner who wants this event's email (call in dispatch)."""
    if event.type not in ALERT_EVENTS:
        return 0
    opted_out = AlertOptOut.objects.filter(event_type=event.type).values("membership_id")
    owners = (
        Membership.objects.filter(organization_id=event.organization_id, role=Role.OWNER)
        .exclude(pk__in=opted_out)
        .exclude(user__email="")
        .select_related("user")
    )
    rows = [AlertEmail(event=event, user_id=m.user_id, email=m.user.email) for m in owners]
    AlertEmail.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _subject_and_body(event: Event) -> tuple[str, str]:
    data = event.data
    if event.type == "quota.threshold":
        return (
            f"mlapi: {data.get('threshold')}% of your quota used",
            f"Your organization has used {data.get('used')} of {data.get('limit')} predictions "
            f"in the period that ends at {data.get('period_end')}.",
        )
    if event.type == "job.failed":
        return (
            f"mlapi: batch job {data.get('id')} failed",
            f"The batch job {data.get('id')} on model {data.get('model')} failed: "
            f"{data.get('error', 'no detail')}",
        )
    return (
        f"mlapi: API key {data.get('name') or data.get('prefix')} expires soon",
        f"The API key {data.get('prefix')} ({data.get('name')}) expires at "
        f"{data.get('expires_at')}. Rotate it or issue a new one before then.",
    )


def unsent_exist() -> bool:
    return AlertEmail.objects.filter(sent_at__isnull=True, attempts__lt=MAX_ATTEMPTS).exists()


def send_pending(limit: int = 100) -> int:
    """Send up to `limit` unsent alert emails; returns how many were sent."""
    from django.utils import timezone

    sent = 0
    pending = AlertEmail.objects.filter(sent_at__isnull=True, attempts__lt=MAX_ATTEMPTS)
    for alert in pending.select_related("event")[:limit]:
        claimed = AlertEmail.objects.filter(
            pk=alert.pk, sent_at__isnull=True, attempts=alert.attempts
        ).update(attempts=F("attempts") + 1)
        if not claimed:
            continue  # another worker has it
        subject, body = _subject_and_body(alert.event)
        try:
            send_mail(subject, body + "\n\nManage alerts: /portal/alerts/", None, [alert.email])
        except Exception:
            log.warning("alert email %s not sent", alert.pk, exc_info=True)
            continue
        AlertEmail.objects.filter(pk=alert.pk).update(sent_at=timezone.now())
        sent += 1
    return sent
