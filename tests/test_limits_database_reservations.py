"""The database store's per-process reservations (keys.limits.database, .reservations).

A busy process takes more tokens and units with an admit and serves the next requests from
memory; these tests hold it to the same invariants as the Redis store's (test_limits_invariants):
exact quotas, nothing stranded while another process refuses, a dead holder costs only what it
held. A second `DatabaseStore` is a second process: its own reservations, the same database.
Runs on SQLite and, in the services run, on PostgreSQL.
"""

from __future__ import annotations

import threading
import time

import pytest

from keys import limits
from keys.events import crossed
from keys.limits import reservations
from keys.limits.database import DatabaseStore
from keys.models import QuotaCounter
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

pytestmark = pytest.mark.django_db(transaction=True)
QUOTA = 2000


@pytest.fixture(autouse=True)
def database_store(settings):
    settings.MLAPI_LIMITS_STORE = "database"
    settings.MLAPI_LIMITS_RESERVE_MAX = 16
    yield
    limits.get_store().close()


def principal_for(make_subscriber, quota: int = QUOTA) -> Principal:
    return Principal.for_subscription(
        make_subscriber(quota=quota, rate=1e6, burst=10**9, quota_period="month")
    )


def other_process() -> DatabaseStore:
    return DatabaseStore(reserve_max=16)


def test_a_busy_process_admits_from_reservations_and_the_counts_stay_exact(make_subscriber):
    principal = principal_for(make_subscriber)
    busy = other_process()
    try:
        steps = busy_steps(busy, principal, 300)
        assert held_units(busy, principal) > 0  # reservations were taken
        # Every admit reported its own count, one after the other, as without reservations.
        assert [s.used for s in steps] == list(range(1, 301))
        assert all(s.before == s.used - 1 for s in steps if s.before is not None)
        busy.reservations.give_back_all()
        assert counter(principal) == 300
        assert QuotaCounter.objects.get(subscription_id=principal.subscription_id).held == 0
    finally:
        busy.close()


def test_units_a_busy_process_reserved_come_back_so_another_gets_the_last_of_the_quota(
    make_subscriber,
):
    principal = principal_for(make_subscriber)
    busy = other_process()
    try:
        first = busy_admits(busy, principal, 300)
        assert held_units(busy, principal) > 0  # the test means something: units were reserved
        # The busy process goes quiet holding them; this one spends until refused.
        rest = spend(principal)
        assert first + rest == QUOTA == counter(principal)
        assert held_units(busy, principal) == 0
    finally:
        busy.close()


def test_a_refusal_waits_for_units_another_process_still_holds(make_subscriber):
    # Reservations end below 80 % of the quota, so with a small quota the other process can
    # reach the end while one still holds units: the refusal must wait for them, not strand them.
    principal = principal_for(make_subscriber, quota=200)
    holder = other_process()
    try:
        first = 0
        while not held_units(holder, principal):
            first += busy_admits(holder, principal, 1)
        assert first < 160
        for reservation in holder.reservations._held.values():  # its sweeper is late:
            reservation.until = time.monotonic() + 60  # only the refusal's waiting helps
        threading.Timer(0.3, holder.reservations.give_back_all).start()
        started = time.monotonic()
        rest = spend(principal)
        assert first + rest == 200 == counter(principal)
        assert 0.25 < time.monotonic() - started < reservations.HELD_S + 1
    finally:
        holder.close()


def test_a_process_that_dies_holding_a_reservation_strands_only_it_and_never_over_admits(
    make_subscriber,
):
    principal = principal_for(make_subscriber)
    dying = other_process()
    first = busy_admits(dying, principal, 300)
    stranded = held_units(dying, principal)
    assert 0 < stranded <= 16
    dying.reservations.discard()  # SIGKILL: nothing given back, QuotaCounter.held stays
    started = time.monotonic()
    rest = spend(principal)
    assert first + rest == QUOTA - stranded  # lost, never reused
    assert counter(principal) == QUOTA
    # The refusal waited for the dead holder no longer than the counter counts it.
    assert time.monotonic() - started < reservations.HELD_S + 5
    dying.close()


def test_tokens_a_busy_process_reserved_come_back_to_the_bucket(make_subscriber):
    plan = {"quota": 10**6, "rate": 0.001, "burst": 200, "quota_period": "month"}
    principal = Principal.for_subscription(make_subscriber(**plan))
    busy = other_process()
    try:
        assert busy_admits(busy, principal, 40) == 40
        time.sleep(reservations.WINDOW_S * 4)  # its sweeper gives back what it did not use
        rest = tokens_until_rate_limited(principal)
        assert 40 + rest == 200  # the burst exactly (the rate adds nothing in this time)
    finally:
        busy.close()


def test_a_batch_gets_the_units_this_process_holds(make_subscriber):
    principal = principal_for(make_subscriber)
    delivered = sum(s.admitted for s in busy_steps(limits.get_store(), principal, 300))
    assert held_units(limits.get_store(), principal) > 0
    limits.consume_quota(principal=principal, units=QUOTA - delivered)  # every unit left
    assert counter(principal) == QUOTA


def test_eight_threads_of_mixed_sizes_cross_every_threshold_with_reservations(make_subscriber):
    # Requests of 1-5 units each get their own reservation; none may hide a quota.threshold.
    principal = principal_for(make_subscriber, quota=1000)
    seen = spend_mixed_sizes(principal, threads=8)
    assert sum(size for _, _, size in seen) == 1000 == counter(principal)
    hits = {p for before, used, _ in seen for p in crossed(before=before, used=used, limit=1000)}
    assert hits == {80, 90, 100}
