"""`emit_event(...)`: the one way an event enters the outbox.

Call it inside the transaction of what caused the event: the row commits or rolls back with
it. After the commit `event_committed` is sent (the delivering app wakes its dispatcher on it;
if that wake-up is lost, the periodic sweep finds the row anyway).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from events.models import Event

QUOTA_THRESHOLD = "quota.threshold"
JOB_SUCCEEDED = "job.succeeded"
JOB_FAILED = "job.failed"
KEY_EXPIRING = "key.expiring"
KEY_REVOKED = "key.revoked"
SUBSCRIPTION_UPDATED = "subscription.updated"
PING = "ping"
EVENT_TYPES = (
    QUOTA_THRESHOLD, JOB_SUCCEEDED, JOB_FAILED, KEY_EXPIRING, KEY_REVOKED, SUBSCRIPTION_UPDATED,
    PING,
)  # fmt: skip
SUBSCRIBABLE = tuple(t for t in EVENT_TYPES if t != PING)  # a ping goes to the endpoint tested

# Sent after the commit with `event_type` and `organization_id` (not the row: it may be gone).
event_committed = Signal()


def _json_safe(data: Any) -> Any:
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def emit_event(
    *,
    type: str,
    organization_id: int,
    data: dict,
    dedupe_key: str | None = None,
    endpoint_id: int | None = None,
) -> Event | None:
    """Add an event to the outbox in the current transaction.

    With `dedupe_key`, an event with that key already there makes this a no-op
    (`INSERT ... ON CONFLICT DO NOTHING`, so concurrent emitters never fail nor duplicate);
    returns None then. Raises ValueError for an unknown `type`.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    event = Event(
        type=type,
        organization_id=organization_id,
        data=_json_safe(data),
        created_at=timezone.now(),
        dedupe_key=dedupe_key,
        endpoint_id=endpoint_id,
    )
    if dedupe_key is None:
        event.save(force_insert=True)
    else:
        Event.objects.bulk_create([event], ignore_conflicts=True)
        if not Event.objects.filter(pk=event.pk).exists():
            return None
    transaction.on_commit(
        lambda: event_committed.send(sender=Event, event_type=type, organization_id=organization_id)
    )
    return event
