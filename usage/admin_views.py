"""The admin usage report at /admin/reports/usage/ (staff only; HTML or `&format=csv`)."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse

from usage.reports import (
    CSV_COLUMNS,
    ReportFilterForm,
    build_report,
    filtered_rollups,
    grouped_rows,
)


class _Echo:
    """A file-like object whose write() returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterator[dict]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for row in rows:
        yield writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])


def _filters(data: dict) -> dict:
    names = ("plan", "subscriber", "model", "version", "protocol", "status")
    return {k: data.get(k) or "" for k in names}


def _csv_query(request: HttpRequest) -> str:
    query = request.GET.copy()
    query["format"] = "csv"
    return query.urlencode()


def usage_report(request: HttpRequest) -> HttpResponse:
    """Chart of requests/errors/throttled per day, top subscribers, models and protocols, the
    rows by subscriber, model, version and protocol, and their CSV export."""
    form = ReportFilterForm(request.GET)  # every field is optional: no query = defaults
    valid = form.is_valid()
    data = form.cleaned_data if valid else {}
    if request.GET.get("format") == "csv":
        if not valid:
            return HttpResponse(
                "; ".join(e for errors in form.errors.values() for e in errors),
                status=400,
                content_type="text/plain",
            )
        rows = filtered_rollups(start=data["start"], end=data["end"], **_filters(data))
        response = StreamingHttpResponse(
            _csv_lines(grouped_rows(rows, data["status"])), content_type="text/csv"
        )
        name = f"usage-{data['start']:%Y%m%d}-{data['end']:%Y%m%d}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    context = {
        **admin.site.each_context(request),
        "title": "Usage report",
        "form": form,
        "report": build_report(start=data["start"], end=data["end"], **_filters(data))
        if valid
        else None,
        "csv_query": _csv_query(request),
    }
    status = 200 if valid else 400
    return TemplateResponse(request, "admin/usage_report.html", context, status=status)
