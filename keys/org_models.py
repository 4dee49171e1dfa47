"""Organizations own subscriptions; members hold one of four roles; invitations bring them in.

Imported into `keys.models` (Django finds the models there); kept apart to keep files small.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

INVITATION_VALIDITY = timedelta(days=7)


class Role(models.TextChoices):
    """What a member may do; see `keys.roles` for the permission each role carries."""

    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    DEVELOPER = "developer", "Developer"
    VIEWER = "viewer", "Viewer"


ROLE_VALUES = [value for value, _ in Role.choices]


class Organization(models.Model):
    """A team (or one person's personal organization, slug = username) that owns a subscription."""

    slug = models.CharField(max_length=150, unique=True)
    name = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.UniqueConstraint(Lower("slug"), name="organization_slug_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.slug


class MembershipQuerySet(models.QuerySet):
    def owners(self) -> MembershipQuerySet:
        return self.filter(role=Role.OWNER)


class Membership(models.Model):
    """One user in one organization, with one role."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ["organization_id", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "user"], name="one_membership_per_user"
            ),
            models.CheckConstraint(condition=Q(role__in=ROLE_VALUES), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class InvitationQuerySet(models.QuerySet):
    def pending(self, now=None) -> InvitationQuerySet:
        """Not used yet and not expired: the only invitations a token can redeem."""
        return self.filter(used_at__isnull=True, expires_at__gt=now or timezone.now())


class Invitation(models.Model):
    """An email invitation: a one-time token (only its SHA-256 stored), valid for 7 days."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=10, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(role__in=ROLE_VALUES), name="invitation_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.email} -> {self.organization} ({self.role})"

    def status(self, now=None) -> str:
        """`accepted`, `expired` or `pending`."""
        if self.used_at is not None:
            return "accepted"
        return "expired" if self.expires_at <= (now or timezone.now()) else "pending"
