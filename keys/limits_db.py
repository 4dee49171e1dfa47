"""The atomic statements behind the limits, in SQL that SQLite (>= 3.35) and PostgreSQL share.

Each operation is one statement: an upsert whose `DO UPDATE ... WHERE` carries the condition,
so the check and the write are a single atomic step (never read, compare, write). PostgreSQL
re-evaluates the WHERE clause on the locked, latest row version; SQLite runs one writer at a
time. `RETURNING` hands back the new state for the headers without another query.

Only table names (constants from the models' meta) are formatted into the SQL; every value is
a bound parameter, hence the `noqa: S608` markers.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from keys.models import QuotaCounter, RateBucket

BUCKET = RateBucket._meta.db_table
COUNTER = QuotaCounter._meta.db_table


def _take_sql() -> str:
    least, greatest = _least(), _greatest()
    refilled = f"{least}(%s, {BUCKET}.tokens + {greatest}(0, %s - {BUCKET}.updated_at) * %s)"
    return (
        f"INSERT INTO {BUCKET} (subscription_id, tokens, updated_at) VALUES (%s, %s, %s) "  # noqa: S608
        f"ON CONFLICT (subscription_id) DO UPDATE SET tokens = {refilled} - 1, "
        f"updated_at = {greatest}({BUCKET}.updated_at, %s) "
        f"WHERE {refilled} >= 1 RETURNING tokens"
    )


def _take_params(subscription_id: int, rate: float, burst: int, now: float) -> list:
    return [subscription_id, float(burst) - 1, now, burst, now, rate, now, burst, now, rate]


def _consume_sql(fits_plan: bool) -> str:
    if fits_plan:
        return (
            f"INSERT INTO {COUNTER} (subscription_id, period_start, used, extension) "  # noqa: S608
            f"VALUES (%s, %s, %s, 0) ON CONFLICT (subscription_id, period_start) "
            f"DO UPDATE SET used = {COUNTER}.used + %s "
            f"WHERE {COUNTER}.used + %s <= %s + {COUNTER}.extension RETURNING used, extension"
        )
    # only an operator's extension could make room, and then the row already exists
    return (
        f"UPDATE {COUNTER} SET used = used + %s WHERE subscription_id = %s "  # noqa: S608
        f"AND period_start = %s AND used + %s <= %s + extension RETURNING used, extension"
    )


def _consume_params(subscription_id: int, start, units: int, quota: int) -> list:
    if units <= quota:
        return [subscription_id, start, units, units, units, quota]
    return [units, subscription_id, start, units, quota]


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
    with connection.cursor() as cursor:
        cursor.execute(_take_sql(), _take_params(subscription_id, rate, burst, now))
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
        return _refilled(cursor.fetchone(), rate, burst, now)


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
    with connection.cursor() as cursor:
        cursor.execute(
            _consume_sql(units <= quota), _consume_params(subscription_id, start, units, quota)
        )
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


@functools.cache
def _sqlite_statements() -> dict[str, str]:
    """The statements above with sqlite3's `?` placeholders."""
    return {
        "take": _take_sql().replace("%s", "?"),
        "consume": _consume_sql(True).replace("%s", "?"),
        "consume_extension": _consume_sql(False).replace("%s", "?"),
        "peek": f"SELECT tokens, updated_at FROM {BUCKET} WHERE subscription_id = ?",  # noqa: S608
        "read": (
            f"SELECT used, extension FROM {COUNTER} "  # noqa: S608
            f"WHERE subscription_id = ? AND period_start = ?"
        ),
    }


def admit_sqlite(
    *,
    subscription_id: int,
    rate: float,
    burst: int,
    now: float,
    period_start: datetime,
    units: int,
    quota: int,
) -> tuple[BucketResult, tuple[bool, int, int] | None]:
    """`take_token` then `consume_quota` in one `BEGIN IMMEDIATE` ... `COMMIT`, on SQLite.

    The same statements as the functions above, sent straight to the sqlite3 connection:
    Django's atomic() and cursor wrappers cost more than the two upserts themselves (profile in
    docs/performance.md). Only for a connection in autocommit mode outside any atomic block
    (the caller checks), so the transaction is ours alone; errors come out as Django's
    (`wrap_database_errors`), so a locked or broken database still becomes a 503 upstream.
    Returns `(bucket, None)` when no token was left (no quota touched), else
    `(bucket, (consumed, used, extension))`.
    """
    connection.ensure_connection()
    raw = connection.connection
    with _writers_queue(connection.settings_dict["NAME"]), connection.wrap_database_errors:
        raw.execute("BEGIN IMMEDIATE")
        try:
            result = _admit_statements(
                raw, subscription_id, rate, burst, now, _period_param(period_start), units, quota
            )
            raw.execute("COMMIT")
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise
    return result


_thread_lock = threading.Lock()
_lock_files: dict[tuple[int, str], int] = {}  # by pid too: a forked child opens its own


@contextlib.contextmanager
def _writers_queue(database: str) -> Iterator[None]:
    """Queue this process's and other processes' admits on a lock the kernel hands over at once.

    Two admits that meet on SQLite's write lock wait in SQLite's busy handler, which sleeps
    1, 2, 5, 10 ms... between tries: under load that sleeping was most of admit's time (py-spy,
    docs/performance.md). An exclusive `flock` on `<database>.admit-lock` (plus a thread lock,
    since flock does not exclude threads sharing one descriptor) wakes the next admit as soon
    as the previous one commits. Other writers still meet admits on SQLite's own lock, as before.
    """
    fd = _lock_files.get((os.getpid(), database))
    if fd is None:
        if not database or database == ":memory:" or str(database).startswith("file:"):
            yield  # no file to lock beside; SQLite's lock alone
            return
        fd = _lock_files.setdefault(
            (os.getpid(), database),
            os.open(f"{database}.admit-lock", os.O_RDWR | os.O_CREAT, 0o600),
        )
    with _thread_lock:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def _admit_statements(raw, subscription_id, rate, burst, now, start, units, quota):
    sql = _sqlite_statements()
    row = raw.execute(sql["take"], _take_params(subscription_id, rate, burst, now)).fetchone()
    if row is None:
        peeked = raw.execute(sql["peek"], (subscription_id,)).fetchone()
        return BucketResult(False, _refilled(peeked, rate, burst, now)), None
    bucket = BucketResult(True, float(row[0]))
    consume = sql["consume"] if units <= quota else sql["consume_extension"]
    row = raw.execute(consume, _consume_params(subscription_id, start, units, quota)).fetchone()
    if row is not None:
        return bucket, (True, int(row[0]), int(row[1]))
    current = raw.execute(sql["read"], (subscription_id, start)).fetchone()
    used, extension = (int(current[0]), int(current[1])) if current else (0, 0)
    return bucket, (False, used, extension)


def _refilled(row, rate: float, burst: int, now: float) -> float:
    """Tokens at `now` from a `(tokens, updated_at)` row (a full bucket when there is none)."""
    if row is None:
        return float(burst)
    return min(float(burst), float(row[0]) + max(0.0, now - float(row[1])) * rate)
