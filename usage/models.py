"""Usage records (one row per authenticated data-plane request) and daily rollups.

Raw `UsageRecord`s expire after MLAPI_USAGE_RETENTION_DAYS; `DailyUsage` rollups are kept and
are what every report reads. Rollups are maintained incrementally with one atomic upsert per
batch (`usage.recording`), never by scanning raw records.
"""

from __future__ import annotations

import bisect
import math
from datetime import datetime

from django.db import models
from django.db.models import Q

# Latency histogram: fixed log-spaced bucket upper bounds in ms, four per decade from 0.1 ms
# to ~56 s, plus an overflow bucket. Stored as one counter column per bucket so the rollup
# upsert can add them atomically (`lat_i = lat_i + excluded.lat_i`).
LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(round(10 ** (k / 4), 4) for k in range(-4, 20))
LATENCY_BUCKETS = len(LATENCY_BOUNDS_MS) + 1
LATENCY_FIELDS: tuple[str, ...] = tuple(f"lat_{i:02d}" for i in range(LATENCY_BUCKETS))


def latency_bucket(ms: float) -> int:
    """Index of the histogram bucket holding a latency (upper bounds are inclusive)."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, ms)


def bucket_value_ms(index: int) -> float:
    """The value reported for a bucket: its upper bound (the overflow reports its lower one)."""
    return LATENCY_BOUNDS_MS[min(index, len(LATENCY_BOUNDS_MS) - 1)]


def percentile_from_histogram(counts: list[int], q: float) -> float | None:
    """The bucket value holding the q-quantile (nearest rank), or None without samples."""
    total = sum(counts)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return bucket_value_ms(index)
    return bucket_value_ms(len(counts) - 1)


class Protocol(models.TextChoices):
    V1 = "v1", "REST v1 predict"
    V2 = "v2", "Open Inference Protocol (V2)"
    KSERVE_V1 = "kserve-v1", "KServe V1 alias"
    JOBS = "jobs", "Batch jobs API"
    MODELS = "models", "Model metadata"
    GRPC = "grpc", "Open Inference Protocol (gRPC)"
    OTHER = "other", "Other"


class UsageRecordQuerySet(models.QuerySet):
    def for_subscription(self, subscription_id: int) -> UsageRecordQuerySet:
        return self.filter(subscription_id=subscription_id)

    def failed(self) -> UsageRecordQuerySet:
        """Answers with a 4xx/5xx status (429s included)."""
        return self.filter(status__gte=400)

    def older_than(self, cutoff: datetime) -> UsageRecordQuerySet:
        return self.filter(time__lt=cutoff)


class UsageRecord(models.Model):
    """One authenticated data-plane request as answered: who, what, outcome and cost."""

    time = models.DateTimeField(db_index=True)
    subscription = models.ForeignKey(
        "keys.Subscription", on_delete=models.CASCADE, related_name="usage_records"
    )
    key = models.ForeignKey(
        "keys.ApiKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="usage_records",
        help_text="Empty for requests authenticated with a JWT.",
    )
    plan_name = models.CharField(max_length=50, blank=True)
    model_name = models.CharField(max_length=64, blank=True)
    model_version = models.CharField(max_length=32, blank=True)
    protocol = models.CharField(max_length=10, choices=Protocol.choices)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=300)
    status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=40, blank=True)
    predictions = models.PositiveIntegerField(default=0)
    latency_ms = models.FloatField()
    request_bytes = models.PositiveBigIntegerField(default=0)
    response_bytes = models.PositiveBigIntegerField(default=0)
    request_id = models.CharField(max_length=128, blank=True, default="")  # its X-Request-ID

    objects = UsageRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-time"]
        indexes = [models.Index(fields=["subscription", "-time"], name="usage_rec_sub_time")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__gte=100, status__lte=599), name="usage_record_status_http"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.path} {self.status}"


class DailyUsageQuerySet(models.QuerySet):
    def between(self, start, end) -> DailyUsageQuerySet:
        """Rollups of the days from `start` to `end`, both included."""
        return self.filter(day__gte=start, day__lte=end)


class DailyUsage(models.Model):
    """Per day, subscription, key, model, version and protocol: counters and a latency histogram.

    `key_id` is 0 for requests made with a JWT (0 rather than NULL so the unique constraint,
    and the upsert's ON CONFLICT target, treat all of them as one key). `model_name` is empty
    for requests that named no model, `model_version` for those no version answered.
    `model_version` and `protocol` are empty on rollups written before they were recorded, so
    readers must sum over them: one (day, subscription, key, model) can have several rows.
    """

    day = models.DateField()
    subscription = models.ForeignKey(
        "keys.Subscription", on_delete=models.CASCADE, related_name="daily_usage"
    )
    key_id = models.PositiveBigIntegerField(default=0, help_text="0 means a JWT.")
    model_name = models.CharField(max_length=64, blank=True)
    model_version = models.CharField(max_length=32, blank=True)
    protocol = models.CharField(
        max_length=10, choices=Protocol.choices, blank=True, help_text="Empty on older rollups."
    )
    requests = models.PositiveBigIntegerField(default=0)
    predictions = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    throttled = models.PositiveBigIntegerField(default=0)
    latency_ms_sum = models.FloatField(default=0)
    request_bytes = models.PositiveBigIntegerField(default=0)
    response_bytes = models.PositiveBigIntegerField(default=0)

    objects = DailyUsageQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "daily usage"
        ordering = ["-day", "subscription_id", "key_id", "model_name", "model_version", "protocol"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "subscription", "key_id", "model_name", "model_version", "protocol"],
                name="one_rollup_per_day_key_model_version_protocol",
            ),
        ]

    def __str__(self) -> str:
        model = f"{self.model_name}@{self.model_version}" if self.model_version else self.model_name
        return f"{self.day} sub {self.subscription_id} key {self.key_id} {model} {self.protocol}"

    def latency_counts(self) -> list[int]:
        return [getattr(self, name) for name in LATENCY_FIELDS]


# One counter column per latency bucket (see LATENCY_BOUNDS_MS); added in a loop rather than
# spelled out 25 times.
for _index, _name in enumerate(LATENCY_FIELDS):
    _upper = (
        f"<= {LATENCY_BOUNDS_MS[_index]} ms"
        if _index < len(LATENCY_BOUNDS_MS)
        else f"> {LATENCY_BOUNDS_MS[-1]} ms"
    )
    DailyUsage.add_to_class(_name, models.PositiveBigIntegerField(default=0, help_text=_upper))
