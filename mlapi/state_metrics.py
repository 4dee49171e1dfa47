"""Metrics read from the stores at scrape time, for the alerts in ops/prometheus/.

`mlapi_limits_store_up` (the store that holds the rate bucket answers: Redis when configured,
else the database), `mlapi_jobs_backlog{status}` and `mlapi_jobs_oldest_queued_seconds` (batch
jobs waiting or running), `mlapi_worker_heartbeat_timestamp_seconds` (written by the worker,
see mlapi/celery.py) and `mlapi_quota_used{plan}` / `mlapi_quota_limit{plan}` for the open
periods. Each is computed in one cheap query; a store that fails drops its metric (or reports
`up 0`), never the scrape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger("mlapi")
HEARTBEAT_KEY = "mlapi:worker-heartbeat"


def write_worker_heartbeat() -> None:
    """Called by the worker (at start and every 15 s): the time it last proved itself alive."""
    cache.set(HEARTBEAT_KEY, time.time(), None)


def limits_store_up() -> tuple[str, bool]:
    """Whether the rate-limit store answers (the quota is always in the database)."""
    try:
        if settings.REDIS_URL:
            import redis

            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1.0).ping()
            return "redis", True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "database", True
    except Exception:  # noqa: BLE001 - any failure means "down"
        return ("redis" if settings.REDIS_URL else "database"), False


def _jobs() -> Iterator[GaugeMetricFamily]:
    from django.db.models import Count, Min

    from predictions.models import BatchJob, JobStatus

    rows = BatchJob.objects.unfinished().values("status").annotate(n=Count("id"))
    counts = {row["status"]: row["n"] for row in rows}
    backlog = GaugeMetricFamily(
        "mlapi_jobs_backlog", "Batch jobs queued or running.", labels=["status"]
    )
    for status in (JobStatus.QUEUED, JobStatus.RUNNING):
        backlog.add_metric([str(status)], counts.get(status, 0))
    yield backlog
    oldest = BatchJob.objects.filter(status=JobStatus.QUEUED).aggregate(t=Min("created_at"))["t"]
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
    yield GaugeMetricFamily(
        "mlapi_jobs_oldest_queued_seconds", "Age of the oldest queued batch job.", value=age
    )


def _quota() -> Iterator[GaugeMetricFamily]:
    from django.db.models import Sum

    from keys.limits import period_bounds
    from keys.models import Plan, QuotaCounter

    used = GaugeMetricFamily("mlapi_quota_used", "Quota used in the open periods.", labels=["plan"])
    limit = GaugeMetricFamily(
        "mlapi_quota_limit", "Quota of the subscriptions that used some.", labels=["plan"]
    )
    now = datetime.now(UTC)
    for plan in Plan.objects.all():
        start, _ = period_bounds(plan.quota_period, now)
        counters = QuotaCounter.objects.filter(subscription__plan=plan, period_start=start)
        totals = counters.aggregate(used=Sum("used"), extension=Sum("extension"))
        n = counters.count()
        used.add_metric([plan.name], totals["used"] or 0)
        limit.add_metric([plan.name], n * plan.quota + (totals["extension"] or 0))
    yield used
    yield limit


class StateCollector(Collector):
    """A prometheus_client collector over the stores (registered per scrape)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        store, up = limits_store_up()
        store_up = GaugeMetricFamily(
            "mlapi_limits_store_up",
            "1 when the store holding the rate limits answers.",
            labels=["store"],
        )
        store_up.add_metric([store], 1.0 if up else 0.0)
        yield store_up
        try:
            beat = cache.get(HEARTBEAT_KEY)
        except Exception:  # noqa: BLE001 - the cache is down: no heartbeat to report
            beat = None
        if beat is not None:
            yield GaugeMetricFamily(
                "mlapi_worker_heartbeat_timestamp_seconds",
                "Unix time of the last heartbeat of any Celery worker.",
                value=float(beat),
            )
        for part in (_jobs, _quota):
            try:
                yield from list(part())
            except Exception as exc:  # noqa: BLE001 - database down: these metrics are absent
                logger.warning("metrics: %s skipped (%s)", part.__name__, exc.__class__.__name__)
