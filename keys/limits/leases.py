"""The database side of the lease store: durable grants of quota units out of `QuotaCounter`.

With the lease store, `QuotaCounter.used` counts the units that left the database: delivered,
sitting in a Redis pool, or lost with a pool (a Redis restart) or a crashed leaser. A unit is
counted before it can be used anywhere, and the count is durable before any pool sees it, so
what is delivered never exceeds what the (recovered) counter says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction

from keys.limits import sql


@dataclass(frozen=True, slots=True)
class Grant:
    """A lease: `units` granted (0 when fewer than `need` were left), the counter after it."""

    units: int
    used: int
    extension: int


def lease(
    *,
    subscription_id: int,
    period_start: datetime,
    quota: int,
    need: int,
    want: int,
    granting: Callable[[], None] = lambda: None,
) -> Grant:
    """Grant `min(want, remaining)` units if at least `need` remain, else none; durably.

    A plain read first: an exhausted period costs no lock and no write (no WAL flush). Then,
    in one transaction with `synchronous_commit = on` (whatever the database's default), the
    row is locked, re-read and incremented; the commit returns once the WAL is on disk.
    """
    period = {"sub": subscription_id, "start": sql.period_param(period_start)}
    with connection.cursor() as cursor:
        cursor.execute(sql.sql("read"), period)
        row = cursor.fetchone()
    if row is not None and quota + int(row[1]) - int(row[0]) < need:
        return Grant(0, int(row[0]), int(row[1]))
    granting()  # before the commit: a refusal from now on waits for these units
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL synchronous_commit = on")
        if row is None:
            cursor.execute(sql.sql("ensure_row"), period)
        cursor.execute(sql.sql("read_locked"), period)
        used, extension = (int(v) for v in cursor.fetchone())
        remaining = quota + extension - used
        if remaining < need:
            return Grant(0, used, extension)
        units = min(want, remaining)
        cursor.execute(sql.sql("grant"), {**period, "units": units})
    return Grant(units, used + units, extension)


def give_back(*, subscription_id: int, period_start: datetime, units: int) -> None:
    """Return units to the database (a refund with no pool, or a drained pool)."""
    with connection.cursor() as cursor:
        cursor.execute(
            sql.sql("refund"),
            {"sub": subscription_id, "start": sql.period_param(period_start), "units": units},
        )
