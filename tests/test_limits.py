"""Rate (token bucket) and quota limits through a metered view: atomicity, refusals, headers."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from keys import limits, services
from keys.models import QuotaCounter
from keys.principal import Principal
from mlapi.exceptions import QUOTA_PROBLEM_TYPE
from tests.factories import ApiKeyFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.keys_metered_urls")]
METERED = "/api/v1/test/metered"
INFO = "/api/v1/test/info"
SLOW = {"rate": 0.001}  # no refill worth mentioning during a test


def client_for(subscription) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=ApiKeyFactory(subscription=subscription).plaintext)
    return client


def used(subscription) -> int:
    return sum(
        QuotaCounter.objects.filter(subscription=subscription).values_list("used", flat=True)
    )


def seconds_to_midnight() -> float:
    now = datetime.now(UTC)
    return limits.period_bounds("day", now)[1].timestamp() - now.timestamp()


def test_success_carries_the_exact_ratelimit_headers_of_the_contract(make_subscriber):
    subscription = make_subscriber("free")
    before = seconds_to_midnight()
    response = client_for(subscription).post(METERED, {"units": 3}, format="json")
    after = seconds_to_midnight()
    assert response.status_code == 200
    assert response["RateLimit-Policy"] == (
        '"burst";q=10;w=1, "quota";q=1000;w=86400;qu="predictions"'
    )
    reset = int(response["RateLimit-Reset"])
    assert math.floor(after) <= reset <= math.ceil(before)
    assert response["RateLimit"] == f'"burst";r=9;t=1, "quota";r=997;t={reset}'
    assert response["RateLimit-Limit"] == "1000"
    assert response["RateLimit-Remaining"] == "997"
    assert "Retry-After" not in response


@pytest.mark.parametrize(("period", "window"), [("day", 86400), ("week", 604800), ("month", None)])
def test_policy_window_is_the_calendar_period_in_seconds(make_subscriber, period, window):
    subscription = make_subscriber(quota_period=period, quota=50)
    response = client_for(subscription).post(METERED, {"units": 1}, format="json")
    start, end = limits.period_bounds(period, datetime.now(UTC))
    expected = window or int((end - start).total_seconds())
    assert f'"quota";q=50;w={expected};qu="predictions"' in response["RateLimit-Policy"]


def test_errors_before_admit_use_no_quota_but_take_a_token_and_carry_headers(make_subscriber):
    subscription = make_subscriber(burst=5, quota=100, **SLOW)
    response = client_for(subscription).post(METERED, {"units": "many"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "validation_error"
    assert response["RateLimit-Remaining"] == "100"
    assert response["RateLimit"].startswith('"burst";r=4;')
    assert used(subscription) == 0


def test_non_quota_views_take_one_token_and_no_quota(make_subscriber):
    subscription = make_subscriber(burst=5, quota=100, **SLOW)
    response = client_for(subscription).get(INFO)
    assert response.status_code == 200
    assert response["RateLimit"].startswith('"burst";r=4;')
    assert response["RateLimit-Remaining"] == "100"


def test_an_empty_bucket_is_429_rate_limited_and_uses_no_quota(make_subscriber):
    subscription = make_subscriber(burst=3, quota=100, **SLOW)
    client = client_for(subscription)
    for _ in range(3):
        assert client.post(METERED, {"units": 2}, format="json").status_code == 200
    response = client.post(METERED, {"units": 2}, format="json")
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "rate_limited" and body["violated-policies"] == ["burst"]
    assert int(response["Retry-After"]) >= 1
    assert response["RateLimit"].startswith('"burst";r=0;')
    assert response["RateLimit-Remaining"] == "94"
    assert used(subscription) == 6


def test_a_request_over_the_remaining_quota_is_refused_whole(make_subscriber):
    subscription = make_subscriber(quota=10)
    client = client_for(subscription)
    assert client.post(METERED, {"units": 6}, format="json").status_code == 200
    response = client.post(METERED, {"units": 5}, format="json")
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "quota_exceeded"
    assert body["type"] == QUOTA_PROBLEM_TYPE
    assert body["violated-policies"] == ["quota"]
    assert int(response["Retry-After"]) == int(response["RateLimit-Reset"]) >= 1
    assert response["RateLimit-Remaining"] == "4"
    assert used(subscription) == 6
    assert client.post(METERED, {"units": 4}, format="json").status_code == 200
    assert used(subscription) == 10


@pytest.mark.parametrize("units", [11, 100_000])
def test_a_request_larger_than_the_whole_quota_is_refused_and_creates_no_usage(
    make_subscriber, units
):
    subscription = make_subscriber(quota=10)
    response = client_for(subscription).post(METERED, {"units": units}, format="json")
    assert response.status_code == 429 and response.json()["code"] == "quota_exceeded"
    assert used(subscription) == 0


def test_a_server_side_failure_refunds_its_units(make_subscriber):
    subscription = make_subscriber(quota=10)
    client = client_for(subscription)
    assert client.post(METERED, {"units": 3}, format="json").status_code == 200
    response = client.post(METERED, {"units": 4, "fail": True}, format="json")
    assert response.status_code == 503
    assert used(subscription) == 3


def test_a_quota_extension_applies_to_the_current_period_only(make_subscriber):
    subscription = make_subscriber(quota=10)
    client = client_for(subscription)
    assert client.post(METERED, {"units": 10}, format="json").status_code == 200
    assert client.post(METERED, {"units": 1}, format="json").status_code == 429
    counter = services.grant_quota_extension(subscription=subscription, units=5)
    assert counter.extension == 5 and counter.used == 10
    response = client.post(METERED, {"units": 5}, format="json")
    assert response.status_code == 200
    assert response["RateLimit-Limit"] == "15" and response["RateLimit-Remaining"] == "0"


def test_an_extension_granted_before_any_use_allows_more_than_the_plan_quota(make_subscriber):
    subscription = make_subscriber(quota=10)
    services.grant_quota_extension(subscription=subscription, units=5)
    response = client_for(subscription).post(METERED, {"units": 15}, format="json")
    assert response.status_code == 200 and used(subscription) == 15


def test_all_keys_and_the_jwt_of_a_subscription_share_its_quota(make_subscriber):
    from rest_framework_simplejwt.tokens import RefreshToken

    subscription = make_subscriber(quota=10)
    first, second = client_for(subscription), client_for(subscription)
    jwt = APIClient()
    jwt.credentials(
        HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(subscription.user).access_token}"
    )
    assert first.post(METERED, {"units": 4}, format="json").status_code == 200
    assert second.post(METERED, {"units": 4}, format="json").status_code == 200
    assert jwt.post(METERED, {"units": 3}, format="json").status_code == 429
    assert jwt.post(METERED, {"units": 2}, format="json").status_code == 200
    assert used(subscription) == 10


def test_inactive_subscriptions_use_nothing_and_still_get_headers(make_subscriber):
    subscription = make_subscriber(status="suspended", quota=10)
    response = client_for(subscription).post(METERED, {"units": 1}, format="json")
    assert response.status_code == 403
    assert response["RateLimit-Remaining"] == "10"
    assert used(subscription) == 0


def test_unauthenticated_requests_get_no_limit_headers():
    response = APIClient().post(METERED, {"units": 1}, format="json")
    assert response.status_code == 401
    assert "RateLimit" not in response


@pytest.mark.parametrize(
    ("period", "at", "start", "end"),
    [
        ("day", "2026-03-05T23:59:59", "2026-03-05", "2026-03-06"),
        ("week", "2026-03-05T12:00:00", "2026-03-02", "2026-03-09"),  # Thursday -> Monday
        ("week", "2026-03-02T00:00:00", "2026-03-02", "2026-03-09"),  # Monday itself
        ("week", "2026-01-01T08:00:00", "2025-12-29", "2026-01-05"),  # ISO week over New Year
        ("month", "2026-12-31T23:00:00", "2026-12-01", "2027-01-01"),
        ("month", "2028-02-29T10:00:00", "2028-02-01", "2028-03-01"),
    ],
)
def test_quota_periods_are_calendar_aligned_in_utc(period, at, start, end):
    got = limits.period_bounds(period, datetime.fromisoformat(at).replace(tzinfo=UTC))
    assert got == (
        datetime.fromisoformat(start).replace(tzinfo=UTC),
        datetime.fromisoformat(end).replace(tzinfo=UTC),
    )


def test_an_unreachable_redis_bucket_is_503_and_uses_no_quota_then_resumes(
    make_subscriber, settings
):
    subscription = make_subscriber(quota=10)
    client = client_for(subscription)
    good = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.post(METERED, {"units": 2}, format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"
    assert used(subscription) == 0
    settings.REDIS_URL = good
    assert client.post(METERED, {"units": 2}, format="json").status_code == 200
    assert used(subscription) == 2


def principal_for(subscription) -> Principal:
    subscription.refresh_from_db()
    return Principal.for_subscription(subscription)


def test_database_bucket_refills_at_the_rate_up_to_the_burst(make_subscriber, settings):
    from keys import limits_db

    settings.REDIS_URL = ""
    subscription = make_subscriber(rate=2.0, burst=4)
    now = time.time()
    take = dict(subscription_id=subscription.pk, rate=2.0, burst=4)
    results = [limits_db.take_token(**take, now=now).allowed for _ in range(5)]
    assert results == [True, True, True, True, False]
    assert limits_db.take_token(**take, now=now + 0.49).allowed is False
    assert limits_db.take_token(**take, now=now + 0.5).allowed is True  # 0.5 s x 2/s = 1
    assert limits_db.peek_tokens(**take, now=now + 1000) == 4.0  # capped at the burst


def test_database_bucket_never_refills_when_a_clock_runs_backwards(make_subscriber):
    from keys import limits_db

    subscription = make_subscriber(rate=10.0, burst=2)
    take = dict(subscription_id=subscription.pk, rate=10.0, burst=2)
    now = time.time()
    assert limits_db.take_token(**take, now=now).allowed
    assert limits_db.take_token(**take, now=now).allowed
    assert not limits_db.take_token(**take, now=now - 5).allowed
    assert not limits_db.take_token(**take, now=now + 0.05).allowed  # 0.5 token, not more


@pytest.mark.services
def test_redis_bucket_refills_at_the_rate_up_to_the_burst(make_subscriber, redis_url, settings):
    from keys import limits_redis

    settings.REDIS_URL = redis_url
    subscription = make_subscriber(rate=0.001, burst=3)
    take = dict(subscription_id=subscription.pk, rate=0.001, burst=3)
    assert [limits_redis.take_token(**take).allowed for _ in range(4)] == [True, True, True, False]
    assert 0 <= limits_redis.peek_tokens(**take) < 1
