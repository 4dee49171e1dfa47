"""Plans, subscriptions, API keys and the counters behind the rate and quota limits.

`keys` is the bottom of the dependency chain: it imports nothing from the other apps, and
refers to models only by name (a plan covers models by their registry name).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from keys.org_models import (  # noqa: F401 (the models live in keys.models for Django)
    INVITATION_VALIDITY,
    ROLE_VALUES,
    Invitation,
    Membership,
    Organization,
    Role,
)
from keys.principal import all_scopes


class QuotaPeriod(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week"
    MONTH = "month", "Month"


class Plan(models.Model):
    """A usage plan: rate + burst (token bucket), quota per calendar period, and what it covers."""

    name = models.SlugField(max_length=50, unique=True)
    description = models.CharField(max_length=200, blank=True)
    rate = models.FloatField(help_text="Requests per second (token refill rate).")
    burst = models.PositiveIntegerField(help_text="Token bucket size.")
    quota = models.PositiveBigIntegerField(help_text="Predictions per quota period.")
    quota_period = models.CharField(max_length=5, choices=QuotaPeriod.choices)
    max_instances = models.PositiveIntegerField(help_text="Instances per request.")
    max_job_rows = models.PositiveIntegerField(help_text="Rows per batch job.")
    all_models = models.BooleanField(default=True)
    model_names = models.JSONField(
        default=list, blank=True, help_text="Registry names covered when not all_models."
    )
    requires_approval = models.BooleanField(default=False)
    is_public = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["rate", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(rate__gt=0), name="plan_rate_positive"),
            models.CheckConstraint(condition=Q(burst__gte=1), name="plan_burst_at_least_one"),
        ]

    def __str__(self) -> str:
        return self.name

    def covers(self, model_name: str) -> bool:
        """Whether requests to `model_name` are allowed on this plan."""
        return self.all_models or model_name in self.model_names


class SubscriptionStatus(models.TextChoices):
    PENDING = "pending", "Pending approval"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"


class SubscriptionQuerySet(models.QuerySet):
    def personal_for(self, user) -> SubscriptionQuerySet:
        """The user's personal subscription, while they are still a member of its organization."""
        return self.filter(user_id=user.pk, organization__memberships__user_id=user.pk)


class Subscription(models.Model):
    """An organization on a plan. Limits belong here, shared by all of its keys and JWTs.

    `user` is set on a personal organization's subscription only: it is the subscription the
    §6 account endpoints (`/api/v1/me`, `/keys`, `/usage`) and the data-plane JWT act on.
    """

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="subscription"
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="subscription",
        help_text="Set on a personal organization's subscription: whose it is.",
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(
        max_length=10, choices=SubscriptionStatus.choices, default=SubscriptionStatus.PENDING
    )
    requested_plan = models.ForeignKey(
        Plan,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="A plan change waiting for an operator's approval.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SubscriptionQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"{self.organization_id and self.organization.slug} on {self.plan}"

    def save(self, *args, **kwargs):
        # Compatibility, not integrity (the NOT NULL column is): code and tests that create a
        # subscription for a user the pre-organization way get that user's personal org.
        if self.organization_id is None and self.user_id is not None:
            from keys.orgs import ensure_personal_organization

            self.organization = ensure_personal_organization(user=self.user)
        super().save(*args, **kwargs)

    @property
    def is_active(self) -> bool:
        return self.status == SubscriptionStatus.ACTIVE


class ApiKeyQuerySet(models.QuerySet):
    def for_subscription(self, subscription_id: int) -> ApiKeyQuerySet:
        """Keys of one subscriber (everything else is a 404 to them)."""
        return self.filter(subscription_id=subscription_id)

    def usable(self, now=None) -> ApiKeyQuerySet:
        """Keys that authenticate now: not revoked, not expired, not past a rotation's grace."""
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class ApiKey(models.Model):
    """An API key `mlk_<prefix>.<secret>`: only the prefix and a hash of the secret are stored."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="keys")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The member who created it (the key belongs to the organization).",
    )
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    hashed_secret = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    rotated_to = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="rotated_from"
    )
    # §10 restrictions, validated by keys.restrictions.clean_restrictions.
    allowed_models = models.JSONField(
        null=True, blank=True, help_text="Model names within the plan; null = all it covers."
    )
    scopes = models.JSONField(default=all_scopes, help_text="Any of predict, jobs, models:read.")
    allowed_ips = models.JSONField(default=list, blank=True, help_text="CIDRs; empty = any.")
    allowed_origins = models.JSONField(
        default=list, blank=True, help_text="https origins; empty = any."
    )

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"mlk_{self.prefix} ({self.name or 'unnamed'})"

    def status(self, now=None) -> str:
        """`revoked`, `expired`, `rotating` (rotated, within its grace) or `active`."""
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "rotating" if self.rotated_to_id else "active"


class QuotaCounter(models.Model):
    """Predictions used by one subscription in one calendar quota period (UTC).

    Consumed with one conditional UPDATE (`used + n <= limit`), never read-then-write.
    `extension` is an operator's one-off grant for this period only. `held` counts the
    processes' reservations of the database store (keys.limits.reservations) still out, until
    `held_until` (epoch seconds) at the latest: a refusal for quota waits for them.
    """

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="quota_counters"
    )
    period_start = models.DateTimeField()
    used = models.PositiveBigIntegerField(default=0)
    extension = models.PositiveBigIntegerField(default=0)
    # Database defaults too: the limits' raw upserts insert rows without naming them.
    held = models.PositiveIntegerField(default=0, db_default=0)
    held_until = models.FloatField(default=0.0, db_default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "period_start"], name="one_counter_per_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subscription_id}@{self.period_start:%Y-%m-%d}: {self.used}"


class RateBucket(models.Model):
    """Token bucket state for one subscription when the limits live in the database.

    `tokens` as of `updated_at` (epoch seconds); refilled lazily at the plan's rate in the
    same conditional UPDATE that takes a token.
    """

    subscription = models.OneToOneField(
        Subscription, on_delete=models.CASCADE, related_name="rate_bucket"
    )
    tokens = models.FloatField()
    updated_at = models.FloatField()

    def __str__(self) -> str:
        return f"{self.subscription_id}: {self.tokens:.2f}"
