"""Invitations (contract §9): an email with a one-time link valid 7 days; every bad token 404."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from keys.models import Invitation, Membership
from tests.factories import UserFactory, team_organization

pytestmark = pytest.mark.django_db
TOKEN_RE = re.compile(r"accept\?token=([\w-]+)")


def as_user(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def org_owner():
    owner = UserFactory(username="olga")
    return team_organization(owner=owner, slug="acme"), owner


def invite(owner, email: str, role: str = "developer"):
    return as_user(owner).post(
        "/api/v1/orgs/acme/invitations", {"email": email, "role": role}, format="json"
    )


def link_token(message) -> str:
    return TOKEN_RE.search(message.body).group(1)


def test_an_invitation_emails_a_one_time_link_and_accepting_joins_with_the_role(
    org_owner, django_capture_on_commit_callbacks
):
    org, owner = org_owner
    bob = UserFactory(email="bob@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        reply = invite(owner, "bob@example.com", "developer")
    assert reply.status_code == 201, reply.content
    assert reply.json()["status"] == "pending"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["bob@example.com"]
    assert "/portal/invitations/accept?token=" in mail.outbox[0].body
    token = link_token(mail.outbox[0])
    assert not Invitation.objects.filter(token_hash__contains=token).exists()  # only a hash
    joined = as_user(bob).post("/api/v1/invitations/accept", {"token": token}, format="json")
    assert joined.status_code == 200
    assert joined.json() == {"slug": "acme", "name": org.name, "role": "developer"}
    assert Membership.objects.get(organization=org, user=bob).role == "developer"
    again = as_user(bob).post("/api/v1/invitations/accept", {"token": token}, format="json")
    assert again.status_code == 404  # used


def _token_for(owner, email, django_capture_on_commit_callbacks) -> str:
    with django_capture_on_commit_callbacks(execute=True):
        assert invite(owner, email).status_code == 201
    return link_token(mail.outbox[-1])


@pytest.mark.parametrize("token", ["", "nope", "x" * 43])
def test_unknown_tokens_are_404(org_owner, token):
    reply = as_user(UserFactory()).post(
        "/api/v1/invitations/accept", {"token": token}, format="json"
    )
    assert reply.status_code in (400, 404)
    if token:
        assert reply.status_code == 404
        assert reply.json()["code"] == "not_found"


def test_an_expired_invitation_is_404(org_owner, django_capture_on_commit_callbacks):
    org, owner = org_owner
    bob = UserFactory(email="bob@example.com")
    token = _token_for(owner, "bob@example.com", django_capture_on_commit_callbacks)
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    reply = as_user(bob).post("/api/v1/invitations/accept", {"token": token}, format="json")
    assert reply.status_code == 404
    assert not Membership.objects.filter(organization=org, user=bob).exists()


def test_an_invitation_for_another_email_is_refused(org_owner, django_capture_on_commit_callbacks):
    org, owner = org_owner
    token = _token_for(owner, "bob@example.com", django_capture_on_commit_callbacks)
    mallory = UserFactory(email="mallory@example.com")
    reply = as_user(mallory).post("/api/v1/invitations/accept", {"token": token}, format="json")
    assert reply.status_code == 403
    assert "another email" in reply.json()["detail"]
    assert not Membership.objects.filter(organization=org, user=mallory).exists()
    assert Invitation.objects.get().used_at is None  # still usable by Bob


def test_a_withdrawn_invitation_no_longer_works(org_owner, django_capture_on_commit_callbacks):
    org, owner = org_owner  # noqa: RUF059
    bob = UserFactory(email="bob@example.com")
    token = _token_for(owner, "bob@example.com", django_capture_on_commit_callbacks)
    invitation = Invitation.objects.get()
    path = f"/api/v1/orgs/acme/invitations/{invitation.pk}"
    assert as_user(owner).delete(path).status_code == 204
    reply = as_user(bob).post("/api/v1/invitations/accept", {"token": token}, format="json")
    assert reply.status_code == 404


def test_reinviting_replaces_the_pending_link(org_owner, django_capture_on_commit_callbacks):
    org, owner = org_owner  # noqa: RUF059
    first = _token_for(owner, "bob@example.com", django_capture_on_commit_callbacks)
    second = _token_for(owner, "bob@example.com", django_capture_on_commit_callbacks)
    bob = UserFactory(email="bob@example.com")
    accept = as_user(bob).post
    assert accept("/api/v1/invitations/accept", {"token": first}, format="json").status_code == 404
    assert accept("/api/v1/invitations/accept", {"token": second}, format="json").status_code == 200


def test_inviting_an_existing_member_is_a_conflict(org_owner):
    org, owner = org_owner  # noqa: RUF059
    reply = invite(owner, owner.email.upper())
    assert reply.status_code == 409
    assert reply.json()["code"] == "conflict"


def test_accepting_when_already_a_member_is_a_conflict(
    org_owner, django_capture_on_commit_callbacks
):
    org, owner = org_owner
    bob = UserFactory(email="bob@example.com")
    token = _token_for(owner, "bob@example.com", django_capture_on_commit_callbacks)
    Membership.objects.create(organization=org, user=bob, role="viewer")
    reply = as_user(bob).post("/api/v1/invitations/accept", {"token": token}, format="json")
    assert reply.status_code == 409


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "bob@example.com", "role": "emperor"}, "role"),
        ({"email": "not-an-email", "role": "viewer"}, "email"),
        ({"role": "viewer"}, "email"),
    ],
)
def test_bad_invitations_are_a_400_naming_the_field(org_owner, payload, field):
    org, owner = org_owner  # noqa: RUF059
    reply = as_user(owner).post("/api/v1/orgs/acme/invitations", payload, format="json")
    assert reply.status_code == 400
    assert [e["field"] for e in reply.json()["errors"]] == [field]
    assert not Invitation.objects.exists()
    assert not mail.outbox


def test_the_invitation_list_shows_pending_invitations_to_owners_and_admins(org_owner):
    org, owner = org_owner  # noqa: RUF059
    invite(owner, "bob@example.com", "viewer")
    listed = as_user(owner).get("/api/v1/orgs/acme/invitations").json()
    assert [(i["email"], i["role"], i["invited_by"]) for i in listed["results"]] == [
        ("bob@example.com", "viewer", "olga")
    ]
