"""`Event`: one row of the outbox, written in the transaction of what caused it.

A bottom app: it imports none of ours, so the organization is a plain id. The delivering app
(`webhooks`) reads undispatched rows, fans each out to its endpoints and alert recipients, and
marks it dispatched; a row is never sent for a transaction that rolled back (it was never
committed) and never lost when a process dies after the commit (it stays undispatched until a
dispatcher, woken on commit or by the periodic sweep, takes it).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class EventQuerySet(models.QuerySet):
    def undispatched(self) -> EventQuerySet:
        return self.filter(dispatched_at__isnull=True)


class Event(models.Model):
    """`{"type", "timestamp", "data"}` for one organization; `id` is the stable `webhook-id`.

    `dedupe_key` makes an event that must happen once (a quota threshold in a period, a key's
    expiry notice) a database guarantee: a second insert with the same key does nothing.
    `endpoint_id` set: for that one webhook endpoint only (a test `ping`).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=64)
    organization_id = models.BigIntegerField()
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    dedupe_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    endpoint_id = models.BigIntegerField(null=True, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=models.Q(dispatched_at__isnull=True),
                name="event_undispatched",
            ),
            models.Index(fields=["organization_id", "-created_at"], name="event_org_time"),
        ]

    def __str__(self) -> str:
        return f"{self.type} for org {self.organization_id} at {self.created_at:%Y-%m-%d %H:%M:%S}"

    @property
    def webhook_id(self) -> str:
        """The Standard Webhooks `webhook-id`: the same for every attempt and endpoint."""
        return f"msg_{self.id.hex}"

    def payload(self) -> dict:
        """The delivered body: `{"type", "timestamp", "data"}` (contract §12)."""
        stamp = self.created_at.isoformat().replace("+00:00", "Z")
        return {"type": self.type, "timestamp": stamp, "data": self.data}
