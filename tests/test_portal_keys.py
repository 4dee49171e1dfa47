"""Portal keys page: create (shown once), list, revoke, rotate; only the owner's keys exist."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from keys.models import ApiKey
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _usage_written_in_the_request(settings):
    """Record the API calls below in the request's own transaction: the buffered writer's
    thread would wait on the test transaction's SQLite write lock."""
    settings.MLAPI_USAGE_MODE = "sync"


@pytest.fixture
def owner(client, make_subscriber):
    """A logged-in subscriber."""
    subscription = make_subscriber()
    client.force_login(subscription.user)
    return subscription


def test_a_created_key_is_shown_once_and_works_on_the_api(client, owner):
    response = client.post("/portal/keys/", {"name": "laptop"})
    assert response.status_code == 201
    assert response["Cache-Control"].startswith("no-store")
    secret = response.context["secret"]
    assert secret.startswith("mlk_") and secret in response.content.decode()
    assert "will not be shown again" in response.content.decode()
    api_key = ApiKey.objects.get(subscription=owner)
    assert api_key.name == "laptop" and api_key.expires_at is None
    # Nothing shows it again: not the list, not the dashboard.
    for page in ("/portal/keys/", "/portal/dashboard/"):
        html = client.get(page).content.decode()
        assert secret not in html
        assert secret.split(".", 1)[1] not in html
    assert f"mlk_{api_key.prefix}" in client.get("/portal/keys/").content.decode()
    me = client.get("/api/v1/models", HTTP_X_API_KEY=secret)
    assert me.status_code == 200


def test_a_key_secret_is_never_logged(client, owner, caplog):
    caplog.set_level(logging.DEBUG)
    response = client.post("/portal/keys/", {"name": "ci"})
    secret = response.context["secret"]
    assert secret not in caplog.text
    assert secret.split(".", 1)[1] not in caplog.text


def test_an_expiry_date_ends_the_key_at_midnight_utc(client, owner):
    day = (timezone.now() + timedelta(days=10)).date()
    response = client.post("/portal/keys/", {"name": "", "expires_on": day.isoformat()})
    assert response.status_code == 201
    expires_at = ApiKey.objects.get(subscription=owner).expires_at
    assert expires_at.date() == day and (expires_at.hour, expires_at.minute) == (0, 0)


@pytest.mark.parametrize(
    ("data", "field", "code"),
    [
        ({"name": "x" * 101}, "name", "max_length"),
        ({"expires_on": "yesterday"}, "expires_on", "invalid"),
        ({"expires_on": "2001-01-01"}, "expires_on", "expiry_in_past"),
        ({"expires_on": "today"}, "expires_on", "expiry_in_past"),
        ({"expires_on": "2999-01-01"}, "expires_on", "expiry_too_far"),
    ],
)
def test_bad_key_input_is_refused_with_400_and_no_key(client, owner, data, field, code):
    if data.get("expires_on") == "today":
        data = {"expires_on": timezone.now().date().isoformat()}
    response = client.post("/portal/keys/", data)
    assert response.status_code == 400
    assert code in [e.code for e in response.context["form"].errors.as_data()[field]]
    assert not ApiKey.objects.exists()


def test_the_list_shows_prefix_state_and_dates_of_own_keys_only(client, owner, make_subscriber):
    mine = ApiKeyFactory(subscription=owner, name="mine")
    theirs = ApiKeyFactory(subscription=make_subscriber(), name="theirs")
    expired = ApiKeyFactory(
        subscription=owner, name="old", expires_at=timezone.now() - timedelta(days=1)
    )
    html = client.get("/portal/keys/").content.decode()
    assert f"mlk_{mine.prefix}" in html and f"mlk_{expired.prefix}" in html
    assert theirs.prefix not in html and "theirs" not in html
    assert "expired" in html and "never" in html


def test_revoke_asks_first_then_stops_the_key(client, owner):
    key = ApiKeyFactory(subscription=owner)
    confirm = client.get(f"/portal/keys/{key.pk}/revoke/")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.content.decode()
    assert client.get("/api/v1/models", HTTP_X_API_KEY=key.plaintext).status_code == 200
    response = client.post(f"/portal/keys/{key.pk}/revoke/")
    assert response.status_code == 302 and response["Location"] == "/portal/keys/"
    key.refresh_from_db()
    assert key.revoked_at is not None
    refused = client.get("/api/v1/models", HTTP_X_API_KEY=key.plaintext)
    assert refused.status_code == 401 and refused.json()["code"] == "key_revoked"
    assert "revoked" in client.get("/portal/keys/").content.decode()


def test_rotate_shows_the_successor_once_and_keeps_the_old_key_in_grace(client, owner):
    key = ApiKeyFactory(subscription=owner, name="prod")
    assert client.get(f"/portal/keys/{key.pk}/rotate/").status_code == 200
    response = client.post(f"/portal/keys/{key.pk}/rotate/")
    assert response.status_code == 201
    assert response["Cache-Control"].startswith("no-store")
    secret = response.context["secret"]
    key.refresh_from_db()
    assert key.rotated_to is not None and secret.startswith(f"mlk_{key.rotated_to.prefix}.")
    assert "keeps working until" in response.content.decode()
    for plaintext in (secret, key.plaintext):
        assert client.get("/api/v1/models", HTTP_X_API_KEY=plaintext).status_code == 200
    listing = client.get("/portal/keys/").content.decode()
    assert "rotated" in listing and secret not in listing


def test_a_rotated_or_revoked_key_cannot_be_rotated_again(client, owner):
    key = ApiKeyFactory(subscription=owner)
    client.post(f"/portal/keys/{key.pk}/rotate/")
    again = client.post(f"/portal/keys/{key.pk}/rotate/", follow=True)
    assert "cannot be rotated" in again.content.decode()
    assert ApiKey.objects.filter(subscription=owner).count() == 2
    revoked = ApiKeyFactory(subscription=owner, revoked_at=timezone.now())
    assert client.post(f"/portal/keys/{revoked.pk}/rotate/").status_code == 302
    assert ApiKey.objects.filter(subscription=owner).count() == 3


@pytest.mark.parametrize("action", ["revoke", "rotate"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_another_subscribers_key_is_a_404(client, owner, make_subscriber, action, method):
    theirs = ApiKeyFactory(subscription=make_subscriber())
    response = getattr(client, method)(f"/portal/keys/{theirs.pk}/{action}/")
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None and theirs.rotated_to is None


def test_an_unknown_key_is_a_404(client, owner):
    assert client.post("/portal/keys/999999/revoke/").status_code == 404


def test_key_pages_need_a_login(client):
    for url in ("/portal/keys/", "/portal/keys/1/revoke/", "/portal/keys/1/rotate/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/portal/login/")


def test_key_forms_are_csrf_protected(owner):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner.user)
    assert strict.post("/portal/keys/", {"name": "x"}).status_code == 403
    assert not ApiKey.objects.exists()
