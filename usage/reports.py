"""The operators' usage report (admin): filters, a per-day series and grouped rows.

Read from `DailyUsage` rollups only, so a year of traffic costs a grouped scan of at most
(days x subscribers x keys x models x versions x protocols) rows, never of raw records.
A subscriber is the subscription's organization, by slug (a personal organization's slug is its
user's name). Rollups from before versions and protocols were recorded show both as "-".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import islice

from django import forms
from django.core.validators import RegexValidator
from django.db.models import F, Q, QuerySet, Sum
from django.utils import timezone

from keys.models import Plan
from usage.models import LATENCY_FIELDS, DailyUsage, Protocol, percentile_from_histogram
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
    "version",
    "protocol",
    "requests",
    "predictions",
    "errors",
    "throttled",
    "error_rate",
    "p50_ms",
    "p95_ms",
)


PROTOCOL_CHOICES = [("", "any protocol"), *Protocol.choices]
PROTOCOL_LABELS = dict(Protocol.choices)
NOT_RECORDED = "not recorded (older rollups)"
SUBSCRIBER = "subscription__organization__slug"
SUBSCRIBER_NAME = "subscription__organization__name"
PLAN = "subscription__plan__name"


class ReportFilterForm(forms.Form):
    """`?start=&end=[&plan=&subscriber=&model=&version=&protocol=&status=]`; the last 30 days
    by default."""

    start = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    end = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    plan = forms.ChoiceField(required=False)
    subscriber = forms.CharField(
        required=False, max_length=150, help_text="organization slug or username"
    )
    model = forms.CharField(required=False, max_length=64)
    version = forms.CharField(
        required=False,
        max_length=32,
        validators=[RegexValidator(r"^\S+$", "A version has no spaces.")],
    )
    protocol = forms.ChoiceField(required=False, choices=PROTOCOL_CHOICES)
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


def filtered_rollups(
    *,
    start: date,
    end: date,
    plan: str = "",
    subscriber: str = "",
    model: str = "",
    version: str = "",
    protocol: str = "",
    status: str = "",
) -> QuerySet:
    """The DailyUsage rows the report's filters select.

    `subscriber` is an organization's slug (any case) or a user's name (their personal
    organization, whose slug is the name unless that was taken when it was made).
    """
    rows = DailyUsage.objects.between(start, end)
    if plan:
        rows = rows.filter(subscription__plan__name=plan)
    if subscriber:
        rows = rows.filter(
            Q(subscription__organization__slug__iexact=subscriber)
            | Q(subscription__user__username=subscriber)
        )
    if model:
        rows = rows.filter(model_name=model)
    if version:
        rows = rows.filter(model_version=version)
    if protocol:
        rows = rows.filter(protocol=protocol)
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


def _subscriber(values: dict) -> dict:
    return {
        "subscriber": values[SUBSCRIBER],
        "subscriber_name": values[SUBSCRIBER_NAME],
        "plan": values[PLAN],
    }


def _protocol(values: dict) -> dict:
    code = values["protocol"]
    return {"protocol": code or "-", "protocol_label": PROTOCOL_LABELS.get(code, NOT_RECORDED)}


def grouped_rows(rows: QuerySet, status: str = "") -> Iterator[dict]:
    """One row per subscriber, model, version and protocol, busiest first (table and CSV)."""
    group = (SUBSCRIBER, SUBSCRIBER_NAME, PLAN, "model_name", "model_version", "protocol")
    for values in _summed(rows, *group).iterator(chunk_size=500):
        yield _row(
            values,
            status,
            **_subscriber(values),
            model=values["model_name"] or "-",
            version=values["model_version"] or "-",
            **_protocol(values),
        )


@dataclass
class UsageReport:
    series: dict
    totals: dict
    top_subscribers: list[dict]
    top_models: list[dict]
    by_protocol: list[dict]
    rows: list[dict]


def build_report(*, start: date, end: date, top: int = 10, **filters) -> UsageReport:
    """Everything the HTML report shows, for the given filters."""
    rows = filtered_rollups(start=start, end=end, **filters)
    status = filters.get("status", "")
    totals_values = rows.aggregate(**{f"{n}_total": Sum(n) for n in (*COUNTERS, *LATENCY_FIELDS)})
    subscribers = [
        _row(v, status, **_subscriber(v))
        for v in _summed(rows, SUBSCRIBER, SUBSCRIBER_NAME, PLAN)[:top]
    ]
    models = [
        _row(v, status, model=v["model_name"] or "-") for v in _summed(rows, "model_name")[:top]
    ]
    return UsageReport(
        series=daily_series(rows, start, end, status),
        totals=_row(totals_values, status),
        top_subscribers=subscribers,
        top_models=models,
        by_protocol=[_row(v, status, **_protocol(v)) for v in _summed(rows, "protocol")],
        rows=list(islice(grouped_rows(rows, status), 200)),
    )
