"""The atomic statements behind the limits, in SQL that SQLite (>= 3.35) and PostgreSQL share.

Each operation is one statement: an upsert whose `DO UPDATE ... WHERE` carries the condition,
so the check and the write are a single atomic step (never read, compare, write). PostgreSQL
re-evaluates the WHERE clause on the locked, latest row version; SQLite runs one writer at a
time. `RETURNING` hands back the new state for the headers without another query.

Only table names (constants from the models' meta) are formatted into the SQL; every value is
a bound parameter, hence the `noqa: S608` markers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from keys.models import QuotaCounter, RateBucket

BUCKET = RateBucket._meta.db_table
COUNTER = QuotaCounter._meta.db_table


@dataclass(frozen=True, slots=True)
class BucketResult:
    """Whether a token was taken, and the tokens left (fractional) afterwards."""

    allowed: bool
    tokens: float


def _least() -> str:
    return "MIN" if connection.vendor == "sqlite" else "LEAST"


def _greatest() -> str:
    return "MAX" if connection.vendor == "sqlite" else "GREATEST"


def take_token(*, subscription_id: int, rate: float, burst: int, now: float) -> BucketResult:
    """Take one token from the subscription's bucket, refilling lazily at `rate` up to `burst`.

    `now` is epoch seconds. A clock that goes backwards (another process read the time a little
    earlier) refills nothing and never moves `updated_at` back, so it can only under-admit.
    """
    least, greatest = _least(), _greatest()
    refilled = f"{least}(%s, {BUCKET}.tokens + {greatest}(0, %s - {BUCKET}.updated_at) * %s)"
    sql = (
        f"INSERT INTO {BUCKET} (subscription_id, tokens, updated_at) VALUES (%s, %s, %s) "  # noqa: S608
        f"ON CONFLICT (subscription_id) DO UPDATE SET tokens = {refilled} - 1, "
        f"updated_at = {greatest}({BUCKET}.updated_at, %s) "
        f"WHERE {refilled} >= 1 RETURNING tokens"
    )
    params = [subscription_id, float(burst) - 1, now, burst, now, rate, now, burst, now, rate]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is not None:
        return BucketResult(True, float(row[0]))
    return BucketResult(
        False, peek_tokens(subscription_id=subscription_id, rate=rate, burst=burst, now=now)
    )


def peek_tokens(*, subscription_id: int, rate: float, burst: int, now: float) -> float:
    """Tokens in the bucket at `now`, without taking any (a full bucket if it has no row)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tokens, updated_at FROM {BUCKET} WHERE subscription_id = %s",  # noqa: S608
            [subscription_id],
        )
        row = cursor.fetchone()
    if row is None:
        return float(burst)
    tokens, updated_at = float(row[0]), float(row[1])
    return min(float(burst), tokens + max(0.0, now - updated_at) * rate)


def _period_param(period_start: datetime):
    return connection.ops.adapt_datetimefield_value(period_start)


def consume_quota(
    *, subscription_id: int, period_start: datetime, units: int, quota: int
) -> tuple[bool, int, int]:
    """Add `units` to the period's counter if `used + units <= quota + extension`.

    Returns `(consumed, used, extension)` as they are after the statement. The period's row is
    created race-free by the unique constraint (the INSERT arm of the upsert).
    """
    start = _period_param(period_start)
    if units <= quota:
        sql = (
            f"INSERT INTO {COUNTER} (subscription_id, period_start, used, extension) "  # noqa: S608
            f"VALUES (%s, %s, %s, 0) ON CONFLICT (subscription_id, period_start) "
            f"DO UPDATE SET used = {COUNTER}.used + %s "
            f"WHERE {COUNTER}.used + %s <= %s + {COUNTER}.extension RETURNING used, extension"
        )
        params = [subscription_id, start, units, units, units, quota]
    else:  # only an operator's extension could make room, and then the row already exists
        sql = (
            f"UPDATE {COUNTER} SET used = used + %s WHERE subscription_id = %s "  # noqa: S608
            f"AND period_start = %s AND used + %s <= %s + extension RETURNING used, extension"
        )
        params = [units, subscription_id, start, units, quota]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is not None:
        return True, int(row[0]), int(row[1])
    used, extension = read_quota(subscription_id=subscription_id, period_start=period_start)
    return False, used, extension


def read_quota(*, subscription_id: int, period_start: datetime) -> tuple[int, int]:
    """`(used, extension)` of the period's counter; zeros when nothing was used yet."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT used, extension FROM {COUNTER} WHERE subscription_id = %s "  # noqa: S608
            f"AND period_start = %s",
            [subscription_id, _period_param(period_start)],
        )
        row = cursor.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def refund_quota(*, subscription_id: int, period_start: datetime, units: int) -> None:
    """Give back units consumed by a request that then failed on the server side."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {COUNTER} SET used = used - %s WHERE subscription_id = %s "  # noqa: S608
            f"AND period_start = %s AND used >= %s",
            [units, subscription_id, _period_param(period_start), units],
        )
