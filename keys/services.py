"""Workflows of the API-management plane: signup, subscriptions, keys, quota extensions.

Keyword-only, verb-first functions; HTTP views, admin actions and management commands all call
these. Domain errors are `mlapi.exceptions.DomainError` subclasses. Each change is atomic with
its audit entry; `actor` (a user, None = `system`) and `ip` are only for that entry.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from audit.services import record_action
from keys import crypto, keycache
from keys import events as key_events
from keys.limits import period_bounds
from keys.models import (
    ApiKey,
    Membership,
    Organization,
    Plan,
    QuotaCounter,
    Role,
    Subscription,
    SubscriptionStatus,
)
from keys.restrictions import clean_restrictions
from mlapi.exceptions import InvalidRequest  # noqa: F401 (imported from here by callers)
from mlapi.exceptions import invalid as _invalid

DEFAULT_PLAN = "free"


def _audit(action: str, subscription: Subscription, target, *, actor, ip, changes=None) -> None:
    record_action(
        action=action,
        target=target,
        actor=actor,
        organization_id=subscription.organization_id,
        ip=ip,
        changes=changes,
    )


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
    taken = Organization.objects.filter(slug__iexact=username).exists()
    if taken or user_model.objects.filter(username__iexact=username).exists():
        raise _invalid("username", "This username is taken.")
    if user_model.objects.filter(email__iexact=email).exists():
        raise _invalid("email", "An account with this email already exists.")
    try:
        with transaction.atomic():
            user = user_model.objects.create_user(username=username, email=email, password=password)
    except IntegrityError as exc:  # lost a race with an identical signup
        raise _invalid("username", "This username or email is taken.") from exc
    # The personal organization: slug = username, the new user its owner (contract §9).
    org = Organization.objects.create(slug=username, name=username)
    Membership.objects.create(organization=org, user=user, role=Role.OWNER)
    return Subscription.objects.create(
        organization=org, user=user, plan=plan, status=_status_for(plan, False)
    )


@transaction.atomic
def subscribe(*, user, plan: Plan, approved: bool = True, actor=None, ip=None) -> Subscription:
    """Put `user`'s personal organization on `plan` (creating or changing its subscription)."""
    from keys.orgs import ensure_personal_organization

    org = ensure_personal_organization(user=user)
    subscription, created = Subscription.objects.update_or_create(
        user=user,
        defaults={
            "organization": org,
            "plan": plan,
            "status": _status_for(plan, approved),
            "requested_plan": None,
        },
    )
    changes = {"plan": plan.name, "status": subscription.status, "created": created}
    _audit("subscription.changed", subscription, subscription, actor=actor, ip=ip, changes=changes)
    key_events.emit_subscription_updated(subscription=subscription)
    return subscription


@transaction.atomic
def request_plan_change(
    *, subscription: Subscription, plan: Plan, actor=None, ip=None
) -> Subscription:
    """Change plan now, or record the request when the new plan needs an operator's approval."""
    old = subscription.plan.name
    if plan.requires_approval:
        subscription.requested_plan = plan
        subscription.save(update_fields=["requested_plan", "updated_at"])
        action = "plan.change_requested"
    else:
        subscription.plan, subscription.requested_plan = plan, None
        subscription.save(update_fields=["plan", "requested_plan", "updated_at"])
        action = "plan.changed"
        key_events.emit_subscription_updated(subscription=subscription)
    changes = {"plan": [old, plan.name]}
    _audit(action, subscription, subscription, actor=actor, ip=ip, changes=changes)
    return subscription


@transaction.atomic
def approve_subscription(*, subscription: Subscription, actor=None, ip=None) -> Subscription:
    """Activate the subscription, moving it to the requested plan if there is one."""
    changes = {"status": [subscription.status, SubscriptionStatus.ACTIVE]}
    if subscription.requested_plan_id:
        changes["plan"] = [subscription.plan.name, subscription.requested_plan.name]
        subscription.plan_id = subscription.requested_plan_id
    subscription.requested_plan = None
    subscription.status = SubscriptionStatus.ACTIVE
    subscription.save(update_fields=["plan", "requested_plan", "status", "updated_at"])
    _audit("subscription.approved", subscription, subscription, actor=actor, ip=ip, changes=changes)
    key_events.emit_subscription_updated(subscription=subscription)
    return subscription


@transaction.atomic
def reject_plan_change(*, subscription: Subscription, actor=None, ip=None) -> Subscription:
    """Decline a requested plan change: the subscription stays on its plan."""
    if subscription.requested_plan_id is None:
        return subscription
    changes = {"requested_plan": subscription.requested_plan.name}
    subscription.requested_plan = None
    subscription.save(update_fields=["requested_plan", "updated_at"])
    _audit("plan.change_rejected", subscription, subscription, actor=actor, ip=ip, changes=changes)
    return subscription


@transaction.atomic
def suspend_subscription(*, subscription: Subscription, actor=None, ip=None) -> Subscription:
    """Stop the subscription's data-plane access (effective everywhere within ~1 s)."""
    changes = {"status": [subscription.status, SubscriptionStatus.SUSPENDED]}
    subscription.status = SubscriptionStatus.SUSPENDED
    subscription.save(update_fields=["status", "updated_at"])
    _audit(
        "subscription.suspended", subscription, subscription, actor=actor, ip=ip, changes=changes
    )
    key_events.emit_subscription_updated(subscription=subscription)
    return subscription


@transaction.atomic
def grant_quota_extension(
    *, subscription: Subscription, units: int, actor=None, ip=None
) -> QuotaCounter:
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
    changes = {"units": units, "period_start": start}
    _audit("quota.extended", subscription, subscription, actor=actor, ip=ip, changes=changes)
    return counter.get()


RESTRICTION_FIELDS = ("allowed_models", "scopes", "allowed_ips", "allowed_origins")


def restrictions_of(api_key: ApiKey) -> dict:
    """The key's §10 restrictions under their API names."""
    return {
        "models": api_key.allowed_models,
        "scopes": api_key.scopes,
        "allowed_ips": api_key.allowed_ips,
        "allowed_origins": api_key.allowed_origins,
    }


@transaction.atomic
def create_api_key(
    *,
    subscription: Subscription,
    name: str = "",
    expires_at: datetime | None = None,
    created_by=None,
    restrictions: dict | None = None,
    actor=None,
    ip=None,
) -> tuple[ApiKey, str]:
    """Create a key; returns it with its plaintext, which is never available again.

    `restrictions`: any of `models`, `scopes`, `allowed_ips`, `allowed_origins` (§10),
    validated against the subscription's plan (400 naming the field).
    """
    cleaned = clean_restrictions(plan=subscription.plan, **(restrictions or {}))
    plaintext, prefix, hashed = crypto.generate_key()
    api_key = ApiKey.objects.create(
        subscription=subscription,
        name=name,
        prefix=prefix,
        hashed_secret=hashed,
        expires_at=expires_at,
        created_by=created_by,
        **cleaned,
    )
    changes = {"name": name, "prefix": prefix, "expires_at": expires_at}
    changes.update(restrictions_of(api_key))
    _audit("key.created", subscription, api_key, actor=actor or created_by, ip=ip, changes=changes)
    return api_key, plaintext


@transaction.atomic
def update_api_key(
    *, api_key: ApiKey, name: str | None = None, restrictions: dict | None = None, actor=None,
    ip=None,
) -> ApiKey:  # fmt: skip
    """Rename a key and/or change its restrictions; every process sees it within a second."""
    before = {"name": api_key.name, **restrictions_of(api_key)}
    cleaned = clean_restrictions(plan=api_key.subscription.plan, **(restrictions or {}))
    if name is not None:
        cleaned["name"] = name
    for field, value in cleaned.items():
        setattr(api_key, field, value)
    after = {"name": api_key.name, **restrictions_of(api_key)}
    changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if changes:
        api_key.save(update_fields=list(cleaned))
        _audit("key.updated", api_key.subscription, api_key, actor=actor, ip=ip, changes=changes)
    keycache.forget(api_key.prefix)
    transaction.on_commit(lambda: keycache.forget(api_key.prefix))
    return api_key


@transaction.atomic
def revoke_api_key(*, api_key: ApiKey, actor=None, ip=None) -> ApiKey:
    """Revoke now (idempotent). Other processes stop accepting it within a second."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        revoked = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
            revoked_at=api_key.revoked_at
        )
        if revoked:
            subscription = Subscription.objects.get(pk=api_key.subscription_id)
            changes = {"name": api_key.name, "prefix": api_key.prefix}
            _audit("key.revoked", subscription, api_key, actor=actor, ip=ip, changes=changes)
            key_events.emit_key_revoked(
                api_key=api_key, organization_id=subscription.organization_id
            )
    keycache.forget(api_key.prefix)
    return api_key


@transaction.atomic
def rotate_api_key(
    *, api_key: ApiKey, grace: timedelta | None = None, actor=None, ip=None
) -> tuple[ApiKey, str]:
    """Issue a successor; the old key keeps working for `grace` (default from settings).

    Both keys belong to the same subscription, so they share its rate and quota; the
    successor keeps the name, creator and restrictions.
    """
    if grace is None:
        grace = timedelta(hours=settings.MLAPI_KEY_ROTATION_GRACE_HOURS)
    locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if not ApiKey.objects.usable().filter(pk=locked.pk).exists() or locked.rotated_to_id:
        raise _invalid("key", "Only a usable key that was not rotated yet can be rotated.")
    # The successor does not inherit an expiry: rotating is how a key is renewed.
    plaintext, prefix, hashed = crypto.generate_key()
    new_key = ApiKey.objects.create(
        subscription=locked.subscription,
        name=locked.name,
        prefix=prefix,
        hashed_secret=hashed,
        created_by_id=locked.created_by_id,
        **{field: getattr(locked, field) for field in RESTRICTION_FIELDS},
    )
    ends = timezone.now() + grace
    locked.expires_at = min(ends, locked.expires_at) if locked.expires_at else ends
    locked.rotated_to = new_key
    locked.save(update_fields=["expires_at", "rotated_to"])
    changes = {"successor": new_key.pk, "successor_prefix": prefix, "grace_ends": locked.expires_at}
    _audit("key.rotated", locked.subscription, locked, actor=actor, ip=ip, changes=changes)
    keycache.forget(locked.prefix)
    return new_key, plaintext
