"""`AuditEntry`: one management action, append-only.

A bottom app: it imports none of ours, so the organization and the actor are plain ids (and the
actor's username as it was), not foreign keys. That keeps every arrow pointing down, and it
means deleting a user or an organization can never cascade into the record of what they did.
"""

from __future__ import annotations

from django.db import models


class AppendOnly(Exception):
    """An attempt to change or delete an audit entry (no product path does; this guards it)."""


class AuditEntryQuerySet(models.QuerySet):
    def for_organization(self, organization_id: int) -> AuditEntryQuerySet:
        return self.filter(organization_id=organization_id)

    def update(self, **kwargs):
        raise AppendOnly("Audit entries are append-only.")

    def delete(self):
        raise AppendOnly("Audit entries are append-only.")


class AuditEntry(models.Model):
    """`{id, time, actor, action, target_type, target_id, ip, changes}` plus the organization.

    `actor` is a username or `system` (management commands, tasks); `actor_id` the user's id
    when there was one. Written only by `audit.services.record_action`. On PostgreSQL a trigger
    refuses UPDATE and DELETE of rows (migration 0002); everywhere the model refuses them too.
    """

    time = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150)
    actor_id = models.BigIntegerField(null=True, blank=True)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64, blank=True)
    organization_id = models.BigIntegerField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    changes = models.JSONField(default=dict, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-time", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["organization_id", "-time"], name="audit_org_time"),
            models.Index(fields=["action"], name="audit_action"),
        ]

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target_type}"

    def save(self, *args, **kwargs):
        # Not integrity (the trigger is), just an early, clear error for a programming mistake.
        if not self._state.adding:
            raise AppendOnly("Audit entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly("Audit entries are append-only.")
