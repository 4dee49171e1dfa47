"""Rate (token bucket) and quota (per calendar period, UTC) limits, per subscription, exact.

The functions here are what the rest of mlapi calls; they build the subscription's `Limits`,
ask the store chosen from the settings (`MLAPI_LIMITS_STORE`), and turn its answer into a
`LimitState` (the RateLimit headers) or a 429. Stores (one module each, keys.limits.base for
the interface):
* `database` (keys.limits.database): bucket and quota rows in the database, one transaction
  per admit. The default without REDIS_URL; on SQLite the direct, flock-queued path.
* `redis` (keys.limits.redis_leases): the default with REDIS_URL. Bucket and quota pools in
  Redis, the pools filled by durable leases from the database, so an admit is one Lua call and
  the database still counts every unit before it can be used.
If a store cannot be reached the request gets 503 `service_unavailable`; nothing fails open.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import InterfaceError, OperationalError

from keys.limits.base import Limits, LimitsStore, Outcome, Step
from keys.limits.state import (
    LimitError,
    LimitState,
    QuotaExceeded,
    QuotaStatus,
    RateLimited,
    period_bounds,
    quota_exceeded,
    rate_limited,
)
from keys.principal import Principal
from mlapi.exceptions import ServiceUnavailable

__all__ = [
    "LimitError", "LimitState", "LimitsStore", "QuotaExceeded", "QuotaStatus", "RateLimited",
    "admit", "close_stores", "consume_quota", "forget_reservations", "get_store", "peek",
    "period_bounds", "quota_status", "refund", "take_token",
]  # fmt: skip

T = TypeVar("T")
STORES = ("auto", "database", "redis")
_stores: dict[tuple, LimitsStore] = {}
_stores_lock = threading.Lock()


def get_store() -> LimitsStore:
    """The store the settings name, built once per distinct configuration."""
    name = getattr(settings, "MLAPI_LIMITS_STORE", "auto") or "auto"
    url = settings.REDIS_URL
    key = (name, url)
    store = _stores.get(key)
    if store is None:
        with _stores_lock:
            store = _stores.get(key) or _stores.setdefault(key, _build_store(name, url))
    return store


def close_stores() -> None:
    """Give back what this process holds (reservations) and close its connections: a web or
    gRPC process that stops leaves no unit behind."""
    for store in list(_stores.values()):
        try:
            store.close()
        except Exception:  # exiting anyway: the units are then lost, never reused
            logging.getLogger("mlapi.limits").exception("closing the limits store failed")


def forget_reservations() -> None:
    """Drop this process's reservations without giving them back (tests that wipe Redis)."""
    for store in list(_stores.values()):
        reservations = getattr(store, "reservations", None)
        if reservations is not None:
            reservations.discard()


def _build_store(name: str, url: str) -> LimitsStore:
    if name not in STORES:
        raise ImproperlyConfigured(f"MLAPI_LIMITS_STORE must be one of {STORES}, not {name!r}")
    if name == "auto":
        name = "redis" if url else "database"
    if name == "database":
        from keys.limits.database import DatabaseStore

        return DatabaseStore(reserve_max=int(settings.MLAPI_LIMITS_RESERVE_MAX))
    if not url:
        raise ImproperlyConfigured("MLAPI_LIMITS_STORE=redis needs REDIS_URL")
    from keys.limits.redis_leases import RedisLeaseStore

    return RedisLeaseStore(
        url,
        lease_fraction=float(settings.MLAPI_LIMITS_LEASE_FRACTION),
        lease_max=int(settings.MLAPI_LIMITS_LEASE_MAX),
        reserve_max=int(settings.MLAPI_LIMITS_RESERVE_MAX),
    )


def _guard(step: Callable[[], T]) -> T:
    """Run a store step; an unreachable database is a 503, never an open gate."""
    try:
        return step()
    except (OperationalError, InterfaceError) as exc:
        raise ServiceUnavailable(
            "The limits store is unavailable; try again shortly.", headers={"Retry-After": "1"}
        ) from exc


def _limits(subscription_id: int, plan, now: float) -> Limits:
    start, end = period_bounds(plan.quota_period, datetime.fromtimestamp(now, UTC))
    return Limits(subscription_id, float(plan.rate), int(plan.burst), int(plan.quota), start, end)


def _state(limits: Limits, step: Step, now: float, units: int = 0) -> LimitState:
    return LimitState(
        limits.rate,
        limits.burst,
        step.tokens,
        limits.quota + step.extension,
        step.used,
        limits.period_start,
        limits.period_end,
        now,
        step.used - units if step.before is None else step.before,
    )


def _decide(limits: Limits, step: Step, now: float, units: int) -> LimitState:
    state = _state(limits, step, now, units if step.admitted else 0)
    if step.outcome is Outcome.RATE_LIMITED:
        raise rate_limited(state)
    if step.outcome is Outcome.QUOTA_EXCEEDED:
        raise quota_exceeded(state, units)
    return state


def admit(*, principal: Principal, units: int) -> LimitState:
    """One atomic step: take one rate token, then `units` of quota; all or nothing on quota.

    Raises `RateLimited` (no quota used) or `QuotaExceeded` (the request's token stays taken).
    """
    if units < 1:
        raise ValueError("units must be positive")
    now = time.time()
    limits = _limits(principal.subscription_id, principal.plan, now)
    step = _guard(lambda: get_store().admit(limits, units=units, now=now))
    return _decide(limits, step, now, units)


def take_token(*, principal: Principal) -> LimitState:
    """Take one rate token only (requests that predict nothing); raises `RateLimited`."""
    now = time.time()
    limits = _limits(principal.subscription_id, principal.plan, now)
    step = _guard(lambda: get_store().admit(limits, units=0, now=now))
    return _decide(limits, step, now, 0)


def peek(*, principal: Principal) -> LimitState:
    """The current state without consuming anything (headers on refused requests)."""
    now = time.time()
    limits = _limits(principal.subscription_id, principal.plan, now)
    return _state(limits, _guard(lambda: get_store().peek(limits, now=now)), now)


def consume_quota(*, principal: Principal, units: int) -> datetime:
    """Quota only, no token (batch-job submission). Returns the period start, for `refund`."""
    now = time.time()
    limits = _limits(principal.subscription_id, principal.plan, now)
    step = _guard(lambda: get_store().consume(limits, units=units))
    _decide(limits, step, now, units)
    return limits.period_start


def refund(*, principal: Principal, units: int, period_start: datetime) -> None:
    """Give back `units` of the period that started at `period_start` (server-side failure)."""
    if units > 0:
        limits = _limits(principal.subscription_id, principal.plan, time.time())
        _guard(lambda: get_store().refund(limits, units=units, period_start=period_start))


def quota_status(*, subscription) -> QuotaStatus:
    """The live quota state of a `Subscription` (plan loaded) for the current period."""
    now = time.time()
    plan = subscription.plan
    limits = _limits(subscription.pk, plan, now)
    step = _guard(lambda: get_store().peek(limits, now=now))
    limit = limits.quota + step.extension
    return QuotaStatus(
        limit,
        step.used,
        max(0, limit - step.used),
        plan.quota_period,
        limits.period_start,
        limits.period_end,
    )
