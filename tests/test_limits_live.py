"""Exactness under concurrency, through a live server and the real predict endpoint.

32 threads hammer one subscription over HTTP. The quota must admit exactly its size (never one
prediction over, never one short when the last requests ask for a single prediction), the
database and `/api/v1/me` must agree, and the token bucket must admit no more than
burst + rate x elapsed. Runs on whatever database/Redis the suite is configured with (SQLite and
the database bucket by default; PostgreSQL + the Redis bucket in the services run).
"""

from __future__ import annotations

import random
import threading
import time

import pytest
import requests
from rest_framework_simplejwt.tokens import RefreshToken

from keys.limits import quota_status
from keys.models import QuotaCounter
from tests.factories import ApiKeyFactory, PlanFactory, SubscriptionFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
THREADS = 32
ROW = [5.1, 3.5, 1.4, 0.2]


def hammer(url: str, key: str, worker) -> list:
    """Run `worker(session, url, key)` in THREADS threads released together; gather results."""
    results: list = []
    errors: list = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)
    base = url.split("/api/")[0]

    def run():
        with requests.Session() as session:
            session.headers["X-API-Key"] = key
            # Open the keep-alive connection first: 32 simultaneous connects would overflow the
            # test server's listen backlog, and a reset connection proves nothing about limits.
            for _ in range(50):
                try:
                    session.get(f"{base}/healthz", timeout=10)
                    break
                except requests.ConnectionError:
                    time.sleep(0.05)
            start.wait()
            try:
                out = worker(session, url)
            except BaseException as exc:  # a lost response would hide an admission
                with lock:
                    errors.append(exc)
                raise
        with lock:
            results.extend(out)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    return results


def predict(session, url: str, n: int):
    response = session.post(url, json={"instances": [ROW] * n}, timeout=60)
    code = response.json().get("code") if response.status_code != 200 else None
    return response.status_code, code, response


def quota_worker(session, url):
    """Ask for 1-5 predictions until refused; after a refusal, insist with 1 until refused."""
    admitted, rng, n = [], random.Random(), None
    while True:
        size = n or rng.randint(1, 5)
        status, code, response = predict(session, url, size)
        if status == 200:
            admitted.append(size)
            continue
        assert (status, code) == (429, "quota_exceeded"), response.text
        assert response.headers["Retry-After"]
        if size == 1:
            return admitted
        n = 1


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
