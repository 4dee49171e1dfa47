"""The admin usage report (chart data, tables, CSV, filters) and the usage changelists."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.factories import usage_event as event
from tests.support.usage import make_subscription
from usage.writer import write_events

pytestmark = pytest.mark.django_db

URL = "/admin/reports/usage/"


@pytest.fixture
def staff_client() -> Client:
    user = get_user_model().objects.create_user(
        username="ops",
        email="ops@example.com",
        password="x-Pass-12345",
        is_staff=True,
        is_superuser=True,
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def traffic():
    a, (ka, _) = make_subscription()
    b, _ = make_subscription()
    d1, d2 = date(2026, 2, 1), date(2026, 2, 3)
    write_events(
        [event(a, day=d1, key=ka, n=2)] * 6
        + [event(a, day=d1, status=400), event(a, day=d2, status=429)]
        + [event(b, day=d2, model="house-price", n=1, ms=40.0)] * 3
        + [event(b, day=d2, model="house-price", status=500)]
    )
    return a, b


def chart_data(response) -> dict:
    match = re.search(
        rb'<script id="usage-chart-data" type="application/json">(.*?)</script>', response.content
    )
    assert match, "chart data missing"
    return json.loads(match.group(1))


def test_report_renders_chart_data_per_day_with_zero_days(staff_client, traffic):
    response = staff_client.get(URL, {"start": "2026-02-01", "end": "2026-02-03"})
    assert response.status_code == 200
    assert b"vendor/chart.umd.min.js" in response.content and b"usage/report.js" in response.content
    assert b"<script>" not in response.content  # CSP: no inline script
    data = chart_data(response)
    assert data["labels"] == ["2026-02-01", "2026-02-02", "2026-02-03"]
    assert data["requests"] == [7, 0, 5]
    assert data["errors"] == [1, 0, 1]
    assert data["throttled"] == [0, 0, 1]


def test_report_tables_show_top_subscribers_and_models(staff_client, traffic):
    a, b = traffic
    response = staff_client.get(URL, {"start": "2026-02-01", "end": "2026-02-03"})
    report = response.context["report"]
    assert [r["subscriber"] for r in report.top_subscribers] == [a.user.username, b.user.username]
    assert report.top_subscribers[0]["requests"] == 8
    assert {r["model"]: r["requests"] for r in report.top_models} == {"iris": 8, "house-price": 4}
    hp = next(r for r in report.top_models if r["model"] == "house-price")
    assert hp["error_rate"] == 0.25 and hp["p50_ms"] == 56.2341
    assert b"Top subscribers" in response.content and b"Top models" in response.content


def test_report_filters_by_plan_subscriber_model_and_status(staff_client, traffic):
    a, b = traffic
    base = {"start": "2026-02-01", "end": "2026-02-03"}
    cases = [
        ({"plan": b.plan.name}, [0, 0, 4]),
        ({"subscriber": a.user.username}, [7, 0, 1]),
        ({"model": "house-price"}, [0, 0, 4]),
        ({"status": "throttled"}, [0, 0, 1]),
        ({"status": "error"}, [1, 0, 1]),
        ({"status": "ok"}, [6, 0, 3]),
    ]
    for filters, requests in cases:
        response = staff_client.get(URL, {**base, **filters})
        assert response.status_code == 200, filters
        assert chart_data(response)["requests"] == requests, filters


def test_report_exports_the_same_rows_as_csv(staff_client, traffic):
    a, _ = traffic
    params = {"start": "2026-02-01", "end": "2026-02-03", "format": "csv"}
    response = staff_client.get(URL, params)
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    html = staff_client.get(URL, {"start": "2026-02-01", "end": "2026-02-03"}).context["report"]
    assert [(r["subscriber"], r["model"], int(r["requests"])) for r in rows] == [
        (r["subscriber"], r["model"], r["requests"]) for r in html.rows
    ]
    assert rows[0]["plan"] == a.plan.name and rows[0]["predictions"] == "12"


@pytest.mark.parametrize(
    "params",
    [
        {"start": "2026-02-31"},
        {"start": "2026-03-02", "end": "2026-03-01"},
        {"start": "2020-01-01", "end": "2026-01-01"},
        {"status": "weird"},
        {"plan": "no-such-plan"},
    ],
)
def test_report_rejects_bad_filters_with_400(staff_client, params):
    assert staff_client.get(URL, params).status_code == 400
    assert staff_client.get(URL, {**params, "format": "csv"}).status_code == 400


def test_report_is_staff_only(traffic):
    a, _ = traffic
    anonymous = Client().get(URL)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client = Client()
    client.force_login(a.user)
    assert client.get(URL).status_code == 302


def test_admin_index_links_to_the_report(staff_client):
    response = staff_client.get("/admin/")
    assert response.status_code == 200 and URL.encode() in response.content


@pytest.mark.parametrize(
    "url",
    [
        "/admin/usage/usagerecord/",
        "/admin/usage/usagerecord/?q=iris&status__exact=429",
        "/admin/usage/usagerecord/?time__year=2026&time__month=2",
        "/admin/usage/dailyusage/",
        "/admin/usage/dailyusage/?day__year=2026",
    ],
)
def test_usage_changelists_render(staff_client, traffic, url):
    assert staff_client.get(url).status_code == 200


def test_usage_records_cannot_be_added_or_edited_in_admin(staff_client, traffic):
    assert staff_client.get("/admin/usage/usagerecord/add/").status_code == 403


def test_usage_report_default_range_is_the_last_30_days(staff_client):
    data = chart_data(staff_client.get(URL))
    assert len(data["labels"]) == 30
    assert data["labels"][-1] == datetime.now(UTC).date().isoformat()


@pytest.mark.parametrize("params", [{"end": "0001-01-01"}, {"start": "9999-12-31"}])
def test_report_days_beyond_the_calendar_are_refused_not_a_500(staff_client, params):
    response = staff_client.get("/admin/reports/usage/", params)
    assert response.status_code == 400
    assert "must be a day from" in response.content.decode().lower()
