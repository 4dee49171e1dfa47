"""Several web nodes: two gunicorn servers (2 workers each) on one PostgreSQL and one Redis.

64 client threads, half on each node, spend one subscription's quota with requests of 1 to 5
instances. Admitted predictions must equal the quota exactly, and after both nodes shut down
(SIGTERM flushes their buffered usage) there is one usage record per request answered.
"""

from __future__ import annotations

import random
import threading

import pytest
import requests
from django.db.models import Sum

from keys.models import QuotaCounter
from tests.factories import ApiKeyFactory, PlanFactory, SubscriptionFactory
from tests.servers import GunicornServer
from usage.models import UsageRecord

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CLIENTS = 64
QUOTA = 600
IRIS = [5.1, 3.5, 1.4, 0.2]


def spend_quota(url: str, key: str, seed: int, answered: list, admitted: list) -> None:
    """Predict batches of 1-5 until even one instance is refused for quota."""
    try:
        _spend(url, key, random.Random(seed), answered, admitted)
    except BaseException as exc:  # a thread's failure must fail the test
        answered.append(exc)


def _spend(url: str, key: str, rng: random.Random, answered: list, admitted: list) -> None:
    with requests.Session() as session:
        while True:
            n = rng.randint(1, 5)
            response = session.post(
                f"{url}/api/v1/models/iris/predict",
                json={"instances": [IRIS] * n},
                headers={"X-API-Key": key},
                timeout=60,
            )
            answered.append(response.status_code)
            if response.status_code == 200:
                admitted.append(len(response.json()["predictions"]))
                continue
            assert response.status_code == 429, response.text
            assert response.json()["code"] == "quota_exceeded", response.text
            if n == 1:
                return


def test_two_nodes_admit_exactly_the_quota_and_record_every_answered_request(
    postgres_url, redis_url, live_demo_models
):
    plan = PlanFactory(rate=1_000_000.0, burst=1_000_000, quota=QUOTA, quota_period="day")
    subscription = SubscriptionFactory(plan=plan)
    key = ApiKeyFactory(subscription=subscription).plaintext
    nodes = [GunicornServer(workers=2, env={"REDIS_URL": redis_url}) for _ in range(2)]
    answered: list[int] = []
    admitted: list[int] = []
    try:
        for node in nodes:
            node.start()
        threads = [
            threading.Thread(
                target=spend_quota, args=(nodes[i % 2].url, key, i, answered, admitted)
            )
            for i in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        codes = [node.stop() for node in nodes]  # SIGTERM: each worker flushes its usage
    assert codes == [0, 0]
    assert not [a for a in answered if not isinstance(a, int)], answered
    assert sum(admitted) == QUOTA
    assert QuotaCounter.objects.get(subscription=subscription).used == QUOTA
    records = UsageRecord.objects.filter(subscription=subscription)
    assert records.count() == len(answered)
    assert records.filter(status=200).count() == len(admitted)
    assert records.aggregate(n=Sum("predictions"))["n"] == QUOTA
    print(
        f"\nmulti-node: 2 nodes x 2 workers, {CLIENTS} clients, {len(answered)} requests answered, "
        f"{len(admitted)} admitted = {sum(admitted)} predictions (quota {QUOTA}), "
        f"{records.count()} usage records"
    )
