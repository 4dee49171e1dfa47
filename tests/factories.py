"""factory-boy factories. Each part appends its own under a heading.

# --- subscribers and keys (keys) ---
# --- usage events (usage) ---
"""

from __future__ import annotations

import importlib
from datetime import UTC, date, datetime

import factory
from django.contrib.auth import get_user_model
from factory.django import DjangoModelFactory

from keys import crypto
from keys.models import ApiKey, Plan, Subscription
from usage.recording import UsageEvent

TEST_PASSWORD = "correct-Horse-battery-9"
SEEDED_PLANS = {
    p["name"]: p for p in importlib.import_module("keys.migrations.0003_seed_plans").PLANS
}


class UserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"subscriber{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password(TEST_PASSWORD)


class PlanFactory(DjangoModelFactory):
    """A generous plan by default (tests that are not about limits should never hit them)."""

    class Meta:
        model = Plan
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"plan-{n}")
    rate = 1000.0
    burst = 1000
    quota = 1_000_000
    quota_period = "month"
    max_instances = 10_000
    max_job_rows = 100_000


def seeded_plan(name: str) -> Plan:
    """One of the migration's plans (free, pro, enterprise), recreated if a flush removed it."""
    values = SEEDED_PLANS[name]
    return PlanFactory(**values)


class SubscriptionFactory(DjangoModelFactory):
    class Meta:
        model = Subscription

    user = factory.SubFactory(UserFactory)
    plan = factory.SubFactory(PlanFactory)
    status = "active"


class ApiKeyFactory(DjangoModelFactory):
    """An API key; the instance carries its plaintext in `.plaintext` (never stored)."""

    class Meta:
        model = ApiKey

    subscription = factory.SubFactory(SubscriptionFactory)
    name = factory.Sequence(lambda n: f"key {n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        plaintext, prefix, hashed = crypto.generate_key()
        obj = model_class.objects.create(*args, prefix=prefix, hashed_secret=hashed, **kwargs)
        obj.plaintext = plaintext
        return obj


def team_organization(*, owner=None, plan=None, slug=None, members: dict | None = None):
    """A team organization (through `create_organization`) on `plan` (generous by default),
    active, with `members` {user: role} besides its `owner`. Returns the Organization."""
    from keys.models import Membership
    from keys.orgs import create_organization

    owner = owner or UserFactory()
    seeded_plan("free")  # the default plan of a new organization (a flush may have removed it)
    n = Membership.objects.count()
    org = create_organization(name=f"Team {n}", slug=slug or f"team-{n}", owner=owner)
    plan = plan or PlanFactory()
    org.subscription.plan = plan
    org.subscription.status = "active"
    org.subscription.save(update_fields=["plan", "status"])
    for user, role in (members or {}).items():
        Membership.objects.create(organization=org, user=user, role=role)
    return org


# --- usage events (usage) ---


def usage_event(
    subscription,
    *,
    day: date,
    status=200,
    n=1,
    key=None,
    model="iris",
    ms=4.0,
    error_code=None,
) -> UsageEvent:
    """One v1 predict request's UsageEvent at noon UTC of `day` (for `write_events`).

    `error_code` defaults to "" below 400 and "validation_error" from 400 on.
    """
    if error_code is None:
        error_code = "" if status < 400 else "validation_error"
    return UsageEvent(
        time=datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
        subscription_id=subscription.pk,
        key_id=key.pk if key else None,
        plan_name=subscription.plan.name,
        model_name=model,
        model_version="1",
        protocol="v1",
        method="POST",
        path=f"/api/v1/models/{model}/predict",
        status=status,
        error_code=error_code,
        predictions=n if status < 300 else 0,
        latency_ms=ms,
        request_bytes=10,
        response_bytes=20,
    )
