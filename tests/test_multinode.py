"""Several web nodes: two gunicorn servers (2 workers each) on one PostgreSQL and one Redis.

64 client threads, half on each node, spend one subscription's quota with requests of 1 to 5
instances. Admitted predictions must equal the quota exactly, and after both nodes shut down
(SIGTERM flushes their buffered usage) there is one usage record per request answered.
"""

from __future__ import annotations

import random
import threading
import time

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


def spend_quota(urls: list[str], key: str, seed: int, answered: list, admitted: list) -> None:
    """Predict batches of 1-5 until even one instance is refused for quota; a node that
    refuses connections (shut down) is left for the next one."""
    try:
        _spend(urls[seed % len(urls) :] + urls[: seed % len(urls)], key, seed, answered, admitted)
    except BaseException as exc:  # a thread's failure must fail the test
        answered.append(exc)


def _spend(urls: list[str], key: str, seed: int, answered: list, admitted: list) -> None:
    rng = random.Random(seed)
    while True:
        n = rng.randint(1, 5)
        try:
            response = requests.post(
                f"{urls[0]}/api/v1/models/iris/predict",
                json={"instances": [IRIS] * n},
                headers={"X-API-Key": key},
                timeout=60,
            )
        except requests.ConnectionError:
            assert len(urls) > 1, "the last node refused a connection"
            urls = urls[1:]  # not answered: neither metered nor counted
            continue
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
                target=spend_quota, args=([n.url for n in nodes], key, i, answered, admitted)
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


def test_sigterm_to_one_node_under_load_completes_its_requests_and_loses_no_usage(
    postgres_url, redis_url, live_demo_models
):
    """The real app under load: one node gets SIGTERM mid-run; its clients move on."""
    plan = PlanFactory(rate=1_000_000.0, burst=1_000_000, quota=QUOTA, quota_period="day")
    subscription = SubscriptionFactory(plan=plan)
    key = ApiKeyFactory(subscription=subscription).plaintext
    nodes = [GunicornServer(workers=2, env={"REDIS_URL": redis_url}) for _ in range(2)]
    answered: list = []
    admitted: list[int] = []
    try:
        for node in nodes:
            node.start()
        urls = [n.url for n in nodes]
        threads = [
            threading.Thread(target=spend_quota, args=(urls, key, i, answered, admitted))
            for i in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        while len(answered) < 100 and any(t.is_alive() for t in threads):
            time.sleep(0.01)
        assert nodes[0].stop() == 0  # graceful: in-flight requests finish, usage is flushed
        for thread in threads:
            thread.join()
    finally:
        for node in nodes:
            node.stop()
    assert not [a for a in answered if not isinstance(a, int)], answered
    assert sum(admitted) == QUOTA  # no admitted request lost its answer
    records = UsageRecord.objects.filter(subscription=subscription)
    assert records.count() == len(answered)
    assert records.aggregate(n=Sum("predictions"))["n"] == QUOTA
    print(
        f"\nSIGTERM to node 1 of 2 under {CLIENTS} clients: {len(answered)} answered, "
        f"{sum(admitted)} predictions admitted (quota {QUOTA}), {records.count()} usage records"
    )
