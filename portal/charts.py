"""Turn `usage.selectors.daily_usage` items into what the portal's chart and tables show."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

USAGE_COLUMNS = (
    "date",
    "requests",
    "predictions",
    "errors",
    "throttled",
    "quota_used",
    "quota_remaining",
    "p50_ms",
    "p95_ms",
)


def usage_chart(days: list[dict]) -> dict:
    """Chart data for `static/portal/charts.js`: predictions and requests per day, errors."""
    return {
        "labels": [str(day["date"]) for day in days],
        "series": [
            {"label": "Predictions", "data": [day["predictions"] for day in days]},
            {
                "label": "Requests",
                "data": [day["requests"] for day in days],
                "kind": "line",
            },
            {
                "label": "Errors",
                "data": [day["errors"] + day.get("throttled", 0) for day in days],
                "kind": "line",
            },
        ],
    }


def usage_totals(days: Iterable[dict]) -> dict[str, int]:
    """Sums of the countable columns over the range."""
    totals = {"requests": 0, "predictions": 0, "errors": 0, "throttled": 0}
    for day in days:
        for name in totals:
            totals[name] += int(day.get(name) or 0)
    return totals


def usage_csv(days: Iterable[dict]) -> str:
    """The usage table as CSV text, one row per day, columns as in the API."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(USAGE_COLUMNS)
    for day in days:
        writer.writerow(["" if day.get(name) is None else day.get(name) for name in USAGE_COLUMNS])
    return buffer.getvalue()
