"""JWT endpoints: token, refresh (rotation + blacklist), logout, failed-login limit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from tests.factories import TEST_PASSWORD, UserFactory
from tests.support.problems import assert_problem

pytestmark = pytest.mark.django_db
TOKEN, REFRESH, LOGOUT, ME = (
    "/api/v1/auth/token",
    "/api/v1/auth/token/refresh",
    "/api/v1/auth/logout",
    "/api/v1/me",
)


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


def post(url, body, ip="10.1.0.1"):
    return APIClient().post(url, body, format="json", REMOTE_ADDR=ip)


def test_token_returns_an_access_and_refresh_pair_that_works_on_me(subscriber):
    response = post(TOKEN, {"username": subscriber.user.username, "password": TEST_PASSWORD})
    assert response.status_code == 200
    tokens = response.json()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert client.get(ME).json()["username"] == subscriber.user.username


def test_access_tokens_live_15_minutes(subscriber):
    response = post(TOKEN, {"username": subscriber.user.username, "password": TEST_PASSWORD})
    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken(response.json()["access"])
    assert token["exp"] - token["iat"] == 15 * 60


@pytest.mark.parametrize(
    "body",
    [
        {"username": "nobody", "password": "whatever-123"},
        {"username": "USER", "password": "wrong-password-1"},
    ],
)
def test_wrong_credentials_are_401_invalid_credentials(body):
    UserFactory(username="USER")
    assert_problem(post(TOKEN, body), 401, "invalid_credentials")


@pytest.mark.parametrize("body", [{}, {"username": "x"}, {"password": "y"}])
def test_incomplete_token_requests_are_400(body):
    assert_problem(post(TOKEN, body), 400, "validation_error")


def test_ten_failed_logins_per_ip_and_username_then_429():
    user = UserFactory()
    for _ in range(10):
        assert_problem(
            post(TOKEN, {"username": user.username, "password": "bad"}), 401, "invalid_credentials"
        )
    good = {"username": user.username, "password": TEST_PASSWORD}
    response = post(TOKEN, good)
    assert_problem(response, 429, "rate_limited")
    assert int(response["Retry-After"]) == 900
    assert post(TOKEN, good, ip="10.1.0.2").status_code == 200  # another address is not blocked


def test_successful_logins_do_not_count_towards_the_limit():
    user = UserFactory()
    good = {"username": user.username, "password": TEST_PASSWORD}
    for _ in range(12):
        assert post(TOKEN, good).status_code == 200


def test_refresh_rotates_and_blacklists_the_old_refresh_token(subscriber):
    refresh = str(RefreshToken.for_user(subscriber.user))
    response = post(REFRESH, {"refresh": refresh})
    assert response.status_code == 200
    assert {"access", "refresh"} <= set(response.json())
    assert response.json()["refresh"] != refresh
    assert_problem(post(REFRESH, {"refresh": refresh}), 401, "invalid_credentials")


def test_logout_blacklists_the_refresh_token(subscriber):
    refresh = str(RefreshToken.for_user(subscriber.user))
    assert post(LOGOUT, {"refresh": refresh}).status_code == 204
    assert_problem(post(REFRESH, {"refresh": refresh}), 401, "invalid_credentials")


@pytest.mark.parametrize("url", [REFRESH, LOGOUT])
@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.AAAA"])
def test_garbage_refresh_tokens_are_401_invalid_credentials(url, token):
    assert_problem(post(url, {"refresh": token}), 401, "invalid_credentials")


def test_an_access_token_is_not_a_refresh_token(subscriber):
    access = str(RefreshToken.for_user(subscriber.user).access_token)
    assert_problem(post(REFRESH, {"refresh": access}), 401, "invalid_credentials")


def test_an_expired_refresh_token_is_401_token_expired(subscriber):
    token = RefreshToken.for_user(subscriber.user)
    token.set_exp(from_time=timezone.now() - timedelta(days=2), lifetime=timedelta(days=1))
    assert_problem(post(REFRESH, {"refresh": str(token)}), 401, "token_expired")


@pytest.mark.parametrize("url", [REFRESH, LOGOUT])
def test_missing_refresh_is_400_validation_error(url):
    assert_problem(post(url, {}), 400, "validation_error")
