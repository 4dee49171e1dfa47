"""Organizations in the portal: switching, role limits, members, invitations, audit page."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from keys.models import ApiKey, Membership
from tests.factories import UserFactory, team_organization

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def team():
    owner, viewer, dev = UserFactory(), UserFactory(), UserFactory()
    org = team_organization(owner=owner, slug="acme", members={viewer: "viewer", dev: "developer"})
    return org, owner, viewer, dev


def test_switching_organization_makes_the_keys_page_act_on_it(team):
    org, owner, viewer, dev = team  # noqa: RUF059
    client = logged_in(owner)
    assert client.post("/portal/orgs/switch/", {"slug": "acme"}).status_code == 302
    assert client.post("/portal/keys/", {"name": "team key"}).status_code == 201
    assert ApiKey.objects.get(name="team key").subscription == org.subscription
    page = client.get("/portal/keys/").content.decode()
    assert "Acme" in page or "acme" in page


def test_a_viewer_sees_keys_but_cannot_create_them(team):
    org, owner, viewer, dev = team  # noqa: RUF059
    client = logged_in(viewer)
    client.post("/portal/orgs/switch/", {"slug": "acme"})
    page = client.get("/portal/keys/")
    assert page.status_code == 200 and "Create key" not in page.content.decode()
    assert client.post("/portal/keys/", {"name": "x"}).status_code == 403
    assert not ApiKey.objects.filter(name="x").exists()


def test_bad_restrictions_are_shown_on_the_key_form(team):
    org, owner, viewer, dev = team  # noqa: RUF059
    client = logged_in(dev)
    client.post("/portal/orgs/switch/", {"slug": "acme"})
    reply = client.post("/portal/keys/", {"name": "k", "allowed_ips": "10.0.0.0/99"})
    assert reply.status_code == 400
    assert "is not an IP address or CIDR" in reply.content.decode()
    reply = client.post("/portal/keys/", {"name": "k", "allowed_origins": "http://x.example"})
    assert reply.status_code == 400
    assert not ApiKey.objects.filter(name="k").exists()


def test_the_owner_invites_and_the_colleague_accepts_in_the_portal(
    team, django_capture_on_commit_callbacks
):
    org, owner, viewer, dev = team  # noqa: RUF059
    with django_capture_on_commit_callbacks(execute=True):
        reply = logged_in(owner).post(
            "/portal/orgs/acme/members/", {"email": "new@example.com", "role": "viewer"}
        )
    assert reply.status_code == 302
    token = re.search(r"token=([\w-]+)", mail.outbox[-1].body).group(1)
    newcomer = logged_in(UserFactory(email="new@example.com"))
    page = newcomer.get(f"/portal/invitations/accept?token={token}")
    assert page.status_code == 200 and "Accept invitation" in page.content.decode()
    assert newcomer.post("/portal/invitations/accept", {"token": token}).status_code == 302
    assert Membership.objects.filter(organization=org, user__email="new@example.com").exists()
    assert newcomer.get(f"/portal/invitations/accept?token={token}").status_code == 404


def test_an_unknown_invitation_link_is_404():
    assert logged_in(UserFactory()).get("/portal/invitations/accept?token=nope").status_code == 404


def test_members_page_role_change_and_last_owner_refusal(team):
    org, owner, viewer, dev = team  # noqa: RUF059
    client = logged_in(owner)
    client.post(f"/portal/orgs/acme/members/{viewer.pk}/role/", {"role": "admin"})
    assert Membership.objects.get(organization=org, user=viewer).role == "admin"
    reply = client.post(f"/portal/orgs/acme/members/{owner.pk}/remove/", follow=True)
    assert "always keeps an owner" in reply.content.decode()
    assert Membership.objects.filter(organization=org, user=owner).exists()


def test_the_audit_page_is_for_owners_and_admins(team):
    org, owner, viewer, dev = team  # noqa: RUF059
    logged_in(owner).post("/portal/orgs/switch/", {"slug": "acme"})
    page = logged_in(owner).get("/portal/orgs/acme/audit/")
    assert page.status_code == 200 and "org.created" in page.content.decode()
    assert logged_in(dev).get("/portal/orgs/acme/audit/").status_code == 403


def test_a_removed_members_session_gets_404_at_once(team):
    org, owner, viewer, dev = team  # noqa: RUF059
    session = logged_in(dev)
    assert session.get("/portal/orgs/acme/members/").status_code == 200
    logged_in(owner).post(f"/portal/orgs/acme/members/{dev.pk}/remove/")
    assert session.get("/portal/orgs/acme/members/").status_code == 404


def test_a_viewer_cannot_run_batch_jobs_in_the_portal(team):
    org, owner, viewer, dev = team  # noqa: RUF059
    client = logged_in(viewer)
    client.post("/portal/orgs/switch/", {"slug": "acme"})
    assert client.get("/portal/jobs/").status_code == 200
    assert client.post("/portal/jobs/", {"model": "iris"}).status_code == 403
