"""The operators' usage report (admin): filters, a per-day series and grouped rows.

Read from `DailyUsage` rollups only, so a year of traffic costs a grouped scan of at most
(days x subscribers x keys x models) rows, never of raw records.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import islice

from django import forms
from django.db.models import F, QuerySet, Sum
from django.utils import timezone

from keys.models import Plan
from usage.models import LATENCY_FIELDS, DailyUsage, percentile_from_histogram
from usage.selectors import days_between
from usage.serializers import day_out_of_range

MAX_DAYS = 366
STATUS_CHOICES = [
    ("", "any outcome"),
    ("ok", "successful (2xx/3xx)"),
    ("error", "errors (4xx/5xx except 429)"),
    ("throttled", "throttled (429)"),
]
COUNTERS = ("requests", "predictions", "errors", "throttled")
CSV_COLUMNS = (
    "subscriber",
    "plan",
    "model",
    "requests",
    "predictions",
    "errors",
    "throttled",
    "error_rate",
    "p50_ms",
    "p95_ms",
)


class ReportFilterForm(forms.Form):
    """`?start=&end=[&plan=&subscriber=&model=&status=]`; the last 30 days by default."""

    start = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    end = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    plan = forms.ChoiceField(required=False)
    subscriber = forms.CharField(required=False, max_length=150, help_text="username")
    model = forms.CharField(required=False, max_length=64)
    status = forms.ChoiceField(required=False, choices=STATUS_CHOICES)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        names = Plan.objects.order_by("name").values_list("name", flat=True)
        self.fields["plan"].choices = [("", "any plan"), *((n, n) for n in names)]

    def clean(self) -> dict:
        data = super().clean()
        for name in ("start", "end"):
            if problem := day_out_of_range(data.get(name)):
                raise forms.ValidationError({name: problem})
        end = data.get("end") or timezone.now().date()
        start = data.get("start") or end - timedelta(days=29)
        if start > end:
            raise forms.ValidationError("start must not be after end.")
        if (end - start).days + 1 > MAX_DAYS:
            raise forms.ValidationError(f"The range may cover at most {MAX_DAYS} days.")
        return {**data, "start": start, "end": end}


def filtered_rollups(*, start: date, end: date, plan="", subscriber="", model="", status=""):
    """The DailyUsage rows the report's filters select."""
    rows = DailyUsage.objects.between(start, end)
    if plan:
        rows = rows.filter(subscription__plan__name=plan)
    if subscriber:
        rows = rows.filter(subscription__user__username=subscriber)
    if model:
        rows = rows.filter(model_name=model)
    if status == "ok":
        rows = rows.filter(requests__gt=F("errors") + F("throttled"))
    elif status == "error":
        rows = rows.filter(errors__gt=0)
    elif status == "throttled":
        rows = rows.filter(throttled__gt=0)
    return rows


def narrow(counts: dict, status: str) -> dict:
    """Counts restricted to one outcome: `requests` becomes the answers with that outcome.

    The latency histogram is not split by outcome, so percentiles stay those of all answers
    in the selected rollups.
    """
    if not status:
        return counts
    ok = counts["requests"] - counts["errors"] - counts["throttled"]
    matching = {"ok": ok, "error": counts["errors"], "throttled": counts["throttled"]}[status]
    return {
        **counts,
        "requests": matching,
        "predictions": counts["predictions"] if status == "ok" else 0,
        "errors": matching if status == "error" else 0,
        "throttled": matching if status == "throttled" else 0,
    }


def _summed(rows: QuerySet, *group: str) -> QuerySet:
    sums = {f"{name}_total": Sum(name) for name in (*COUNTERS, *LATENCY_FIELDS)}
    return rows.values(*group).annotate(**sums).order_by("-requests_total", *group)


def _row(values: dict, status: str = "", **labels) -> dict:
    counts = [int(values[f"{name}_total"] or 0) for name in LATENCY_FIELDS]
    totals = narrow({name: int(values[f"{name}_total"] or 0) for name in COUNTERS}, status)
    requests, errors = totals["requests"], totals["errors"]
    return {
        **labels,
        **totals,
        "error_rate": round(errors / requests, 4) if requests else 0.0,
        "p50_ms": percentile_from_histogram(counts, 0.50),
        "p95_ms": percentile_from_histogram(counts, 0.95),
    }


def daily_series(rows: QuerySet, start: date, end: date, status: str = "") -> dict:
    """Chart data: labels (days) and requests/errors/throttled per day, zeros included."""
    per_day = {
        v["day"]: narrow({c: int(v[c] or 0) for c in COUNTERS}, status)
        for v in rows.values("day").annotate(**{c: Sum(c) for c in COUNTERS})
    }
    days = days_between(start, end)
    return {
        "labels": [d.isoformat() for d in days],
        **{c: [int((per_day.get(d) or {}).get(c) or 0) for d in days] for c in COUNTERS},
    }


def grouped_rows(rows: QuerySet, status: str = "") -> Iterator[dict]:
    """One row per subscriber and model, busiest first (the table and the CSV)."""
    group = ("subscription__user__username", "subscription__plan__name", "model_name")
    for values in _summed(rows, *group).iterator(chunk_size=500):
        yield _row(
            values,
            status,
            subscriber=values["subscription__user__username"],
            plan=values["subscription__plan__name"],
            model=values["model_name"] or "-",
        )


@dataclass
class UsageReport:
    series: dict
    totals: dict
    top_subscribers: list[dict]
    top_models: list[dict]
    rows: list[dict]


def build_report(*, start: date, end: date, top: int = 10, **filters) -> UsageReport:
    """Everything the HTML report shows, for the given filters."""
    rows = filtered_rollups(start=start, end=end, **filters)
    status = filters.get("status", "")
    totals_values = rows.aggregate(**{f"{n}_total": Sum(n) for n in (*COUNTERS, *LATENCY_FIELDS)})
    subscribers = [
        _row(
            v,
            status,
            subscriber=v["subscription__user__username"],
            plan=v["subscription__plan__name"],
        )
        for v in _summed(rows, "subscription__user__username", "subscription__plan__name")[:top]
    ]
    models = [
        _row(v, status, model=v["model_name"] or "-") for v in _summed(rows, "model_name")[:top]
    ]
    return UsageReport(
        series=daily_series(rows, start, end, status),
        totals=_row(totals_values, status),
        top_subscribers=subscribers,
        top_models=models,
        rows=list(islice(grouped_rows(rows, status), 200)),
    )
