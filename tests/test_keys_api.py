"""/api/v1/keys: create (shown once), list, get, revoke, rotate; isolation; API keys refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from keys.models import ApiKey
from tests.factories import ApiKeyFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db
KEYS = "/api/v1/keys"


def detail(pk) -> str:
    return f"{KEYS}/{pk}"


def test_creation_returns_the_full_key_once_and_stores_only_a_hash(jwt_client):
    response = jwt_client.post(KEYS, {"name": "laptop"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["key"].startswith(f"mlk_{body['prefix']}.") and body["name"] == "laptop"
    row = ApiKey.objects.get(pk=body["id"])
    secret = body["key"].split(".", 1)[1]
    assert secret not in row.hashed_secret and body["key"] not in str(row.__dict__)
    for later in (jwt_client.get(detail(body["id"])), jwt_client.get(KEYS)):
        assert body["key"] not in later.content.decode()
        assert row.hashed_secret not in later.content.decode()


def test_a_created_key_authenticates_on_the_data_plane(jwt_client, subscriber):
    key = jwt_client.post(KEYS, {}, format="json").json()["key"]
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    assert client.get("/api/v1/keys").status_code == 403  # but never on the management plane


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x" * 101},
        {"expires_at": "yesterday"},
        {"expires_at": "2001-01-01T00:00:00Z"},
        {"name": ["list"]},
    ],
)
def test_bad_key_creation_input_is_400_validation_error(jwt_client, body):
    response = jwt_client.post(KEYS, body, format="json")
    assert response.status_code == 400 and response.json()["code"] == "validation_error"


def test_list_is_paginated_and_shows_only_own_keys_with_status(jwt_client, subscriber):
    own = ApiKeyFactory.create_batch(3, subscription=subscriber)
    ApiKeyFactory()  # someone else's
    body = jwt_client.get(KEYS, {"page_size": 2}).json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    everything = jwt_client.get(KEYS).json()["results"]
    assert {k["id"] for k in everything} == {k.pk for k in own}
    assert {k["status"] for k in everything} == {"active"}
    assert all("key" not in k and "hashed_secret" not in k for k in everything)


def test_delete_revokes_and_the_key_stops_working(jwt_client, subscriber):
    key = ApiKeyFactory(subscription=subscriber)
    assert jwt_client.delete(detail(key.pk)).status_code == 204
    assert jwt_client.get(detail(key.pk)).json()["status"] == "revoked"
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key.plaintext)
    assert client.get("/api/v1/me").json()["code"] == "key_revoked"


def test_rotation_returns_a_successor_once_and_the_old_key_enters_its_grace(
    jwt_client, subscriber, settings
):
    settings.MLAPI_KEY_ROTATION_GRACE_HOURS = 24
    old = ApiKeyFactory(subscription=subscriber, name="ci")
    response = jwt_client.post(f"{detail(old.pk)}/rotate")
    assert response.status_code == 201
    new = response.json()
    assert new["key"].startswith("mlk_") and new["name"] == "ci" and new["id"] != old.pk
    old_state = jwt_client.get(detail(old.pk)).json()
    assert old_state["status"] == "rotating" and old_state["rotated_to"] == new["id"]
    old.refresh_from_db()
    grace = old.expires_at - timezone.now()
    assert timedelta(hours=23, minutes=59) < grace <= timedelta(hours=24)


@pytest.mark.parametrize("state", ["revoked", "expired", "rotated"])
def test_only_usable_unrotated_keys_can_be_rotated(jwt_client, subscriber, state):
    key = ApiKeyFactory(subscription=subscriber)
    if state == "revoked":
        key.revoked_at = timezone.now()
    elif state == "expired":
        key.expires_at = timezone.now() - timedelta(seconds=1)
    else:
        key.rotated_to = ApiKeyFactory(subscription=subscriber)
    key.save()
    response = jwt_client.post(f"{detail(key.pk)}/rotate")
    assert response.status_code == 400 and response.json()["code"] == "validation_error"


@pytest.mark.parametrize("method", ["get", "delete", "rotate"])
def test_another_subscribers_key_is_404_like_a_missing_one(jwt_client, method):
    other = ApiKeyFactory(subscription=SubscriptionFactory())
    for pk in (other.pk, 999_999):
        if method == "rotate":
            response = jwt_client.post(f"{detail(pk)}/rotate")
        else:
            response = getattr(jwt_client, method)(detail(pk))
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    other.refresh_from_db()
    assert other.revoked_at is None and other.rotated_to is None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", KEYS),
        ("post", KEYS),
        ("get", "/api/v1/keys/1"),
        ("delete", "/api/v1/keys/1"),
        ("post", "/api/v1/keys/1/rotate"),
    ],
)
def test_an_api_key_on_the_management_plane_is_403(api_client, method, path):
    response = getattr(api_client, method)(path)
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"


def test_keys_without_credentials_is_401():
    response = APIClient().get(KEYS)
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"


def test_a_user_without_subscription_has_no_keys_endpoint(db):
    from tests.factories import UserFactory

    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(UserFactory()).access_token}"
    )
    assert client.get(KEYS).status_code == 404
