"""Several web nodes: two gunicorn servers (2 workers each) on one PostgreSQL and one Redis.

64 client threads, half on each node, spend one subscription's quota with requests of 1 to 5
instances. Admitted predictions must equal the quota exactly, and after both nodes shut down
(SIGTERM flushes their buffered usage) there is one usage record per request answered.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db.models import Sum

from keys.models import QuotaCounter
from tests.factories import ApiKeyFactory, PlanFactory, SubscriptionFactory
from tests.servers import GunicornServer
from tests.support.load import spend_quota
from usage.models import UsageRecord

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CLIENTS = 64
QUOTA = 600
IRIS = [5.1, 3.5, 1.4, 0.2]


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
