"""The limits' SQL, with named parameters, in the dialect SQLite (>= 3.35) and PostgreSQL share.

Each check-and-write is one statement: an upsert or UPDATE whose WHERE carries the condition,
so the check and the write are one atomic step (never read, compare, write). PostgreSQL
re-evaluates the WHERE clause on the locked, latest row version; SQLite runs one writer at a
time. `RETURNING` hands back the new state for the headers without another query.

Only table names (constants from the models' meta) and SQL function names are formatted into
the text; every value is a bound parameter, hence the `noqa: S608` markers.
"""

from __future__ import annotations

import functools
from datetime import datetime

from django.db import connection

from keys.models import QuotaCounter, RateBucket

BUCKET = RateBucket._meta.db_table
COUNTER = QuotaCounter._meta.db_table
WHERE_PERIOD = "subscription_id = %(sub)s AND period_start = %(start)s"


@functools.cache
def statements(vendor: str) -> dict[str, str]:
    """Every statement for `vendor` ("sqlite" or "postgresql"), `%(name)s` placeholders."""
    least, greatest = ("MIN", "MAX") if vendor == "sqlite" else ("LEAST", "GREATEST")
    refilled = (
        f"{least}(%(burst)s, {BUCKET}.tokens + {greatest}(0, %(now)s - {BUCKET}.updated_at) "
        f"* %(rate)s)"
    )
    lock = "" if vendor == "sqlite" else " FOR UPDATE"  # SQLite: atomic() is BEGIN IMMEDIATE
    return {
        # `n` tokens (1, or 1 + a reservation's), leaving at least `floor` in the bucket; a
        # missing row is a full bucket (a reservation is never larger than half the burst).
        "take": (
            f"INSERT INTO {BUCKET} (subscription_id, tokens, updated_at) "  # noqa: S608
            f"VALUES (%(sub)s, %(burst)s - %(n)s, %(now)s) "
            f"ON CONFLICT (subscription_id) DO UPDATE SET tokens = {refilled} - %(n)s, "
            f"updated_at = {greatest}({BUCKET}.updated_at, %(now)s) "
            f"WHERE {refilled} >= %(n)s + %(floor)s RETURNING tokens"
        ),
        "give_tokens": (
            f"UPDATE {BUCKET} SET tokens = {least}(%(burst)s, {refilled} + %(n)s), "  # noqa: S608
            f"updated_at = {greatest}({BUCKET}.updated_at, %(now)s) "
            f"WHERE subscription_id = %(sub)s"
        ),
        "peek_bucket": f"SELECT tokens, updated_at FROM {BUCKET} WHERE subscription_id = %(sub)s",  # noqa: S608
        "consume": (
            f"INSERT INTO {COUNTER} (subscription_id, period_start, used, extension) "  # noqa: S608
            f"VALUES (%(sub)s, %(start)s, %(units)s, 0) "
            f"ON CONFLICT (subscription_id, period_start) "
            f"DO UPDATE SET used = {COUNTER}.used + %(units)s "
            f"WHERE {COUNTER}.used + %(units)s <= %(quota)s + {COUNTER}.extension "
            f"RETURNING used, extension"
        ),
        # more than the plan's quota: only an operator's extension could make room, and then
        # the row already exists
        "consume_extension": (
            f"UPDATE {COUNTER} SET used = used + %(units)s WHERE {WHERE_PERIOD} "  # noqa: S608
            f"AND used + %(units)s <= %(quota)s + extension RETURNING used, extension"
        ),
        # A reservation's units: only while the count stays below `below` percent of the
        # limit (quota.threshold crossings and the period's last units are never reserved).
        "reserve_units": (
            f"UPDATE {COUNTER} SET used = used + %(units)s, "  # noqa: S608
            f"held = CASE WHEN held_until < %(now)s THEN 1 ELSE held + 1 END, "
            f"held_until = %(until)s WHERE {WHERE_PERIOD} "
            f"AND (used + %(units)s) * 100 < (%(quota)s + extension) * %(below)s "
            f"RETURNING used"
        ),
        "unreserve": (
            f"UPDATE {COUNTER} SET used = used - {least}(used, %(units)s), "  # noqa: S608
            f"held = {greatest}(0, held - 1) WHERE {WHERE_PERIOD}"
        ),
        "read": (
            f"SELECT used, extension, held, held_until FROM {COUNTER} "  # noqa: S608
            f"WHERE {WHERE_PERIOD}"
        ),
        "read_locked": f"SELECT used, extension FROM {COUNTER} WHERE {WHERE_PERIOD}{lock}",  # noqa: S608
        "ensure_row": (
            f"INSERT INTO {COUNTER} (subscription_id, period_start, used, extension) "  # noqa: S608
            f"VALUES (%(sub)s, %(start)s, 0, 0) "
            f"ON CONFLICT (subscription_id, period_start) DO NOTHING"
        ),
        "grant": f"UPDATE {COUNTER} SET used = used + %(units)s WHERE {WHERE_PERIOD}",  # noqa: S608
        "refund": (
            f"UPDATE {COUNTER} SET used = used - %(units)s WHERE {WHERE_PERIOD} "  # noqa: S608
            f"AND used >= %(units)s"
        ),
    }


@functools.cache
def sqlite3_statements() -> dict[str, str]:
    """The statements with sqlite3's own `:name` placeholders (the direct SQLite path)."""
    names = ("sub", "burst", "now", "rate", "start", "units", "quota", "n", "floor", "until",
             "below")  # fmt: skip
    return {k: v % {n: f":{n}" for n in names} for k, v in statements("sqlite").items()}


def sql(name: str) -> str:
    """The statement `name` for the default connection's database."""
    return statements(connection.vendor)[name]


def period_param(period_start: datetime):
    """`period_start` as the default connection stores it (a string on SQLite)."""
    return connection.ops.adapt_datetimefield_value(period_start)


def refilled(row, rate: float, burst: int, now: float) -> float:
    """Tokens at `now` from a `(tokens, updated_at)` row (a full bucket when there is none)."""
    if row is None:
        return float(burst)
    return min(float(burst), float(row[0]) + max(0.0, now - float(row[1])) * rate)


def bucket_params(
    subscription_id: int, rate: float, burst: int, now: float, n: int = 1, floor: float = 0.0
) -> dict:
    return {"sub": subscription_id, "rate": rate, "burst": float(burst), "now": now, "n": n,
            "floor": floor}  # fmt: skip


def consume_statement(units: int, quota: int) -> str:
    """`consume` (the upsert) when the plan's quota could fit `units`, else the UPDATE."""
    return "consume" if units <= quota else "consume_extension"
