"""Data-plane authentication: API keys in X-API-Key only, JWTs, and their 401 codes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from keys import services
from tests.factories import ApiKeyFactory
from tests.support.problems import assert_problem

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_models")]
INFO = "/api/v1/models"  # a data-plane read: authenticated like every data-plane route


def subscription_of(response) -> int:
    """The subscription the data plane charged this request to."""
    return response.wsgi_request.mlapi_meter.principal.subscription_id


def get_with_key(key: str | None, **extra):
    client = APIClient()
    if key is not None:
        extra["HTTP_X_API_KEY"] = key
    return client.get(INFO, **extra)


def test_a_valid_key_in_x_api_key_authenticates(subscriber_key):
    api_key, plaintext = subscriber_key
    response = get_with_key(plaintext)
    assert response.status_code == 200
    assert subscription_of(response) == api_key.subscription_id


def test_no_credentials_is_401_not_authenticated_with_a_challenge():
    body = assert_problem(get_with_key(None), 401, "not_authenticated")
    assert "stack" not in str(body).lower()


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "mlk_",
        "nonsense",
        "mlk_0123456789ab",
        "mlk_0123456789ab." + "a" * 42,
        "mlk_0123456789ab." + "a" * 43 + "x",
        "mlk_ZZZZZZZZZZZZ." + "a" * 43,
        "x" * 5000,
    ],
)
def test_malformed_keys_are_401_invalid_credentials(presented):
    assert_problem(get_with_key(presented), 401, "invalid_credentials")


def test_a_truncated_real_key_is_401_invalid_credentials(subscriber_key):
    assert_problem(get_with_key(subscriber_key[1][:-1]), 401, "invalid_credentials")


def test_an_unknown_well_formed_key_is_401_invalid_credentials():
    assert_problem(get_with_key("mlk_0123456789ab." + "a" * 43), 401, "invalid_credentials")


def test_a_known_prefix_with_a_wrong_secret_is_401_invalid_credentials(subscriber_key):
    prefix = subscriber_key[1].split(".")[0]
    assert_problem(get_with_key(f"{prefix}." + "b" * 43), 401, "invalid_credentials")


def test_a_revoked_key_is_401_key_revoked(subscriber_key):
    api_key, plaintext = subscriber_key
    services.revoke_api_key(api_key=api_key)
    assert_problem(get_with_key(plaintext), 401, "key_revoked")


def test_an_expired_key_is_401_key_expired(subscriber):
    key = ApiKeyFactory(subscription=subscriber, expires_at=timezone.now() - timedelta(seconds=1))
    assert_problem(get_with_key(key.plaintext), 401, "key_expired")


def test_rotated_key_keeps_working_during_grace_period(subscriber_key):
    old, old_plaintext = subscriber_key
    new, new_plaintext = services.rotate_api_key(api_key=old, grace=timedelta(hours=1))
    assert get_with_key(old_plaintext).status_code == 200
    assert get_with_key(new_plaintext).status_code == 200
    old.refresh_from_db()
    assert old.rotated_to_id == new.pk and old.expires_at > timezone.now()


def test_rotated_out_key_is_401_key_expired_after_the_grace_period(subscriber_key):
    old, old_plaintext = subscriber_key
    _, new_plaintext = services.rotate_api_key(api_key=old, grace=timedelta(0))
    assert_problem(get_with_key(old_plaintext), 401, "key_expired")
    assert get_with_key(new_plaintext).status_code == 200


def test_a_key_in_authorization_bearer_is_refused_with_a_pointer_to_x_api_key(subscriber_key):
    body = assert_problem(
        get_with_key(None, HTTP_AUTHORIZATION=f"Bearer {subscriber_key[1]}"),
        401,
        "invalid_credentials",
    )
    assert "X-API-Key" in body["detail"]


def test_a_key_in_the_query_string_is_refused(subscriber_key):
    response = APIClient().get(INFO, {"api_key": subscriber_key[1]})
    body = assert_problem(response, 401, "invalid_credentials")
    assert "X-API-Key" in body["detail"]


def test_a_valid_jwt_authenticates_on_the_data_plane(jwt_client, subscriber):
    response = jwt_client.get(INFO)
    assert response.status_code == 200
    assert subscription_of(response) == subscriber.pk


@pytest.mark.parametrize(
    "header",
    [
        "Bearer garbage",
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.c2lnbmF0dXJl",
        "Bearer a b",
        "Bearer ",
    ],
)
def test_garbage_jwts_are_401_invalid_credentials(header):
    response = APIClient().get(INFO, HTTP_AUTHORIZATION=header)
    assert_problem(response, 401, "invalid_credentials")


def test_an_expired_jwt_is_401_token_expired(subscriber):
    token = AccessToken.for_user(subscriber.user)
    token.set_exp(from_time=timezone.now() - timedelta(hours=1), lifetime=timedelta(minutes=15))
    response = APIClient().get(INFO, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert_problem(response, 401, "token_expired")


def test_a_refresh_token_used_as_access_token_is_401_invalid_credentials(subscriber):
    refresh = RefreshToken.for_user(subscriber.user)
    response = APIClient().get(INFO, HTTP_AUTHORIZATION=f"Bearer {refresh}")
    assert_problem(response, 401, "invalid_credentials")


def test_a_jwt_of_a_deleted_user_is_401_invalid_credentials(subscriber):
    access = RefreshToken.for_user(subscriber.user).access_token
    subscriber.user.delete()
    response = APIClient().get(INFO, HTTP_AUTHORIZATION=f"Bearer {access}")
    assert_problem(response, 401, "invalid_credentials")


@pytest.mark.parametrize("status", ["pending", "suspended"])
def test_inactive_subscriptions_are_403_subscription_inactive(make_subscriber, status):
    key = ApiKeyFactory(subscription=make_subscriber(status=status))
    assert_problem(get_with_key(key.plaintext), 403, "subscription_inactive")


def test_revocation_is_seen_within_a_second_by_a_process_that_cached_the_key(subscriber_key):
    from keys import keycache

    api_key, plaintext = subscriber_key
    assert get_with_key(plaintext).status_code == 200  # now cached in this process
    # Another process revokes: the row changes, this process's cache is not told.
    type(api_key).objects.filter(pk=api_key.pk).update(revoked_at=timezone.now())
    hit, entry = keycache.get(api_key.prefix)
    assert hit and entry.revoked_at is None
    expiry = keycache._entries[api_key.prefix][0]
    assert expiry - keycache.time.monotonic() <= keycache.TTL
    keycache._entries[api_key.prefix] = (0.0, entry)  # what one second of waiting does
    assert_problem(get_with_key(plaintext), 401, "key_revoked")


def test_the_warm_path_makes_no_query_for_the_key(subscriber_key):
    plaintext = subscriber_key[1]
    assert get_with_key(plaintext).status_code == 200
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        assert get_with_key(plaintext).status_code == 200
    sql = " ".join(q["sql"] for q in ctx.captured_queries).lower()
    assert "keys_apikey" not in sql and "portal_user" not in sql


def test_last_used_at_is_written_at_most_once_a_minute(subscriber_key):
    api_key, plaintext = subscriber_key
    for _ in range(3):
        assert get_with_key(plaintext).status_code == 200
    api_key.refresh_from_db()
    first = api_key.last_used_at
    assert first is not None
    assert get_with_key(plaintext).status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at == first


@pytest.mark.parametrize("credential", ["key", "jwt"])
def test_data_plane_requests_are_marked_for_usage_recording(subscriber_key, credential):
    api_key, plaintext = subscriber_key
    client = APIClient()
    if credential == "key":
        client.credentials(HTTP_X_API_KEY=plaintext)
    else:
        user = api_key.subscription.user
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    response = client.get(INFO)
    principal = response.wsgi_request.mlapi_meter.principal
    assert principal.subscription_id == api_key.subscription_id
    assert principal.key_id == (api_key.pk if credential == "key" else None)
