"""The one database write of usage: raw records + rollup upserts, in a single transaction.

Rollups are aggregated in memory per (day, subscription, key, model, version, protocol) and
applied with `INSERT ... ON CONFLICT (...) DO UPDATE SET x = x + excluded.x` (SQLite >= 3.24
and PostgreSQL), so concurrent writers in any number of processes add up exactly. Rows are sent in
key order so two PostgreSQL writers lock them in the same order and cannot deadlock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import IntegrityError, connection, transaction

from keys.limits.sqlite import queued_writes
from keys.models import ApiKey, Subscription
from usage.events import UsageEvent
from usage.models import LATENCY_FIELDS, DailyUsage, UsageRecord, latency_bucket

logger = logging.getLogger("mlapi.usage")

COUNTER_FIELDS = (
    "requests",
    "predictions",
    "errors",
    "throttled",
    "latency_ms_sum",
    "request_bytes",
    "response_bytes",
    *LATENCY_FIELDS,
)
KEY_FIELDS = ("day", "subscription_id", "key_id", "model_name", "model_version", "protocol")
UPSERT_BATCH = 200  # rows per statement: stays under SQLite's bound-parameter limit


def outcome_counts(status: int) -> tuple[int, int]:
    """(errors, throttled) contributed by one answer: 4xx/5xx except 429, and 429."""
    if status == 429:
        return 0, 1
    return (1 if status >= 400 else 0), 0


def aggregate(events: Iterable[UsageEvent]) -> dict[tuple, list[float]]:
    """Sum events into rollup deltas keyed as KEY_FIELDS (key_id 0 for a JWT)."""
    rows: dict[tuple, list[float]] = {}
    width = len(COUNTER_FIELDS)
    first_bucket = COUNTER_FIELDS.index(LATENCY_FIELDS[0])
    for event in events:
        key = (
            event.time.date(),
            event.subscription_id,
            event.key_id or 0,
            event.model_name[:64],
            event.model_version[:32],
            event.protocol,
        )
        row = rows.get(key)
        if row is None:
            row = rows[key] = [0] * width
        errors, throttled = outcome_counts(event.status)
        row[0] += 1
        row[1] += event.predictions
        row[2] += errors
        row[3] += throttled
        row[4] += event.latency_ms
        row[5] += event.request_bytes
        row[6] += event.response_bytes
        row[first_bucket + latency_bucket(event.latency_ms)] += 1
    return rows


def upsert_rollups(rows: dict[tuple, list[float]]) -> None:
    """Add the deltas to DailyUsage atomically (insert or increment), in key order."""
    table = connection.ops.quote_name(DailyUsage._meta.db_table)
    q = connection.ops.quote_name
    columns = (*KEY_FIELDS, *COUNTER_FIELDS)
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    updates = ", ".join(f"{q(c)} = {table}.{q(c)} + excluded.{q(c)}" for c in COUNTER_FIELDS)
    items = sorted(rows.items(), key=lambda item: (item[0][0], *item[0][1:]))
    with connection.cursor() as cursor:
        for offset in range(0, len(items), UPSERT_BATCH):
            chunk = items[offset : offset + UPSERT_BATCH]
            sql = (
                f"INSERT INTO {table} ({', '.join(q(c) for c in columns)}) "  # noqa: S608
                f"VALUES {', '.join([placeholders] * len(chunk))} "
                f"ON CONFLICT ({', '.join(q(c) for c in KEY_FIELDS)}) DO UPDATE SET {updates}"
            )
            params: list = []
            for key, values in chunk:
                params += [*key, *values]
            cursor.execute(sql, params)


def write_events(events: list[UsageEvent]) -> None:
    """Insert the raw records and apply their rollups, all or nothing.

    A subscription or key deleted since the request would fail the whole batch on its foreign
    key forever; such events are dropped (their subscription's usage is deleted with it) or
    lose their key reference, and the rest is written.
    """
    if not events:
        return
    try:
        _write(events)
        return
    except IntegrityError:
        events = _without_dangling_references(events)
    try:
        _write(events)
    except IntegrityError:
        # One event the database will never accept must not block the others forever.
        for single in events:
            try:
                _write([single])
            except IntegrityError:
                logger.exception("usage: dropped an event the database refuses: %r", single)


def _without_dangling_references(events: list[UsageEvent]) -> list[UsageEvent]:
    from dataclasses import replace

    subs = set(
        Subscription.objects.filter(id__in={e.subscription_id for e in events}).values_list(
            "id", flat=True
        )
    )
    keys = set(
        ApiKey.objects.filter(id__in={e.key_id for e in events if e.key_id}).values_list(
            "id", flat=True
        )
    )
    return [
        e if not e.key_id or e.key_id in keys else replace(e, key_id=None)
        for e in events
        if e.subscription_id in subs
    ]


RECORD_COLUMNS = (
    "time",
    "subscription_id",
    "key_id",
    "plan_name",
    "model_name",
    "model_version",
    "protocol",
    "method",
    "path",
    "status",
    "error_code",
    "predictions",
    "latency_ms",
    "request_bytes",
    "response_bytes",
    "request_id",
)


def insert_records(events: list[UsageEvent]) -> None:
    """The raw records in one statement (no model instances: this is the hot loop): COPY on
    PostgreSQL, an executemany INSERT elsewhere.

    COPY because the writer runs in the web worker: psycopg's executemany binds and executes
    each row (about 4 ms of the worker's GIL per 200 rows, and as much again of server CPU),
    which showed as the metered path's p99 in `make bench`.
    """
    q = connection.ops.quote_name
    table = q(UsageRecord._meta.db_table)
    columns = ", ".join(q(c) for c in RECORD_COLUMNS)
    adapt = connection.ops.adapt_datetimefield_value
    rows = [
        (
            adapt(e.time),
            e.subscription_id,
            e.key_id,
            e.plan_name[:50],
            e.model_name[:64],
            e.model_version[:32],
            e.protocol,
            e.method[:8],
            e.path[:300],
            e.status,
            e.error_code[:40],
            e.predictions,
            e.latency_ms,
            e.request_bytes,
            e.response_bytes,
            e.request_id[:128],
        )
        for e in events
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # psycopg's own cursor; its errors become Django's (IntegrityError) as usual.
            statement = f"COPY {table} ({columns}) FROM STDIN"
            with connection.wrap_database_errors, cursor.cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
            return
        placeholders = ", ".join(["%s"] * len(RECORD_COLUMNS))
        sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608
        cursor.executemany(sql, rows)


def _write(events: list[UsageEvent]) -> None:
    if not events:
        return
    with queued_writes(), transaction.atomic():
        insert_records(events)
        upsert_rollups(aggregate(events))
