"""Rate (token bucket) and quota limits through the predict route: atomicity, refusals, headers.

A predict of n instances of `iris` uses n units; `GET /api/v1/models` is a data-plane read (one
rate token, no quota).

Every test runs on every limits store (`store` fixture): the database store, the Redis lease
store as a quiet subscription uses it (leases of exactly what a request needs), and the Redis
lease store with large leases (`redis-pooled`: most admits served from the pool). The Redis
variants need REDIS_URL (the services run); the database store runs on SQLite or PostgreSQL.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from keys import limits, services
from keys.principal import Principal
from mlapi.exceptions import QUOTA_PROBLEM_TYPE
from tests.factories import ApiKeyFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("store", "demo_models"),
]
PREDICT = "/api/v1/models/iris/predict"
INFO = "/api/v1/models"
IRIS = [5.1, 3.5, 1.4, 0.2]
SLOW = {"rate": 0.001}  # no refill worth mentioning during a test


@pytest.fixture(params=["database", "redis", "redis-pooled"])
def store(request, settings) -> str:
    """Run the test on one limits store (see the module docstring)."""
    if request.param.startswith("redis"):
        settings.REDIS_URL = request.getfixturevalue("redis_url")
    settings.MLAPI_LIMITS_STORE = request.param.split("-")[0]
    settings.MLAPI_LIMITS_LEASE_FRACTION = 0.5 if request.param == "redis-pooled" else 0.001
    assert limits.get_store().name == settings.MLAPI_LIMITS_STORE
    return request.param


def client_for(subscription) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=ApiKeyFactory(subscription=subscription).plaintext)
    return client


def predict(client: APIClient, units: int):
    """Predict `units` iris instances (one quota unit each)."""
    return client.post(PREDICT, {"instances": [IRIS] * units}, format="json")


def used(subscription) -> int:
    """Predictions delivered in the current period, as the store reports them."""
    subscription.refresh_from_db()
    return limits.quota_status(subscription=subscription).used


def seconds_to_midnight() -> float:
    now = datetime.now(UTC)
    return limits.period_bounds("day", now)[1].timestamp() - now.timestamp()


def test_success_carries_the_exact_ratelimit_headers_of_the_contract(make_subscriber):
    subscription = make_subscriber("free")
    before = seconds_to_midnight()
    response = predict(client_for(subscription), 3)
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
    response = predict(client_for(subscription), 1)
    start, end = limits.period_bounds(period, datetime.now(UTC))
    expected = window or int((end - start).total_seconds())
    assert f'"quota";q=50;w={expected};qu="predictions"' in response["RateLimit-Policy"]


def test_errors_before_admit_use_no_quota_but_take_a_token_and_carry_headers(make_subscriber):
    subscription = make_subscriber(burst=5, quota=100, **SLOW)
    response = client_for(subscription).post(PREDICT, {"instances": "many"}, format="json")
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
        assert predict(client, 2).status_code == 200
    response = predict(client, 2)
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
    assert predict(client, 6).status_code == 200
    response = predict(client, 5)
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "quota_exceeded"
    assert body["type"] == QUOTA_PROBLEM_TYPE
    assert body["violated-policies"] == ["quota"]
    assert int(response["Retry-After"]) == int(response["RateLimit-Reset"]) >= 1
    assert response["RateLimit-Remaining"] == "4"
    assert used(subscription) == 6
    assert predict(client, 4).status_code == 200
    assert used(subscription) == 10


@pytest.mark.parametrize("units", [11, 1000])
def test_a_request_larger_than_the_whole_quota_is_refused_and_creates_no_usage(
    make_subscriber, units
):
    subscription = make_subscriber(quota=10)
    response = predict(client_for(subscription), units)
    assert response.status_code == 429 and response.json()["code"] == "quota_exceeded"
    assert used(subscription) == 0


def test_a_server_side_failure_refunds_its_units(make_subscriber, monkeypatch):
    from predictions.errors import ModelUnavailable
    from predictions.inference import Predictor

    def broken(self, columns, **kwargs):
        raise ModelUnavailable("simulated model failure")

    subscription = make_subscriber(quota=10)
    client = client_for(subscription)
    assert predict(client, 3).status_code == 200
    monkeypatch.setattr(Predictor, "predict", broken)
    response = predict(client, 4)
    assert response.status_code == 503 and response.json()["code"] == "model_unavailable"
    assert used(subscription) == 3


def test_a_quota_extension_applies_to_the_current_period_only(make_subscriber):
    subscription = make_subscriber(quota=10)
    client = client_for(subscription)
    assert predict(client, 10).status_code == 200
    assert predict(client, 1).status_code == 429
    counter = services.grant_quota_extension(subscription=subscription, units=5)
    assert counter.extension == 5 and counter.used == 10
    response = predict(client, 5)
    assert response.status_code == 200
    assert response["RateLimit-Limit"] == "15" and response["RateLimit-Remaining"] == "0"


def test_an_extension_granted_before_any_use_allows_more_than_the_plan_quota(make_subscriber):
    subscription = make_subscriber(quota=10)
    services.grant_quota_extension(subscription=subscription, units=5)
    response = predict(client_for(subscription), 15)
    assert response.status_code == 200 and used(subscription) == 15


def test_all_keys_and_the_jwt_of_a_subscription_share_its_quota(make_subscriber):
    from rest_framework_simplejwt.tokens import RefreshToken

    subscription = make_subscriber(quota=10)
    first, second = client_for(subscription), client_for(subscription)
    jwt = APIClient()
    jwt.credentials(
        HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(subscription.user).access_token}"
    )
    assert predict(first, 4).status_code == 200
    assert predict(second, 4).status_code == 200
    assert predict(jwt, 3).status_code == 429
    assert predict(jwt, 2).status_code == 200
    assert used(subscription) == 10


def test_inactive_subscriptions_use_nothing_and_still_get_headers(make_subscriber):
    subscription = make_subscriber(status="suspended", quota=10)
    response = predict(client_for(subscription), 1)
    assert response.status_code == 403
    assert response["RateLimit-Remaining"] == "10"
    assert used(subscription) == 0


def test_unauthenticated_requests_get_no_limit_headers():
    response = predict(APIClient(), 1)
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


def test_an_unreachable_redis_store_is_503_and_uses_no_quota_then_resumes(
    make_subscriber, settings, store
):
    if store == "database":
        pytest.skip("the database store does not use Redis")
    subscription = make_subscriber(quota=10)
    client = client_for(subscription)
    good = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = predict(client, 2)
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"
    assert used(subscription) == 0
    settings.REDIS_URL = good
    assert predict(client, 2).status_code == 200
    assert used(subscription) == 2


def principal_for(subscription) -> Principal:
    subscription.refresh_from_db()
    return Principal.for_subscription(subscription)


def test_database_bucket_refills_at_the_rate_up_to_the_burst(make_subscriber):
    from keys.limits import database

    subscription = make_subscriber(rate=2.0, burst=4)
    now = time.time()
    take = dict(subscription_id=subscription.pk, rate=2.0, burst=4)
    results = [database.take_token(**take, now=now) is not None for _ in range(5)]
    assert results == [True, True, True, True, False]
    assert database.take_token(**take, now=now + 0.49) is None
    assert database.take_token(**take, now=now + 0.5) is not None  # 0.5 s x 2/s = 1
    assert database.peek_tokens(**take, now=now + 1000) == 4.0  # capped at the burst


def test_database_bucket_never_refills_when_a_clock_runs_backwards(make_subscriber):
    from keys.limits import database

    subscription = make_subscriber(rate=10.0, burst=2)
    take = dict(subscription_id=subscription.pk, rate=10.0, burst=2)
    now = time.time()
    assert database.take_token(**take, now=now) is not None
    assert database.take_token(**take, now=now) is not None
    assert database.take_token(**take, now=now - 5) is None
    assert database.take_token(**take, now=now + 0.05) is None  # 0.5 token, not more


def test_the_bucket_refills_at_the_rate_up_to_the_burst_in_every_store(make_subscriber):
    principal = principal_for(make_subscriber(rate=0.001, burst=3))
    for _ in range(3):
        limits.take_token(principal=principal)
    with pytest.raises(limits.RateLimited) as refused:
        limits.take_token(principal=principal)
    assert 0 <= refused.value.state.tokens < 1
    assert 0 <= limits.peek(principal=principal).tokens < 1


def test_a_batch_consumes_quota_without_a_token_and_refunds_it(make_subscriber):
    subscription = make_subscriber(quota=10, burst=1, rate=0.001)
    principal = principal_for(subscription)
    limits.admit(principal=principal, units=2)  # the only token
    start = limits.consume_quota(principal=principal, units=8)
    assert used(subscription) == 10
    with pytest.raises(limits.QuotaExceeded):
        limits.consume_quota(principal=principal, units=1)
    limits.refund(principal=principal, units=8, period_start=start)
    assert used(subscription) == 2
