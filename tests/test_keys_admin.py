"""Operator tools: seeded plans, admin actions, `subscribe` and `issue_key` commands."""

from __future__ import annotations

import importlib
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from keys import crypto
from keys.models import ApiKey, Plan, QuotaCounter, Subscription
from tests.factories import ApiKeyFactory, SubscriptionFactory, UserFactory, seeded_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-Root-1234")
    client.force_login(admin)
    return client


def test_migration_seeds_the_contract_plans_with_exact_values():
    migration = importlib.import_module("keys.migrations.0003_seed_plans")
    from django.apps import apps

    migration.seed(apps, None)  # idempotent; also restores rows a flush removed
    expected = {
        "free": (5, 10, 1000, "day", 100, 10_000, False),
        "pro": (50, 100, 100_000, "month", 1000, 1_000_000, False),
        "enterprise": (10_000, 20_000, 100_000_000, "month", 10_000, 10_000_000, True),
    }
    for name, values in expected.items():
        plan = Plan.objects.get(name=name)
        got = (
            plan.rate,
            plan.burst,
            plan.quota,
            plan.quota_period,
            plan.max_instances,
            plan.max_job_rows,
            plan.requires_approval,
        )
        assert got == values and plan.is_public and plan.all_models


def action(admin_client, model: str, name: str, pks, **extra):
    return admin_client.post(
        f"/admin/keys/{model}/",
        {"action": name, "_selected_action": [str(pk) for pk in pks], **extra},
        follow=True,
    )


def test_admin_approves_a_pending_subscription_onto_its_requested_plan(admin_client):
    subscription = SubscriptionFactory(status="pending", requested_plan=seeded_plan("enterprise"))
    assert action(admin_client, "subscription", "approve", [subscription.pk]).status_code == 200
    subscription.refresh_from_db()
    assert subscription.status == "active" and subscription.plan.name == "enterprise"
    assert subscription.requested_plan is None


def test_admin_suspends_a_subscription(admin_client):
    subscription = SubscriptionFactory()
    action(admin_client, "subscription", "suspend", [subscription.pk])
    subscription.refresh_from_db()
    assert subscription.status == "suspended"


def test_admin_grants_a_quota_extension_through_a_confirmation_form(admin_client):
    subscription = SubscriptionFactory()
    form = action(admin_client, "subscription", "grant_extension", [subscription.pk])
    assert b'name="units"' in form.content
    action(
        admin_client,
        "subscription",
        "grant_extension",
        [subscription.pk],
        units="250",
        apply="Grant",
    )
    assert QuotaCounter.objects.get(subscription=subscription).extension == 250


@pytest.mark.parametrize("units", ["0", "-5", "lots"])
def test_admin_refuses_a_non_positive_extension(admin_client, units):
    subscription = SubscriptionFactory()
    action(
        admin_client,
        "subscription",
        "grant_extension",
        [subscription.pk],
        units=units,
        apply="Grant",
    )
    assert not QuotaCounter.objects.filter(subscription=subscription).exists()


def test_admin_revokes_keys_and_never_shows_the_hash(admin_client):
    key = ApiKeyFactory()
    page = admin_client.get(f"/admin/keys/apikey/{key.pk}/change/")
    assert page.status_code == 200
    assert key.hashed_secret.encode() not in page.content
    assert key.plaintext.encode() not in page.content
    action(admin_client, "apikey", "revoke", [key.pk])
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_subscribe_command_creates_then_changes_an_approved_subscription():
    user = UserFactory(username="bob")
    seeded_plan("enterprise")
    seeded_plan("free")
    call_command("subscribe", "bob", "enterprise", stdout=StringIO())
    subscription = Subscription.objects.get(user=user)
    assert subscription.plan.name == "enterprise" and subscription.status == "active"
    call_command("subscribe", "bob", "free", stdout=StringIO())
    subscription.refresh_from_db()
    assert subscription.plan.name == "free"


@pytest.mark.parametrize(("username", "plan"), [("nobody", "free"), ("bob", "platinum")])
def test_subscribe_command_rejects_unknown_users_and_plans(username, plan):
    UserFactory(username="bob")
    seeded_plan("free")
    with pytest.raises(CommandError):
        call_command("subscribe", username, plan, stdout=StringIO())


def test_issue_key_prints_a_working_key_once():
    subscription = SubscriptionFactory(user=UserFactory(username="carol"))
    out = StringIO()
    call_command("issue_key", "carol", "--name", "ci", stdout=out)
    plaintext = out.getvalue().strip()
    prefix, secret = crypto.parse_key(plaintext)
    key = ApiKey.objects.get(prefix=prefix)
    assert key.subscription == subscription and key.name == "ci"
    assert crypto.verify_secret(secret, key.hashed_secret)


def test_issue_key_needs_a_subscription():
    UserFactory(username="dave")
    with pytest.raises(CommandError):
        call_command("issue_key", "dave", stdout=StringIO())
