"""Webhook endpoints of an organization, their deliveries, and members' email-alert opt-outs."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from events.models import Event
from keys.models import Membership, Organization


class WebhookEndpoint(models.Model):
    """A URL an organization wants events POSTed to, signed with its own secret.

    The secret is kept encrypted (`webhooks.crypto`: it must be readable to sign, so it cannot
    be hashed like an API key) and shown once, at creation.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list, help_text="Event types this endpoint receives.")
    secret_encrypted = models.TextField()
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization_id", "created_at", "id"]

    def __str__(self) -> str:
        return f"{self.organization_id}: {self.url}"

    def wants(self, event_type: str) -> bool:
        return self.is_active and event_type in self.events


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class DeliveryQuerySet(models.QuerySet):
    def waiting(self, now) -> DeliveryQuerySet:
        """Pending and not held by a live worker (its lease expired or never taken)."""
        return self.filter(status=DeliveryStatus.PENDING).filter(
            Q(lease_until__isnull=True) | Q(lease_until__lt=now)
        )

    def due(self, now=None) -> DeliveryQuerySet:
        """Waiting, and its next attempt is due."""
        now = now or timezone.now()
        return self.waiting(now).filter(next_attempt_at__lte=now)


class Delivery(models.Model):
    """One event to one endpoint, until it answers 2xx or the retry window closes.

    `attempts` counts claimed attempts (a worker killed mid-attempt counts); the last
    attempt's code, duration, error and the first bytes of its answer are kept.
    """

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="one_delivery_per_event"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="delivery_pending_due",
            ),
        ]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint_id}: {self.status}"


ALERT_EVENTS = ("quota.threshold", "job.failed", "key.expiring")


class AlertOptOut(models.Model):
    """A member who does not want the email alert for one event type of one organization."""

    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="+")
    event_type = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["membership", "event_type"], name="one_optout_per_event"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.membership_id} opted out of {self.event_type}"


class AlertEmail(models.Model):
    """One alert email for one event to one owner; sent (at least once) by a task."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    user_id = models.BigIntegerField()
    email = models.EmailField(max_length=254)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "user_id"], name="one_alert_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.email}"
