"""Workflows of the API-management plane: signup, subscriptions, keys, quota extensions.

Keyword-only, verb-first functions; HTTP views, admin actions and management commands all call
these. Domain errors are `mlapi.exceptions.DomainError` subclasses.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from keys import crypto, keycache
from keys.limits import period_bounds
from keys.models import ApiKey, Plan, QuotaCounter, Subscription, SubscriptionStatus
from mlapi.exceptions import DomainError

DEFAULT_PLAN = "free"


class InvalidRequest(DomainError):
    """A request that is well-formed but not acceptable (400 validation_error)."""

    status = 400
    code = "validation_error"
    title = "Validation failed"


def _invalid(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, errors=[{"field": field, "message": message}])


def _status_for(plan: Plan, approved: bool) -> str:
    if approved or not plan.requires_approval:
        return SubscriptionStatus.ACTIVE
    return SubscriptionStatus.PENDING


@transaction.atomic
def signup_subscriber(
    *, username: str, email: str, password: str, plan_name: str | None = None
) -> Subscription:
    """Create a user and their subscription (pending if the plan requires approval).

    The password must already have passed Django's validators (the serializer does that with
    the would-be user's attributes). Raises `InvalidRequest` for taken names, unknown or
    private plans.
    """
    plan = Plan.objects.filter(name=plan_name or DEFAULT_PLAN, is_public=True).first()
    if plan is None:
        raise _invalid("plan", f"There is no public plan named {plan_name!r}.")
    user_model = get_user_model()
    if user_model.objects.filter(username__iexact=username).exists():
        raise _invalid("username", "This username is taken.")
    if user_model.objects.filter(email__iexact=email).exists():
        raise _invalid("email", "An account with this email already exists.")
    try:
        with transaction.atomic():
            user = user_model.objects.create_user(username=username, email=email, password=password)
    except IntegrityError as exc:  # lost a race with an identical signup
        raise _invalid("username", "This username or email is taken.") from exc
    return Subscription.objects.create(user=user, plan=plan, status=_status_for(plan, False))


def subscribe(*, user, plan: Plan, approved: bool = True) -> Subscription:
    """Put `user` on `plan` (creating or changing the subscription); active if approved."""
    subscription, _ = Subscription.objects.update_or_create(
        user=user,
        defaults={"plan": plan, "status": _status_for(plan, approved), "requested_plan": None},
    )
    return subscription


def request_plan_change(*, subscription: Subscription, plan: Plan) -> Subscription:
    """Change plan now, or record the request when the new plan needs an operator's approval."""
    if plan.requires_approval:
        subscription.requested_plan = plan
        subscription.save(update_fields=["requested_plan", "updated_at"])
    else:
        subscription.plan, subscription.requested_plan = plan, None
        subscription.save(update_fields=["plan", "requested_plan", "updated_at"])
    return subscription


def approve_subscription(*, subscription: Subscription) -> Subscription:
    """Activate the subscription, moving it to the requested plan if there is one."""
    if subscription.requested_plan_id:
        subscription.plan_id = subscription.requested_plan_id
    subscription.requested_plan = None
    subscription.status = SubscriptionStatus.ACTIVE
    subscription.save(update_fields=["plan", "requested_plan", "status", "updated_at"])
    return subscription


def suspend_subscription(*, subscription: Subscription) -> Subscription:
    """Stop the subscription's data-plane access (effective everywhere within ~1 s)."""
    subscription.status = SubscriptionStatus.SUSPENDED
    subscription.save(update_fields=["status", "updated_at"])
    return subscription


def grant_quota_extension(*, subscription: Subscription, units: int) -> QuotaCounter:
    """Add `units` to the current period's quota only (a one-off operator grant)."""
    if units < 1:
        raise _invalid("units", "An extension must be at least one prediction.")
    start, _ = period_bounds(subscription.plan.quota_period, datetime.now(UTC))
    counter = QuotaCounter.objects.filter(subscription=subscription, period_start=start)
    if not counter.update(extension=F("extension") + units):
        try:
            with transaction.atomic():
                QuotaCounter.objects.create(
                    subscription=subscription, period_start=start, extension=units
                )
        except IntegrityError:  # created concurrently by a request: add to that row
            counter.update(extension=F("extension") + units)
    return counter.get()


def create_api_key(
    *, subscription: Subscription, name: str = "", expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """Create a key; returns it with its plaintext, which is never available again."""
    plaintext, prefix, hashed = crypto.generate_key()
    api_key = ApiKey.objects.create(
        subscription=subscription,
        name=name,
        prefix=prefix,
        hashed_secret=hashed,
        expires_at=expires_at,
    )
    return api_key, plaintext


def revoke_api_key(*, api_key: ApiKey) -> ApiKey:
    """Revoke now (idempotent). Other processes stop accepting it within a second."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
            revoked_at=api_key.revoked_at
        )
    keycache.forget(api_key.prefix)
    return api_key


@transaction.atomic
def rotate_api_key(*, api_key: ApiKey, grace: timedelta | None = None) -> tuple[ApiKey, str]:
    """Issue a successor; the old key keeps working for `grace` (default from settings).

    Both keys belong to the same subscription, so they share its rate and quota.
    """
    if grace is None:
        grace = timedelta(hours=settings.MLAPI_KEY_ROTATION_GRACE_HOURS)
    locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if not ApiKey.objects.usable().filter(pk=locked.pk).exists() or locked.rotated_to_id:
        raise _invalid("key", "Only a usable key that was not rotated yet can be rotated.")
    # The successor does not inherit an expiry: rotating is how a key is renewed.
    new_key, plaintext = create_api_key(subscription=locked.subscription, name=locked.name)
    ends = timezone.now() + grace
    locked.expires_at = min(ends, locked.expires_at) if locked.expires_at else ends
    locked.rotated_to = new_key
    locked.save(update_fields=["expires_at", "rotated_to"])
    keycache.forget(locked.prefix)
    return new_key, plaintext
