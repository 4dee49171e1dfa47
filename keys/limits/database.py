"""The database store: bucket and quota both in the database (SQLite or PostgreSQL).

The default without Redis. An admit is the bucket upsert then the quota upsert in one
transaction, so it costs one commit. On SQLite, a request (autocommit, no atomic block open)
takes the direct path of `keys.limits.sqlite`; everywhere else Django's `atomic()`.
A busy process also takes a reservation with its admit (keys.limits.reservations): more tokens
and units in the same transaction, served from memory for 50 ms, so most admits of a hot
subscription cost no transaction at all; a refusal for quota waits while other processes'
reservations are out (`QuotaCounter.held`), so no unit is stranded in one of them.
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import datetime

from django.db import DatabaseError, connection, transaction

from keys.limits import sql
from keys.limits.base import Limits, LimitsStore, Outcome, Step
from keys.limits.reservations import (
    HELD_S,
    RESERVE_BELOW_PERCENT,
    WINDOW_S,
    Reservation,
    Reservations,
)
from keys.limits.sqlite import Execute, run_in_sqlite_transaction
from mlapi.exceptions import ServiceUnavailable

logger = logging.getLogger("mlapi.limits")
POLL_S = 0.005  # a refusal for quota re-checks this often while reservations are out


def execute(name: str, params: dict, fetch: bool = True) -> tuple | None:
    """One statement through Django's connection (in the caller's transaction, if any)."""
    with connection.cursor() as cursor:
        cursor.execute(sql.sql(name), params)
        return cursor.fetchone() if fetch else None


def in_transaction(work):
    """`work(execute)` in one transaction: SQLite's direct path when no atomic block is open."""
    if connection.vendor == "sqlite" and connection.get_autocommit():
        return run_in_sqlite_transaction(work)
    with transaction.atomic():
        return work(execute)


def take_token(*, subscription_id: int, rate: float, burst: int, now: float) -> float | None:
    """Take one token, refilling lazily at `rate` up to `burst`; the tokens left, or None.

    `now` is epoch seconds. A clock that goes backwards (another process read the time a little
    earlier) refills nothing and never moves `updated_at` back, so it can only under-admit.
    """
    row = execute("take", sql.bucket_params(subscription_id, rate, burst, now))
    return None if row is None else float(row[0])


def peek_tokens(*, subscription_id: int, rate: float, burst: int, now: float) -> float:
    """Tokens in the bucket at `now`, without taking any (a full bucket if it has no row)."""
    return sql.refilled(execute("peek_bucket", {"sub": subscription_id}), rate, burst, now)


def _period(subscription_id: int, period_start: datetime) -> dict:
    return {"sub": subscription_id, "start": sql.period_param(period_start)}


def consume_quota(
    *, subscription_id: int, period_start: datetime, units: int, quota: int
) -> tuple[bool, int, int]:
    """Add `units` to the period's counter if `used + units <= quota + extension`.

    Returns `(consumed, used, extension)` as they are after the statement. The period's row is
    created race-free by the unique constraint (the INSERT arm of the upsert).
    """
    params = {**_period(subscription_id, period_start), "units": units, "quota": quota}
    row = execute(sql.consume_statement(units, quota), params)
    if row is not None:
        return True, int(row[0]), int(row[1])
    used, extension = read_quota(subscription_id=subscription_id, period_start=period_start)
    return False, used, extension


def read_quota(*, subscription_id: int, period_start: datetime) -> tuple[int, int]:
    """`(used, extension)` of the period's counter; zeros when nothing was used yet."""
    return _read(execute, _period(subscription_id, period_start))


def refund_quota(*, subscription_id: int, period_start: datetime, units: int) -> None:
    """Give back units taken from the counter (never below zero)."""
    params = {**_period(subscription_id, period_start), "units": units}
    execute("refund", params, fetch=False)


def _read(run: Execute, period: dict) -> tuple[int, int]:
    row = run("read", period)
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _held_elsewhere(held: int, held_until: float, now: float) -> bool:
    """Reservations are out (`QuotaCounter.held`), and not only a dead holder's stale count."""
    return held > 0 and held_until > now


class HeldElsewhere(Exception):
    """A refusal for quota while reservations are out: roll back, wait, try again."""


def admit_in_transaction(
    run: Execute, limits: Limits, units: int, now: float, *, reserve: int, spent: bool, wait: bool
) -> tuple[Step, int, int]:
    """The admit's statements; `(step, tokens reserved, units reserved)` for this process.

    `reserve` more tokens (and `reserve * units` more units) are taken only while the bucket
    keeps half the burst and the count stays below the first quota.threshold; `spent`: this
    process's previous reservation was used up (no longer out). `wait`: a refusal for quota
    while other reservations are out raises HeldElsewhere instead (nothing is committed).
    """
    sub, rate, burst = limits.subscription_id, limits.rate, limits.burst
    period = _period(sub, limits.period_start)
    row = None
    if reserve:
        row = run("take", sql.bucket_params(sub, rate, burst, now, 1 + reserve, burst / 2))
    if row is None:
        reserve = 0
        row = run("take", sql.bucket_params(sub, rate, burst, now))
    if spent:
        run("unreserve", {**period, "units": 0}, fetch=False)
    if row is None:
        tokens = sql.refilled(run("peek_bucket", {"sub": sub}), rate, burst, now)
        return Step(Outcome.RATE_LIMITED, tokens, *_read(run, period)), 0, 0
    tokens = float(row[0])
    if units == 0:
        return Step(Outcome.ADMITTED, tokens + reserve, *_read(run, period)), reserve, 0
    params = {**period, "units": units, "quota": limits.quota}
    row = run(sql.consume_statement(units, limits.quota), params)
    if row is None:
        used, extension, held, held_until = run("read", period) or (0, 0, 0, 0.0)
        if wait and _held_elsewhere(held, held_until, now):
            raise HeldElsewhere
        if reserve:
            run("give_tokens", sql.bucket_params(sub, rate, burst, now, reserve), fetch=False)
        return Step(Outcome.QUOTA_EXCEEDED, tokens + reserve, int(used), int(extension)), 0, 0
    used, extension = int(row[0]), int(row[1])
    held_units = reserve * units
    if reserve:
        reserved = run("reserve_units", {
            **params, "units": held_units, "below": RESERVE_BELOW_PERCENT, "now": now,
            "until": now + HELD_S,
        })  # fmt: skip
        if reserved is None:
            run("give_tokens", sql.bucket_params(sub, rate, burst, now, reserve), fetch=False)
            reserve = held_units = 0
    step = Step(Outcome.ADMITTED, tokens + reserve, used, extension, used - units)
    return step, reserve, held_units


class DatabaseStore(LimitsStore):
    """Bucket (`RateBucket`) and quota (`QuotaCounter`) rows, one transaction per admit
    (fewer for a busy process: reservations)."""

    name = "database"

    def __init__(self, *, reserve_max: int = 0) -> None:
        self.reservations = Reservations(self._unreserve, size_max=reserve_max)

    def admit(self, limits: Limits, *, units: int, now: float) -> Step:
        step = self.reservations.take(limits, units)
        if step is not None:
            return step
        reserve, spent = self.reservations.size_for(limits, units)
        reserve = max(0, min(reserve, int(limits.burst // 2) - 1))
        deadline = None
        while True:
            work = functools.partial(
                admit_in_transaction,
                limits=limits,
                units=units,
                now=now,
                reserve=reserve,
                spent=bool(spent),
                wait=deadline is None or time.monotonic() < deadline,
            )
            try:
                step, tokens, held_units = in_transaction(work)
                break
            except HeldElsewhere:  # units may come back within 50 ms: never refuse meanwhile
                deadline = deadline or time.monotonic() + HELD_S
                self.reservations.give_back_all()
                time.sleep(POLL_S)
                now = time.time()
        if tokens or held_units:
            self.reservations.keep(
                Reservation(
                    token="held" if held_units else "",  # counted in QuotaCounter.held
                    limits=limits,
                    units_each=units,
                    tokens=tokens,
                    units=held_units,
                    used=step.used,
                    bucket=step.tokens - tokens,
                    extension=step.extension,
                    until=time.monotonic() + WINDOW_S,
                )
            )
        return step

    def consume(self, limits: Limits, *, units: int) -> Step:
        """In the caller's transaction. Short while reservations are out: this process's come
        back at once; other processes' cannot be waited for inside a transaction (it holds the
        counter), so the batch gets a 503 to retry rather than a 429 it does not deserve."""
        args = dict(
            subscription_id=limits.subscription_id,
            period_start=limits.period_start,
            units=units,
            quota=limits.quota,
        )
        ok, used, extension = consume_quota(**args)
        if not ok and self.reservations.units_held(limits):
            self.reservations.give_back_all()
            ok, used, extension = consume_quota(**args)
        if not ok:
            row = execute("read", _period(limits.subscription_id, limits.period_start))
            if row and _held_elsewhere(row[2], row[3], time.time()):
                raise ServiceUnavailable(
                    "Part of the quota is reserved by requests in flight; try again in a second.",
                    headers={"Retry-After": "1"},
                )
        outcome = Outcome.ADMITTED if ok else Outcome.QUOTA_EXCEEDED
        return Step(outcome, float(limits.burst), used, extension)

    def refund(self, limits: Limits, *, units: int, period_start: datetime) -> None:
        refund_quota(subscription_id=limits.subscription_id, period_start=period_start, units=units)

    def peek(self, limits: Limits, *, now: float) -> Step:
        sub = limits.subscription_id
        tokens = peek_tokens(subscription_id=sub, rate=limits.rate, burst=limits.burst, now=now)
        used, extension = read_quota(subscription_id=sub, period_start=limits.period_start)
        # This process's reservations are not delivered; other processes' count as used until
        # they come back (within 50 ms).
        used -= self.reservations.units_held(limits)
        return Step(Outcome.ADMITTED, tokens, max(0, used), extension)

    def close(self) -> None:
        self.reservations.give_back_all()

    def _unreserve(self, held: Reservation) -> None:
        """Give back what a reservation did not use: tokens to the bucket, units to the counter
        (and it is no longer out). Lost if the database cannot be reached: under-admission,
        never more."""
        limits = held.limits

        def work(run: Execute) -> None:
            now = time.time()
            if held.tokens > 0:
                params = sql.bucket_params(
                    limits.subscription_id, limits.rate, limits.burst, now, held.tokens
                )
                run("give_tokens", params, fetch=False)
            if held.token:
                period = _period(limits.subscription_id, limits.period_start)
                run("unreserve", {**period, "units": held.units}, fetch=False)

        try:
            in_transaction(work)
        except DatabaseError:
            logger.warning("could not give a reservation back; its units are lost", exc_info=True)
