"""The audit log (contract §11): every management action recorded, in its own transaction,
append-only, readable by owners and admins, newest first."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from audit.models import AppendOnly, AuditEntry
from audit.services import record_action
from keys import services
from keys.models import ApiKey
from tests.factories import PlanFactory, UserFactory, seeded_plan, team_organization

pytestmark = pytest.mark.django_db


def as_user(user, ip: str = "127.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=ip)
    client.default_format = "json"
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def team():
    owner, dev = UserFactory(username="olga"), UserFactory(username="dev")
    org = team_organization(owner=owner, slug="acme", members={dev: "developer"})
    return org, owner, dev


def actions(org) -> list[str]:
    return list(
        AuditEntry.objects.for_organization(org.pk).order_by("id").values_list("action", flat=True)
    )


def test_key_actions_through_the_api_are_recorded_with_actor_ip_and_changes(team):
    org, owner, dev = team  # noqa: RUF059
    client = as_user(dev, ip="203.0.113.9")
    key = client.post("/api/v1/orgs/acme/keys", {"name": "ci"}, format="json").json()
    client.patch(f"/api/v1/orgs/acme/keys/{key['id']}", {"scopes": ["predict"]}, format="json")
    rotated = client.post(f"/api/v1/orgs/acme/keys/{key['id']}/rotate").json()
    client.delete(f"/api/v1/orgs/acme/keys/{rotated['id']}")
    assert actions(org)[-4:] == ["key.created", "key.updated", "key.rotated", "key.revoked"]
    updated = AuditEntry.objects.get(action="key.updated")
    assert (updated.actor, updated.ip, updated.target_type, updated.target_id) == (
        "dev",
        "203.0.113.9",
        "keys.apikey",
        str(key["id"]),
    )
    assert updated.changes == {"scopes": [["predict", "jobs", "models:read"], ["predict"]]}


def test_member_actions_are_recorded(team, django_capture_on_commit_callbacks):
    from django.core import mail

    org, owner, dev = team  # noqa: RUF059
    client = as_user(owner)
    bob = UserFactory(email="bob@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/api/v1/orgs/acme/invitations", {"email": bob.email, "role": "viewer"})
    token = mail.outbox[-1].body.split("token=")[1].split()[0]
    as_user(bob).post("/api/v1/invitations/accept", {"token": token})
    client.patch(f"/api/v1/orgs/acme/members/{bob.pk}", {"role": "developer"})
    client.delete(f"/api/v1/orgs/acme/members/{bob.pk}")
    assert actions(org)[-4:] == [
        "invitation.created",
        "member.joined",
        "member.role_changed",
        "member.removed",
    ]
    joined = AuditEntry.objects.get(action="member.joined")
    assert joined.actor == bob.username


def test_operator_actions_from_admin_services_and_commands_are_recorded(team):
    org, owner, dev = team  # noqa: RUF059
    subscription = org.subscription
    enterprise = seeded_plan("enterprise")
    services.request_plan_change(subscription=subscription, plan=enterprise, actor=owner)
    services.approve_subscription(subscription=subscription, actor=UserFactory(username="op"))
    services.suspend_subscription(subscription=subscription)
    services.grant_quota_extension(subscription=subscription, units=5)
    assert actions(org)[-4:] == [
        "plan.change_requested",
        "subscription.approved",
        "subscription.suspended",
        "quota.extended",
    ]
    assert AuditEntry.objects.get(action="subscription.suspended").actor == "system"
    user = UserFactory(username="cli-user")
    call_command("subscribe", "cli-user", PlanFactory().name, stdout=io.StringIO())
    call_command("issue_key", "cli-user", stdout=io.StringIO())
    personal = user.subscription.organization
    assert actions(personal) == ["subscription.changed", "key.created"]
    assert {e.actor for e in AuditEntry.objects.for_organization(personal.pk)} == {"system"}


def test_model_versions_registered_and_defaults_changed_are_recorded(demo_models):
    from predictions.registry import set_default_version

    version = demo_models["iris"]
    before = AuditEntry.objects.count()
    set_default_version(model_version=version)  # already the default: nothing changed
    assert AuditEntry.objects.count() == before
    from predictions.models import ModelVersion

    other = ModelVersion.objects.create(
        model=version.model, version="9", artifact=version.artifact, sha256=version.sha256,
        input_schema=version.input_schema, output=version.output,
    )  # fmt: skip
    set_default_version(model_version=other, actor="ops")
    entry = AuditEntry.objects.get(action="model.default_changed")
    assert entry.changes["default"] == ["1", "9"]
    assert entry.actor == "ops"


def test_an_action_that_rolls_back_leaves_no_entry(team):
    org, owner, dev = team  # noqa: RUF059
    before = AuditEntry.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.create_api_key(subscription=org.subscription, name="doomed", actor=owner)
        raise RuntimeError("the caller's transaction fails after the action")
    assert AuditEntry.objects.count() == before
    assert not ApiKey.objects.filter(name="doomed").exists()


def test_a_refused_action_leaves_no_entry(team):
    org, owner, dev = team  # noqa: RUF059
    before = AuditEntry.objects.count()
    reply = as_user(owner).post("/api/v1/orgs/acme/keys", {"scopes": ["root"]}, format="json")
    assert reply.status_code == 400
    path = f"/api/v1/orgs/acme/members/{owner.pk}"
    assert as_user(owner).patch(path, {"role": "viewer"}).status_code == 409
    assert AuditEntry.objects.count() == before


def test_owners_read_the_log_newest_first_filtered_by_action_and_time(team):
    org, owner, dev = team  # noqa: RUF059
    client = as_user(owner)
    for name in ("a", "b"):
        client.post("/api/v1/orgs/acme/keys", {"name": name}, format="json")
    page = client.get("/api/v1/orgs/acme/audit?action=key.created").json()
    assert [e["changes"]["name"] for e in page["results"]] == ["b", "a"]
    assert set(page["results"][0]) == {
        "id", "time", "actor", "action", "target_type", "target_id", "ip", "changes"
    }  # fmt: skip
    future = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert client.get("/api/v1/orgs/acme/audit", {"since": future}).json()["count"] == 0
    assert client.get("/api/v1/orgs/acme/audit?action=key.").json()["count"] == 2
    bad = client.get("/api/v1/orgs/acme/audit?since=yesterday")
    assert bad.status_code == 400
    assert as_user(dev).get("/api/v1/orgs/acme/audit").status_code == 403


def test_another_organizations_entries_are_not_shown(team):
    org, owner, dev = team  # noqa: RUF059
    other = team_organization(slug="other")
    services.create_api_key(subscription=other.subscription, name="theirs")
    page = as_user(owner).get("/api/v1/orgs/acme/audit").json()
    assert all(e["changes"].get("name") != "theirs" for e in page["results"])


def test_entries_cannot_be_changed_or_deleted_through_the_models():
    entry = record_action(action="key.created", target_type="keys.apikey", target_id=1)
    entry.action = "key.revoked"
    with pytest.raises(AppendOnly):
        entry.save()
    with pytest.raises(AppendOnly):
        entry.delete()
    with pytest.raises(AppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).update(action="x")
    with pytest.raises(AppendOnly):
        AuditEntry.objects.all().delete()


def test_postgresql_refuses_updates_and_deletes_of_entries(postgres_url):
    assert connection.vendor == "postgresql"
    entry = record_action(action="key.created", target_type="keys.apikey", target_id=1)
    for sql in (
        "UPDATE audit_auditentry SET action = 'x' WHERE id = %s",
        "DELETE FROM audit_auditentry WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [entry.pk])
    assert AuditEntry.objects.get(pk=entry.pk).action == "key.created"


def test_the_admin_lists_entries_read_only(admin_client):
    entry = record_action(action="key.created", target_type="keys.apikey", target_id=1)
    assert admin_client.get("/admin/audit/auditentry/").status_code == 200
    assert admin_client.get("/admin/audit/auditentry/add/").status_code == 403
    assert admin_client.get(f"/admin/audit/auditentry/{entry.pk}/delete/").status_code == 403
    change = admin_client.post(f"/admin/audit/auditentry/{entry.pk}/change/", {"action": "x"})
    assert change.status_code == 403
    assert AuditEntry.objects.get(pk=entry.pk).action == "key.created"
