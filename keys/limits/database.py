"""The database store: bucket and quota both in the database (SQLite or PostgreSQL).

The default without Redis. An admit is the bucket upsert then the quota upsert in one
transaction, so it costs one commit. On SQLite, a request (autocommit, no atomic block open)
takes the direct path of `keys.limits.sqlite`; everywhere else Django's `atomic()`.
On PostgreSQL every admit waits for one durable commit on the subscription's row: exact, and
as fast as the disk's flush allows (see keys.limits.redis_leases for the fast store).
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection, transaction

from keys.limits import sql
from keys.limits.base import Limits, LimitsStore, Outcome, Step
from keys.limits.sqlite import admit_sqlite


def take_token(*, subscription_id: int, rate: float, burst: int, now: float) -> float | None:
    """Take one token, refilling lazily at `rate` up to `burst`; the tokens left, or None.

    `now` is epoch seconds. A clock that goes backwards (another process read the time a little
    earlier) refills nothing and never moves `updated_at` back, so it can only under-admit.
    """
    with connection.cursor() as cursor:
        cursor.execute(sql.sql("take"), sql.bucket_params(subscription_id, rate, burst, now))
        row = cursor.fetchone()
    return None if row is None else float(row[0])


def peek_tokens(*, subscription_id: int, rate: float, burst: int, now: float) -> float:
    """Tokens in the bucket at `now`, without taking any (a full bucket if it has no row)."""
    with connection.cursor() as cursor:
        cursor.execute(sql.sql("peek_bucket"), {"sub": subscription_id})
        return sql.refilled(cursor.fetchone(), rate, burst, now)


def consume_quota(
    *, subscription_id: int, period_start: datetime, units: int, quota: int
) -> tuple[bool, int, int]:
    """Add `units` to the period's counter if `used + units <= quota + extension`.

    Returns `(consumed, used, extension)` as they are after the statement. The period's row is
    created race-free by the unique constraint (the INSERT arm of the upsert).
    """
    params = {
        "sub": subscription_id,
        "start": sql.period_param(period_start),
        "units": units,
        "quota": quota,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql.sql(sql.consume_statement(units, quota)), params)
        row = cursor.fetchone()
    if row is not None:
        return True, int(row[0]), int(row[1])
    used, extension = read_quota(subscription_id=subscription_id, period_start=period_start)
    return False, used, extension


def read_quota(*, subscription_id: int, period_start: datetime) -> tuple[int, int]:
    """`(used, extension)` of the period's counter; zeros when nothing was used yet."""
    with connection.cursor() as cursor:
        cursor.execute(
            sql.sql("read"), {"sub": subscription_id, "start": sql.period_param(period_start)}
        )
        row = cursor.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def refund_quota(*, subscription_id: int, period_start: datetime, units: int) -> None:
    """Give back units taken from the counter (never below zero)."""
    with connection.cursor() as cursor:
        cursor.execute(
            sql.sql("refund"),
            {"sub": subscription_id, "start": sql.period_param(period_start), "units": units},
        )


class DatabaseStore(LimitsStore):
    """Bucket (`RateBucket`) and quota (`QuotaCounter`) rows, one transaction per admit."""

    name = "database"

    def admit(self, limits: Limits, *, units: int, now: float) -> Step:
        if connection.vendor == "sqlite" and connection.get_autocommit():
            return admit_sqlite(limits, units=units, now=now)
        with transaction.atomic():
            return self._admit(limits, units, now)

    def _admit(self, limits: Limits, units: int, now: float) -> Step:
        sub = limits.subscription_id
        tokens = take_token(subscription_id=sub, rate=limits.rate, burst=limits.burst, now=now)
        if tokens is None:
            tokens = peek_tokens(subscription_id=sub, rate=limits.rate, burst=limits.burst, now=now)
            used, extension = read_quota(subscription_id=sub, period_start=limits.period_start)
            return Step(Outcome.RATE_LIMITED, tokens, used, extension)
        if units == 0:
            used, extension = read_quota(subscription_id=sub, period_start=limits.period_start)
            return Step(Outcome.ADMITTED, tokens, used, extension)
        ok, used, extension = consume_quota(
            subscription_id=sub, period_start=limits.period_start, units=units, quota=limits.quota
        )
        return Step(Outcome.ADMITTED if ok else Outcome.QUOTA_EXCEEDED, tokens, used, extension)

    def consume(self, limits: Limits, *, units: int) -> Step:
        ok, used, extension = consume_quota(
            subscription_id=limits.subscription_id,
            period_start=limits.period_start,
            units=units,
            quota=limits.quota,
        )
        return Step(
            Outcome.ADMITTED if ok else Outcome.QUOTA_EXCEEDED, float(limits.burst), used, extension
        )

    def refund(self, limits: Limits, *, units: int, period_start: datetime) -> None:
        refund_quota(subscription_id=limits.subscription_id, period_start=period_start, units=units)

    def peek(self, limits: Limits, *, now: float) -> Step:
        sub = limits.subscription_id
        tokens = peek_tokens(subscription_id=sub, rate=limits.rate, burst=limits.burst, now=now)
        used, extension = read_quota(subscription_id=sub, period_start=limits.period_start)
        return Step(Outcome.ADMITTED, tokens, used, extension)
