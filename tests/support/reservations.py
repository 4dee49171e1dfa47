"""Driving a limits store as busy processes do (per-process reservations) and reading back
what it counted: shared by the invariant tests of every store."""

from __future__ import annotations

import random
import threading
import time

from django.db import connection

from keys import limits
from keys.limits.base import LimitsStore
from keys.models import QuotaCounter
from keys.principal import Principal


def spend(
    principal: Principal, *, limit: int | None = None, threads: int = 1, seen: list | None = None
) -> int:
    """Admit 1-unit requests until refused (or `limit` delivered); the units delivered.
    `seen` collects the (before, used) each admit reported."""
    delivered = [0] * threads

    def run(i: int) -> None:
        try:
            while limit is None or sum(delivered) < limit:
                try:
                    state = limits.admit(principal=principal, units=1)
                except limits.QuotaExceeded:
                    return
                delivered[i] += 1
                if seen is not None:
                    seen.append((state.before, state.used))
        finally:
            if threads > 1:
                connection.close()  # this thread's own connection

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return sum(delivered)


def counter(principal: Principal) -> int:
    return QuotaCounter.objects.get(subscription_id=principal.subscription_id).used


def limits_now(principal: Principal):
    return limits._limits(principal.subscription_id, principal.plan, time.time())


def busy_steps(store: LimitsStore, principal: Principal, n: int) -> list:
    """`n` back-to-back 1-unit admits in `store`'s process (reservations grow): their Steps."""
    return [store.admit(limits_now(principal), units=1, now=time.time()) for _ in range(n)]


def busy_admits(store: LimitsStore, principal: Principal, n: int) -> int:
    """Units delivered by `busy_steps`."""
    return sum(step.admitted for step in busy_steps(store, principal, n))


def held_units(store: LimitsStore, principal: Principal) -> int:
    return store.reservations.units_held(limits_now(principal))


def spend_mixed_sizes(principal: Principal, *, threads: int) -> list[tuple[int, int, int]]:
    """`threads` threads of 1-5-unit requests (1 after a refusal) until refused for quota:
    each admit's (before, used, units)."""
    seen: list[tuple[int, int, int]] = []
    lock = threading.Lock()

    def run(seed: int) -> None:
        rng, size_after_refusal = random.Random(seed), None
        try:
            while True:
                size = size_after_refusal or rng.randint(1, 5)
                try:
                    state = limits.admit(principal=principal, units=size)
                except limits.QuotaExceeded:
                    if size == 1:
                        return
                    size_after_refusal = 1
                    continue
                with lock:
                    seen.append((state.before, state.used, size))
        finally:
            connection.close()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return seen


def tokens_until_rate_limited(principal: Principal) -> int:
    """Single-unit admits until the bucket refuses: how many it gave."""
    taken = 0
    while True:
        try:
            limits.admit(principal=principal, units=1)
        except limits.RateLimited:
            return taken
        taken += 1
