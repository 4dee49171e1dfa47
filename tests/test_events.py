"""The outbox and the events the product decides: in the cause's transaction, once when once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from events.models import Event
from events.services import emit_event
from keys import events as key_events
from keys.services import create_api_key, request_plan_change, revoke_api_key, suspend_subscription
from tests.factories import PlanFactory
from tests.support.webhook_helpers import add_member, org_with_owner
from webhooks import alerts, dispatch
from webhooks.models import AlertEmail, AlertOptOut

pytestmark = pytest.mark.django_db


def test_an_event_of_a_rolled_back_transaction_is_never_sent():
    subscription, _, _ = org_with_owner()
    with pytest.raises(RuntimeError), transaction.atomic():
        emit_event(type="ping", organization_id=subscription.organization_id, data={})
        raise RuntimeError("the cause failed")
    assert not Event.objects.filter(type="ping").exists()


def test_unknown_event_types_are_refused():
    with pytest.raises(ValueError, match="unknown event type"):
        emit_event(type="quota.exceeded", organization_id=1, data={})


def test_a_dedupe_key_makes_a_second_emit_a_no_op():
    assert emit_event(type="ping", organization_id=1, data={}, dedupe_key="k") is not None
    assert emit_event(type="ping", organization_id=1, data={}, dedupe_key="k") is None
    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    ("used", "units", "hits"),
    [(799, 1, ()), (800, 1, (80,)), (905, 200, (80, 90)), (1000, 300, (80, 90, 100)),
     (1000, 1, (100,)), (950, 1, ())],
)  # fmt: skip
def test_only_the_request_that_crosses_a_threshold_emits_it(used, units, hits):
    assert key_events.crossed(before=used - units, used=used, limit=1000) == hits


def test_reconciliation_emits_a_crossing_whose_process_died_and_nothing_twice():
    subscription, _, _ = org_with_owner(plan_name="recon", quota=100, quota_period="day")
    from keys.limits import consume_quota
    from keys.principal import Principal

    subscription = type(subscription).objects.select_related("plan").get(pk=subscription.pk)
    consume_quota(principal=Principal.for_subscription(subscription), units=91)  # no event
    assert key_events.reconcile_quota_thresholds() == 2
    assert key_events.reconcile_quota_thresholds() == 0
    thresholds = sorted(e.data["threshold"] for e in Event.objects.filter(type="quota.threshold"))
    assert thresholds == [80, 90]


def test_revoking_a_key_emits_key_revoked_once():
    subscription, _, _ = org_with_owner()
    api_key, _ = create_api_key(subscription=subscription, name="ci")
    revoke_api_key(api_key=api_key)
    revoke_api_key(api_key=api_key)
    [event] = Event.objects.filter(type="key.revoked")
    assert event.data["prefix"] == api_key.prefix
    assert event.organization_id == subscription.organization_id


def test_plan_and_status_changes_emit_subscription_updated():
    subscription, _, _ = org_with_owner()
    Event.objects.all().delete()
    pro = PlanFactory(name="pro-ev")
    request_plan_change(subscription=subscription, plan=pro)
    suspend_subscription(subscription=subscription)
    data = [e.data for e in Event.objects.filter(type="subscription.updated")]
    assert data == [
        {"plan": "pro-ev", "status": "active"},
        {"plan": "pro-ev", "status": "suspended"},
    ]


def test_key_expiring_is_emitted_once_per_key_seven_days_ahead():
    subscription, _, _ = org_with_owner()
    soon, _ = create_api_key(
        subscription=subscription, expires_at=timezone.now() + timedelta(days=6)
    )
    create_api_key(subscription=subscription, expires_at=timezone.now() + timedelta(days=9))
    assert key_events.emit_expiring_keys() == 1
    assert key_events.emit_expiring_keys() == 0
    [event] = Event.objects.filter(type="key.expiring")
    assert event.data["id"] == soon.pk


def test_owners_get_alert_emails_unless_they_opted_out():
    subscription, owner, _ = org_with_owner()
    org = subscription.organization
    second = add_member(org, "owner")
    add_member(org, "admin")  # not an owner: no email
    from keys.models import Membership

    AlertOptOut.objects.create(
        membership=Membership.objects.get(user=second, organization=org), event_type="job.failed"
    )
    emit_event(type="job.failed", organization_id=org.pk, data={"id": "j1", "error": "boom"})
    emit_event(type="key.revoked", organization_id=org.pk, data={})  # no email for this one
    dispatch.dispatch_events()
    assert AlertEmail.objects.count() == 1
    assert alerts.send_pending() == 1
    [message] = mail.outbox
    assert message.to == [owner.email] and "failed" in message.subject
    assert alerts.send_pending() == 0
