"""The Redis lease store's invariants against a private redis-server that the tests restart.

PostgreSQL (the services run's test database) holds the counters; each test runs its own
redis-server on a free port so it can kill it, restore an older snapshot, or promote a replica
that lags behind. After every fault the subscription keeps spending until refused, and:
* never one unit over the quota (plus extension) is admitted (invariants a, c);
* the database counter is never reset and, once exhausted, equals the quota;
* what a fault strands (pool units, a lease that never reached the pool) is at most what the
  pool held or one lease: under-admission bounded as docs/performance.md says (f).
"""

from __future__ import annotations

import time

import pytest

from bench.stores import PrivateRedis, redis_available
from keys import limits, services
from keys.events import crossed
from keys.limits import leases, reservations
from keys.limits.redis_leases import RedisLeaseStore
from keys.principal import Principal
from tests.support.reservations import (
    busy_admits,
    busy_steps,
    counter,
    held_units,
    spend,
    spend_mixed_sizes,
    tokens_until_rate_limited,
)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
QUOTA = 2000
FRACTION = 0.05  # leases of up to 100 units: most admits come from the pool


@pytest.fixture
def private_redis(postgres_url, redis_url, settings):
    if not redis_available():
        pytest.fail("redis-server is not installed")
    server = PrivateRedis().start()
    settings.REDIS_URL = server.url()
    settings.MLAPI_LIMITS_STORE = "redis"
    settings.MLAPI_LIMITS_LEASE_FRACTION = FRACTION
    settings.MLAPI_LIMITS_RESERVE_MAX = 16  # every invariant holds with reservations too
    yield server
    limits.get_store().close()
    server.close()


def principal_for(make_subscriber, quota: int = QUOTA) -> Principal:
    return Principal.for_subscription(
        make_subscriber(quota=quota, rate=1e6, burst=10**9, quota_period="month")
    )


def pooled(server: PrivateRedis) -> dict[bytes, int]:
    """Units in each pool, once this process gave back its reservations (keys.limits
    .reservations: its sweeper does so within 50 ms anyway)."""
    limits.get_store().reservations.give_back_all()
    client = server.client()
    pools = [k for k in client.scan_iter("mlapi:pool:*") if client.type(k) == b"hash"]
    return {k: int(client.hget(k, "units") or 0) for k in pools}


def test_pooled_admits_are_exact_and_leave_nothing_stranded(private_redis, make_subscriber):
    principal = principal_for(make_subscriber)
    delivered = spend(principal, threads=8)
    assert delivered == QUOTA == counter(principal)
    assert sum(pooled(private_redis).values()) == 0
    assert limits.quota_status(subscription=_sub(principal)).remaining == 0


def test_concurrent_admits_each_report_their_own_count_while_leases_land_out_of_order(
    private_redis, make_subscriber
):
    # Leases run in parallel and reach the pool in any order. Every count from 1 to the quota
    # is crossed by some admit (a quota.threshold webhook at any level is sent: the outbox
    # deduplicates the rare second crossing), and what the admits report (RateLimit-Remaining)
    # ends exact and never runs behind.
    principal = principal_for(make_subscriber)
    seen: list[tuple[int, int]] = []
    assert spend(principal, threads=8, seen=seen) == QUOTA
    crossings = [n for before, used in seen for n in range(before + 1, used + 1)]
    assert set(crossings) == set(range(1, QUOTA + 1))
    # A second crossing happens only from a lease that was in flight when the pool began.
    assert len(crossings) <= QUOTA + 8 * QUOTA * FRACTION
    assert max(used for _, used in seen) == QUOTA
    reported = sorted(used for _, used in seen)
    assert all(r >= n for n, r in enumerate(reported, 1))  # never fewer than delivered


def test_a_redis_restart_without_persistence_never_resets_the_quota(private_redis, make_subscriber):
    principal = principal_for(make_subscriber)
    before = spend(principal, limit=500)
    stranded = sum(pooled(private_redis).values())
    assert stranded > 0  # the test means something: units were in the pool
    old_run = private_redis.run_id()
    private_redis.stop()
    private_redis.start()
    assert private_redis.run_id() != old_run
    after = spend(principal)
    assert before + after == QUOTA - stranded  # the pool's units are lost, never reused
    assert counter(principal) == QUOTA


def test_an_older_snapshot_restored_never_hands_out_its_pool_again(private_redis, make_subscriber):
    principal = principal_for(make_subscriber)
    first = spend(principal, limit=300)
    snapshot = pooled(private_redis)
    private_redis.save()  # a snapshot with a full-ish pool: what an old RDB/AOF holds
    second = spend(principal, limit=600)
    stranded = sum(pooled(private_redis).values())
    private_redis.stop()
    private_redis.start(load_rdb=True)
    assert pooled(private_redis) == snapshot and sum(snapshot.values()) > 0  # restored, stale
    rest = spend(principal)
    assert first + second + rest == QUOTA - stranded
    assert counter(principal) == QUOTA


def test_a_lagging_replica_promoted_never_hands_out_the_masters_pool(
    private_redis, make_subscriber, settings
):
    principal = principal_for(make_subscriber)
    replica = PrivateRedis(replica_of=private_redis.port).start()
    try:
        first = spend(principal, limit=300)
        _wait_replicated(private_redis, replica)
        replica.client().replicaof("NO", "ONE")  # it stops following here: it will lag
        second = spend(principal, limit=300)
        stranded = sum(pooled(private_redis).values())
        assert sum(pooled(replica).values()) > 0  # the replica holds an older, fuller pool
        private_redis.stop()
        limits.get_store().close()
        settings.REDIS_URL = replica.url()  # failover: every client now talks to the replica
        rest = spend(principal)
    finally:
        limits.get_store().close()
        replica.close()
    assert first + second + rest == QUOTA - stranded
    assert counter(principal) == QUOTA


def test_a_leaser_that_dies_before_depositing_strands_one_lease_and_never_over_admits(
    private_redis, make_subscriber
):
    principal = principal_for(make_subscriber)
    first = spend(principal, limit=200)
    start = limits.period_bounds("month", _now())[0]
    # What a web worker SIGKILLed between its durable lease and the deposit leaves behind:
    orphan = leases.lease(
        subscription_id=principal.subscription_id,
        period_start=start,
        quota=QUOTA,
        need=1,
        want=int(QUOTA * FRACTION),
    )
    assert orphan.units == QUOTA * FRACTION
    rest = spend(principal, threads=4)
    assert first + rest == QUOTA - orphan.units
    assert counter(principal) == QUOTA


def test_an_extension_granted_while_units_are_pooled_is_delivered_exactly(
    private_redis, make_subscriber
):
    principal = principal_for(make_subscriber)
    first = spend(principal, limit=1000)
    services.grant_quota_extension(subscription=_sub(principal), units=150)
    rest = spend(principal, threads=4)
    assert first + rest == QUOTA + 150 == counter(principal)


def test_refunds_return_to_the_pool_and_batches_take_the_pool_back(private_redis, make_subscriber):
    principal = principal_for(make_subscriber, quota=1000)
    delivered = spend(principal, limit=400)
    state = limits.admit(principal=principal, units=5)
    limits.refund(principal=principal, units=5, period_start=state.period_start)
    assert limits.quota_status(subscription=_sub(principal)).used == delivered
    assert sum(pooled(private_redis).values()) > 0
    # A batch that needs all that is left: the pool's units go back to the database for it.
    limits.consume_quota(principal=principal, units=1000 - delivered)
    assert sum(pooled(private_redis).values()) == 0
    with pytest.raises(limits.QuotaExceeded):
        limits.admit(principal=principal, units=1)
    assert counter(principal) == 1000


def test_redis_unreachable_is_503_and_the_store_recovers_by_itself(private_redis, make_subscriber):
    from mlapi.exceptions import ServiceUnavailable

    principal = principal_for(make_subscriber)
    first = spend(principal, limit=100)
    stranded = sum(pooled(private_redis).values())
    private_redis.stop()
    with pytest.raises(ServiceUnavailable):
        limits.admit(principal=principal, units=1)
    private_redis.start()
    assert first + spend(principal) == QUOTA - stranded


def _sub(principal: Principal):
    from keys.models import Subscription

    return Subscription.objects.select_related("plan").get(pk=principal.subscription_id)


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _wait_replicated(master: PrivateRedis, replica: PrivateRedis) -> None:
    import time

    want = pooled(master)
    for _ in range(200):
        if pooled(replica) == want and want:
            return
        time.sleep(0.05)
    raise AssertionError("the replica did not catch up")


# --- per-process reservations (keys.limits.reservations) -------------------------------------
# A second RedisLeaseStore is a second process: its own reservations, the same Redis and
# database.


def other_process(private_redis) -> RedisLeaseStore:
    return RedisLeaseStore(private_redis.url(), lease_fraction=FRACTION, lease_max=10_000,
                           reserve_max=16)  # fmt: skip


def test_units_a_busy_process_reserved_come_back_so_another_gets_the_last_of_the_quota(
    private_redis, make_subscriber
):
    principal = principal_for(make_subscriber)
    busy = other_process(private_redis)
    try:
        first = busy_admits(busy, principal, 300)
        assert held_units(busy, principal) > 0  # the test means something: units were reserved
        # The busy process goes quiet holding them; this one spends until refused.
        rest = spend(principal)
        assert first + rest == QUOTA == counter(principal)
        assert held_units(busy, principal) == 0
    finally:
        busy.close()


def test_a_process_that_dies_holding_a_reservation_strands_only_it_and_never_over_admits(
    private_redis, make_subscriber
):
    principal = principal_for(make_subscriber)
    dying = other_process(private_redis)
    first = busy_admits(dying, principal, 300)
    stranded = held_units(dying, principal)
    assert 0 < stranded <= 16
    dying.reservations.discard()  # SIGKILL: nothing given back, its `held` entry stays
    started = time.monotonic()
    rest = spend(principal)
    assert first + rest == QUOTA - stranded  # lost, never reused
    assert counter(principal) == QUOTA
    # The refusal waited for the dead holder no longer than Redis counts it.
    assert time.monotonic() - started < reservations.HELD_S + 5
    dying.close()


def test_tokens_a_busy_process_reserved_come_back_to_the_bucket(private_redis, make_subscriber):
    plan = {"quota": 10**6, "rate": 0.001, "burst": 200, "quota_period": "month"}
    principal = Principal.for_subscription(make_subscriber(**plan))
    busy = other_process(private_redis)
    try:
        first = busy_admits(busy, principal, 40)
        assert first == 40
        time.sleep(reservations.WINDOW_S * 4)  # its sweeper gives back what it did not use
        rest = tokens_until_rate_limited(principal)
        assert first + rest == 200  # the burst exactly (the rate adds nothing in this time)
    finally:
        busy.close()


def test_thirty_two_threads_of_mixed_sizes_cross_every_threshold_with_reservations(
    private_redis, make_subscriber, settings
):
    # Requests of 1-5 units each get their own reservation; none may hide a quota.threshold.
    settings.MLAPI_LIMITS_LEASE_FRACTION = 0.01
    principal = principal_for(make_subscriber, quota=1000)
    seen = spend_mixed_sizes(principal, threads=32)
    assert sum(size for _, _, size in seen) == 1000 == counter(principal)
    hits = {p for before, used, _ in seen for p in crossed(before=before, used=used, limit=1000)}
    assert hits == {80, 90, 100}


def test_counts_a_reservation_gives_back_are_still_crossed(private_redis, make_subscriber):
    # A reservation's counts are in the pool's high-water mark from the start; the ones it gives
    # back unused must be crossed again by the admits that get them (quota.threshold at any level).
    principal = principal_for(make_subscriber)
    busy = other_process(private_redis)
    seen = [
        (step.before if step.before is not None else step.used - 1, step.used)
        for step in busy_steps(busy, principal, 300)
    ]
    assert held_units(busy, principal) > 0  # the test means something
    busy.reservations.give_back_all()
    spend(principal, seen=seen)
    crossings = {n for before, used in seen for n in range(before + 1, used + 1)}
    assert crossings == set(range(1, QUOTA + 1))
    busy.close()
