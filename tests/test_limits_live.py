"""Exactness under concurrency, through a live server and the real predict endpoint.

32 threads hammer one subscription over HTTP. The quota must admit exactly its size (never one
prediction over, never one short when the last requests ask for a single prediction), the
database and `/api/v1/me` must agree, and the token bucket must admit no more than
burst + rate x elapsed. Runs on whatever database/Redis the suite is configured with (SQLite and
the database bucket by default; PostgreSQL + the Redis bucket in the services run).
"""

from __future__ import annotations

import time

import pytest
import requests
from rest_framework_simplejwt.tokens import RefreshToken

from keys.limits import quota_status
from keys.models import QuotaCounter
from tests.factories import ApiKeyFactory, PlanFactory, SubscriptionFactory
from tests.support.load import THREADS, hammer, predict, quota_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_concurrent_predictions_admit_exactly_the_quota(live_server, live_demo_models):
    quota = 400
    plan = PlanFactory(rate=100_000.0, burst=100_000, quota=quota, quota_period="day")
    subscription = SubscriptionFactory(plan=plan)
    key = ApiKeyFactory(subscription=subscription)
    admitted = hammer(f"{live_server.url}/api/v1/models/iris/predict", key.plaintext, quota_worker)

    assert sum(admitted) == quota
    counter = QuotaCounter.objects.get(subscription=subscription)
    assert counter.used == quota
    access = RefreshToken.for_user(subscription.user).access_token
    me = requests.get(
        f"{live_server.url}/api/v1/me", headers={"Authorization": f"Bearer {access}"}, timeout=10
    ).json()
    assert me["subscription"]["quota"]["used"] == quota
    assert me["subscription"]["quota"]["remaining"] == 0
    print(
        f"\nquota exactness: {THREADS} threads, {len(admitted)} requests admitted, "
        f"{sum(admitted)} predictions admitted, quota {quota}"
    )


def test_concurrent_requests_never_beat_the_token_bucket(live_server, live_demo_models):
    rate, burst, duration = 20.0, 10, 1.5
    plan = PlanFactory(rate=rate, burst=burst, quota=10_000_000, quota_period="month")
    subscription = SubscriptionFactory(plan=plan)
    key = ApiKeyFactory(subscription=subscription)
    url = f"{live_server.url}/api/v1/models/iris/predict"
    stop_at: list[float] = []

    def worker(session, url):
        outcomes = []
        if not stop_at:
            stop_at.append(time.monotonic() + duration)
        while time.monotonic() < stop_at[0]:
            status, code, _ = predict(session, url, 1)
            assert status == 200 or (status, code) == (429, "rate_limited")
            outcomes.append(status)
        return outcomes

    began = time.monotonic()
    outcomes = hammer(url, key.plaintext, worker)
    elapsed = time.monotonic() - began
    admitted = outcomes.count(200)
    used = quota_status(subscription=subscription).used  # delivered (pooled units excluded)
    assert used == admitted  # refused requests used no quota
    assert burst <= admitted <= burst + rate * elapsed
    assert outcomes.count(429) > 0
    print(
        f"\nbucket: {THREADS} threads, {len(outcomes)} requests in {elapsed:.2f} s, "
        f"{admitted} admitted <= {burst} + {rate} x {elapsed:.2f} = {burst + rate * elapsed:.1f}"
    )
