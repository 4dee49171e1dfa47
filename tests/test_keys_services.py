"""Subscription workflows: approval, plan changes, suspension, extensions."""

from __future__ import annotations

import pytest

from keys import services
from keys.models import QuotaCounter
from tests.factories import PlanFactory, SubscriptionFactory, UserFactory, seeded_plan

pytestmark = pytest.mark.django_db


def test_subscribe_unapproved_to_a_plan_requiring_approval_is_pending():
    subscription = services.subscribe(
        user=UserFactory(), plan=seeded_plan("enterprise"), approved=False
    )
    assert subscription.status == "pending"


def test_subscribe_unapproved_to_an_open_plan_is_active():
    subscription = services.subscribe(user=UserFactory(), plan=seeded_plan("pro"), approved=False)
    assert subscription.status == "active"


def test_a_plan_change_to_an_open_plan_is_immediate():
    subscription = SubscriptionFactory(plan=seeded_plan("free"))
    services.request_plan_change(subscription=subscription, plan=seeded_plan("pro"))
    subscription.refresh_from_db()
    assert subscription.plan.name == "pro" and subscription.requested_plan is None


def test_a_plan_change_needing_approval_waits_on_the_current_plan():
    subscription = SubscriptionFactory(plan=seeded_plan("free"))
    services.request_plan_change(subscription=subscription, plan=seeded_plan("enterprise"))
    subscription.refresh_from_db()
    assert subscription.plan.name == "free" and subscription.requested_plan.name == "enterprise"
    assert subscription.status == "active"
    services.approve_subscription(subscription=subscription)
    subscription.refresh_from_db()
    assert subscription.plan.name == "enterprise" and subscription.requested_plan is None


def test_suspension_and_approval_toggle_the_status():
    subscription = SubscriptionFactory()
    services.suspend_subscription(subscription=subscription)
    assert subscription.status == "suspended"
    services.approve_subscription(subscription=subscription)
    assert subscription.status == "active"


@pytest.mark.parametrize("units", [0, -1])
def test_an_extension_must_be_positive(units):
    subscription = SubscriptionFactory()
    with pytest.raises(services.InvalidRequest):
        services.grant_quota_extension(subscription=subscription, units=units)
    assert not QuotaCounter.objects.exists()


def test_extensions_accumulate_within_a_period():
    subscription = SubscriptionFactory(plan=PlanFactory(quota_period="week"))
    services.grant_quota_extension(subscription=subscription, units=5)
    counter = services.grant_quota_extension(subscription=subscription, units=7)
    assert counter.extension == 12 and QuotaCounter.objects.count() == 1


def test_revoking_twice_keeps_the_first_revocation_time():
    from tests.factories import ApiKeyFactory

    key = ApiKeyFactory()
    first = services.revoke_api_key(api_key=key).revoked_at
    key.refresh_from_db()
    assert services.revoke_api_key(api_key=key).revoked_at == first
