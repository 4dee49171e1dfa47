"""Rate (token bucket) and quota (per calendar period, UTC) limits, per subscription, exact.

Where the state lives, and why:
* the quota is always in the database (`QuotaCounter`): Redis here keeps nothing on disk, and a
  restart must never hand a subscriber a fresh quota. One conditional upsert per request.
* the token bucket is in the database (`RateBucket`, one conditional upsert) by default, and in
  Redis (one Lua script) when REDIS_URL is set. In the database both statements share one
  transaction, so a request costs one commit.
If the store cannot be reached the request gets 503 `service_unavailable`; nothing fails open.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction

from keys import limits_db, limits_redis
from keys.principal import Principal
from mlapi.exceptions import QUOTA_PROBLEM_TYPE, DomainError, ServiceUnavailable

T = TypeVar("T")


def period_bounds(period: str, at: datetime) -> tuple[datetime, datetime]:
    """`[start, end)` of the calendar day, ISO week (from Monday) or month containing `at`, UTC."""
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else (start.replace(month=start.month + 1))
        )
        return start, end
    raise ValueError(f"unknown quota period {period!r}")


@dataclass(frozen=True, slots=True)
class LimitState:
    """The limits of one subscription right after a request's step, rendered as headers."""

    rate: float
    burst: int
    tokens: float
    quota: int  # the period's limit, extension included
    used: int
    period_start: datetime
    period_end: datetime
    now: float

    @property
    def remaining(self) -> int:
        return max(0, self.quota - self.used)

    @property
    def resets_in(self) -> int:
        return max(0, math.ceil(self.period_end.timestamp() - self.now))

    @property
    def token_wait(self) -> int:
        """Whole seconds until the bucket holds one more whole token (0 when full)."""
        if self.tokens >= self.burst:
            return 0
        return max(1, math.ceil((math.floor(self.tokens) + 1 - self.tokens) / self.rate))

    def headers(self) -> dict[str, str]:
        """CONTRACT section 5: RateLimit-Policy, RateLimit and the legacy trio (for the quota)."""
        window = round((self.period_end - self.period_start).total_seconds())
        return {
            "RateLimit-Policy": (
                f'"burst";q={self.burst};w=1, "quota";q={self.quota};w={window};qu="predictions"'
            ),
            "RateLimit": (
                f'"burst";r={max(0, math.floor(self.tokens))};t={self.token_wait}, '
                f'"quota";r={self.remaining};t={self.resets_in}'
            ),
            "RateLimit-Limit": str(self.quota),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.resets_in),
        }


class LimitError(DomainError):
    """A 429 that carries the limit state, so the reply still has every RateLimit header."""

    status = 429

    def __init__(self, detail: str, *, state: LimitState, retry_after: int, policy: str) -> None:
        headers = {**state.headers(), "Retry-After": str(max(1, retry_after))}
        super().__init__(detail, headers=headers, extra={"violated-policies": [policy]})
        self.state = state


class RateLimited(LimitError):
    code = "rate_limited"
    title = "Too many requests"


class QuotaExceeded(LimitError):
    code = "quota_exceeded"
    title = "Quota exceeded"
    problem_type = QUOTA_PROBLEM_TYPE


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """What `/api/v1/me` shows about the current quota period."""

    limit: int
    used: int
    remaining: int
    period: str
    period_start: datetime
    resets_at: datetime


def _guard(step: Callable[[], T]) -> T:
    """Run a database step; an unreachable database is a 503, never an open gate."""
    try:
        return step()
    except (OperationalError, InterfaceError) as exc:
        raise ServiceUnavailable(
            "The limits store is unavailable; try again shortly.", headers={"Retry-After": "1"}
        ) from exc


def _take(principal: Principal, now: float) -> limits_db.BucketResult:
    plan = principal.plan
    if settings.REDIS_URL:
        return limits_redis.take_token(
            subscription_id=principal.subscription_id, rate=plan.rate, burst=plan.burst
        )
    return limits_db.take_token(
        subscription_id=principal.subscription_id, rate=plan.rate, burst=plan.burst, now=now
    )


def _state(principal, tokens, used, extension, bounds, now) -> LimitState:
    plan = principal.plan
    return LimitState(
        plan.rate, plan.burst, tokens, plan.quota + extension, used, bounds[0], bounds[1], now
    )


def _rate_limited(state: LimitState) -> RateLimited:
    wait = math.ceil((1 - state.tokens) / state.rate) if state.tokens < 1 else 1
    return RateLimited(
        "Request rate over the plan's limit; slow down.",
        state=state,
        retry_after=wait,
        policy="burst",
    )


def _quota_exceeded(state: LimitState, units: int) -> QuotaExceeded:
    return QuotaExceeded(
        f"This request needs {units} predictions but {state.remaining} remain in the current "
        f"quota period, which resets at {state.period_end.isoformat()}.",
        state=state,
        retry_after=state.resets_in,
        policy="quota",
    )


def admit(*, principal: Principal, units: int) -> LimitState:
    """One atomic step: take one rate token, then `units` of quota; all or nothing on quota.

    Raises `RateLimited` (no quota used) or `QuotaExceeded` (the request's token stays taken).
    """
    if units < 1:
        raise ValueError("units must be positive")
    now = time.time()
    bounds = period_bounds(principal.plan.quota_period, datetime.fromtimestamp(now, UTC))
    sub_id, quota = principal.subscription_id, principal.plan.quota

    def both():
        bucket = _take(principal, now)
        if not bucket.allowed:
            return bucket, None
        return bucket, limits_db.consume_quota(
            subscription_id=sub_id, period_start=bounds[0], units=units, quota=quota
        )

    def step():
        if settings.REDIS_URL:  # the bucket is not in the database: nothing to group
            return both()
        if connection.vendor == "sqlite" and connection.get_autocommit():
            return limits_db.admit_sqlite(  # the same two statements, without atomic()'s cost
                subscription_id=sub_id,
                rate=principal.plan.rate,
                burst=principal.plan.burst,
                now=now,
                period_start=bounds[0],
                units=units,
                quota=quota,
            )
        with transaction.atomic():
            return both()

    bucket, consumed = _guard(step)
    if consumed is None:
        used, extension = _guard(
            lambda: limits_db.read_quota(subscription_id=sub_id, period_start=bounds[0])
        )
        raise _rate_limited(_state(principal, bucket.tokens, used, extension, bounds, now))
    ok, used, extension = consumed
    state = _state(principal, bucket.tokens, used, extension, bounds, now)
    if not ok:
        raise _quota_exceeded(state, units)
    return state


def take_token(*, principal: Principal) -> LimitState:
    """Take one rate token only (requests that predict nothing); raises `RateLimited`."""
    now = time.time()
    bounds = period_bounds(principal.plan.quota_period, datetime.fromtimestamp(now, UTC))

    bucket = _guard(lambda: _take(principal, now))
    used, extension = _guard(
        lambda: limits_db.read_quota(
            subscription_id=principal.subscription_id, period_start=bounds[0]
        )
    )
    state = _state(principal, bucket.tokens, used, extension, bounds, now)
    if not bucket.allowed:
        raise _rate_limited(state)
    return state


def peek(*, principal: Principal) -> LimitState:
    """The current state without consuming anything (headers on refused requests)."""
    now = time.time()
    plan = principal.plan
    bounds = period_bounds(plan.quota_period, datetime.fromtimestamp(now, UTC))
    if settings.REDIS_URL:
        tokens = limits_redis.peek_tokens(
            subscription_id=principal.subscription_id, rate=plan.rate, burst=plan.burst
        )
    else:
        tokens = _guard(
            lambda: limits_db.peek_tokens(
                subscription_id=principal.subscription_id,
                rate=plan.rate,
                burst=plan.burst,
                now=now,
            )
        )
    used, extension = _guard(
        lambda: limits_db.read_quota(
            subscription_id=principal.subscription_id, period_start=bounds[0]
        )
    )
    return _state(principal, tokens, used, extension, bounds, now)


def consume_quota(*, principal: Principal, units: int) -> datetime:
    """Quota only, no token (batch-job submission). Returns the period start, for `refund`."""
    now = time.time()
    bounds = period_bounds(principal.plan.quota_period, datetime.fromtimestamp(now, UTC))
    ok, used, extension = _guard(
        lambda: limits_db.consume_quota(
            subscription_id=principal.subscription_id,
            period_start=bounds[0],
            units=units,
            quota=principal.plan.quota,
        )
    )
    if not ok:
        tokens = float(principal.plan.burst)  # not consulted here; shown as-is in the headers
        raise _quota_exceeded(_state(principal, tokens, used, extension, bounds, now), units)
    return bounds[0]


def refund(*, principal: Principal, units: int, period_start: datetime) -> None:
    """Give back `units` of the period that started at `period_start` (server-side failure)."""
    if units > 0:
        _guard(
            lambda: limits_db.refund_quota(
                subscription_id=principal.subscription_id, period_start=period_start, units=units
            )
        )


def quota_status(*, subscription) -> QuotaStatus:
    """The live quota state of a `Subscription` (plan loaded) for the current period."""
    plan = subscription.plan
    start, end = period_bounds(plan.quota_period, datetime.now(UTC))
    used, extension = _guard(
        lambda: limits_db.read_quota(subscription_id=subscription.pk, period_start=start)
    )
    limit = plan.quota + extension
    return QuotaStatus(limit, used, max(0, limit - used), plan.quota_period, start, end)
