"""Input and output serializers of the usage API (they only translate)."""

from __future__ import annotations

from datetime import date, timedelta

from django.utils import timezone
from rest_framework import serializers

MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 30
# Days a usage query may name: no usage precedes 1970, and the quota period of a day in the year
# 9999 may end in 10000, which `datetime` cannot hold (a 500, not an answer).
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)


def day_out_of_range(value: date | None) -> str | None:
    """Why `value` cannot be a usage day, or None when it can (or is absent)."""
    if value is not None and not FIRST_DAY <= value <= LAST_DAY:
        return f"Must be a day from {FIRST_DAY} to {LAST_DAY}."
    return None


class UsageQuerySerializer(serializers.Serializer):
    """`?start=YYYY-MM-DD&end=YYYY-MM-DD[&model=&key=]`; defaults to the last 30 days."""

    start = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])
    end = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])
    model = serializers.CharField(required=False, max_length=64)
    key = serializers.IntegerField(required=False, min_value=1)

    def validate(self, attrs: dict) -> dict:
        for name in ("start", "end"):
            if problem := day_out_of_range(attrs.get(name)):
                raise serializers.ValidationError({name: problem})
        end = attrs.get("end") or timezone.now().date()
        start = attrs.get("start") or end - timedelta(days=DEFAULT_RANGE_DAYS - 1)
        if start > end:
            raise serializers.ValidationError({"start": "start must not be after end."})
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise serializers.ValidationError(
                {"end": f"The range may cover at most {MAX_RANGE_DAYS} days."}
            )
        return {**attrs, "start": start, "end": end}


class UsageDaySerializer(serializers.Serializer):
    """One day of `GET /api/v1/usage`."""

    date = serializers.DateField()
    requests = serializers.IntegerField()
    predictions = serializers.IntegerField()
    errors = serializers.IntegerField()
    throttled = serializers.IntegerField()
    quota_used = serializers.IntegerField()
    quota_remaining = serializers.IntegerField()
    p50_ms = serializers.FloatField(allow_null=True)
    p95_ms = serializers.FloatField(allow_null=True)
