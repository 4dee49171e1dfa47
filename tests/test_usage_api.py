"""The usage API: per-day items with zero days, quota per period, filters, bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.test import Client

from keys.models import QuotaCounter
from tests.factories import usage_event
from tests.support.usage import make_subscription
from usage.models import DailyUsage, UsageRecord
from usage.selectors import daily_usage, recent_errors
from usage.writer import write_events

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.support.usage")]

TODAY = datetime.now(UTC).date()


def client_for(subscription) -> Client:
    client = Client()
    client.force_login(subscription.user)
    return client


def get_usage(client, **params):
    return client.get("/api/v1/usage", params)


def test_usage_lists_every_day_of_the_range_with_zero_days():
    sub, _ = make_subscription()
    day = date(2026, 3, 10)
    write_events([usage_event(sub, day=day, n=3), usage_event(sub, day=day, status=429)])
    response = get_usage(client_for(sub), start="2026-03-09", end="2026-03-11")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3 and {"next", "previous"} <= body.keys()
    zero, busy, after = body["results"]
    assert zero == {
        "date": "2026-03-09",
        "requests": 0,
        "predictions": 0,
        "errors": 0,
        "throttled": 0,
        "quota_used": 0,
        "quota_remaining": 100000,
        "p50_ms": None,
        "p95_ms": None,
    }
    assert busy["requests"] == 2 and busy["predictions"] == 3 and busy["throttled"] == 1
    assert after["quota_used"] == 3  # same month: the period's usage carries on


def test_errors_count_4xx_and_5xx_but_not_429():
    sub, _ = make_subscription()
    day = date(2026, 4, 1)
    statuses = [200, 400, 401, 404, 429, 429, 500, 503]
    write_events([usage_event(sub, day=day, status=s) for s in statuses])
    (item,) = get_usage(client_for(sub), start="2026-04-01", end="2026-04-01").json()["results"]
    assert (item["requests"], item["errors"], item["throttled"]) == (8, 5, 2)


def test_quota_used_resets_with_each_daily_period_and_includes_extension():
    sub, _ = make_subscription(quota=10, period="day")
    d1, d2 = date(2026, 5, 1), date(2026, 5, 2)
    write_events([usage_event(sub, day=d1, n=4), usage_event(sub, day=d2, n=7)])
    QuotaCounter.objects.create(
        subscription=sub, period_start=datetime(2026, 5, 2, tzinfo=UTC), used=7, extension=5
    )
    items = get_usage(client_for(sub), start="2026-05-01", end="2026-05-02").json()["results"]
    assert [(i["quota_used"], i["quota_remaining"]) for i in items] == [(4, 6), (7, 8)]


def test_quota_used_accumulates_over_a_monthly_period_from_before_the_range():
    sub, _ = make_subscription(quota=100, period="month")
    write_events(
        [usage_event(sub, day=date(2026, 6, 2), n=30), usage_event(sub, day=date(2026, 6, 20), n=5)]
    )
    items = get_usage(client_for(sub), start="2026-06-19", end="2026-06-20").json()["results"]
    assert [(i["quota_used"], i["quota_remaining"]) for i in items] == [(30, 70), (35, 65)]


def test_model_and_key_filters_narrow_the_counts_but_not_the_quota():
    sub, (k1, k2) = make_subscription()
    day = date(2026, 7, 7)
    write_events(
        [
            usage_event(sub, day=day, key=k1, model="iris", n=2),
            usage_event(sub, day=day, key=k2, model="iris", n=3),
            usage_event(sub, day=day, key=k2, model="house-price", n=4),
            usage_event(sub, day=day, key=None, model="iris", n=5),
        ]
    )
    client = client_for(sub)
    params = {"start": "2026-07-07", "end": "2026-07-07"}
    by_model = get_usage(client, **params, model="iris").json()["results"][0]
    by_key = get_usage(client, **params, key=k2.pk).json()["results"][0]
    both = get_usage(client, **params, key=k2.pk, model="house-price").json()["results"][0]
    assert (by_model["requests"], by_model["predictions"]) == (3, 10)
    assert (by_key["requests"], by_key["predictions"]) == (2, 7)
    assert (both["requests"], both["predictions"]) == (1, 4)
    assert by_model["quota_used"] == by_key["quota_used"] == 14


def test_percentiles_come_from_the_latency_histogram():
    sub, _ = make_subscription()
    day = date(2026, 8, 8)
    latencies = [1.0] * 50 + [9.0] * 45 + [200.0] * 5
    write_events([usage_event(sub, day=day, ms=ms) for ms in latencies])
    (item,) = get_usage(client_for(sub), start="2026-08-08", end="2026-08-08").json()["results"]
    assert item["p50_ms"] == 1.0  # bucket (0.5623, 1.0]
    assert item["p95_ms"] == 10.0  # 95th of 100 is the last 9 ms sample: bucket (5.623, 10]


def test_usage_defaults_to_the_last_30_days():
    sub, _ = make_subscription()
    body = get_usage(client_for(sub)).json()
    assert body["count"] == 30
    assert body["results"][-1]["date"] == TODAY.isoformat()


def test_usage_is_paginated_like_every_list():
    sub, _ = make_subscription()
    body = get_usage(client_for(sub), start="2025-01-01", end="2025-12-31").json()
    assert body["count"] == 365 and len(body["results"]) == 50 and body["next"]


@pytest.mark.parametrize(
    "params",
    [
        {"start": "2026-13-01", "end": "2026-12-31"},
        {"start": "yesterday"},
        {"start": "2026-01-01", "end": "2026-1-5x"},
        {"start": "2026-02-30"},
        {"start": "2026-03-05", "end": "2026-03-04"},
        {"start": "2025-01-01", "end": "2026-01-02"},
        {"key": "abc"},
        {"key": "-3"},
        {"model": "x" * 65},
    ],
)
def test_bad_usage_parameters_are_400_validation_error(params):
    sub, _ = make_subscription()
    response = get_usage(client_for(sub), **params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "validation_error"


def test_a_366_day_range_is_allowed():
    sub, _ = make_subscription()
    response = get_usage(client_for(sub), start="2024-01-01", end="2024-12-31")
    assert response.status_code == 200 and response.json()["count"] == 366


def test_unknown_model_filter_is_404():
    sub, _ = make_subscription()
    response = get_usage(client_for(sub), model="no-such-model")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_model_with_history_is_a_valid_filter_even_if_not_registered():
    sub, _ = make_subscription()
    write_events([usage_event(sub, day=TODAY, model="retired")])
    response = get_usage(client_for(sub), model="retired", start=TODAY.isoformat())
    assert response.status_code == 200 and response.json()["results"][0]["requests"] == 1


def test_another_subscribers_key_id_is_404():
    sub, _ = make_subscription()
    _, (other_key, _) = make_subscription()
    for key_id in (other_key.pk, 999999):
        response = get_usage(client_for(sub), key=key_id)
        assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_usage_shows_only_the_callers_own_subscription():
    sub, _ = make_subscription()
    other, _ = make_subscription()
    write_events([usage_event(other, day=TODAY, n=9)])
    item = get_usage(client_for(sub), start=TODAY.isoformat()).json()["results"][0]
    assert item["requests"] == 0 and item["quota_used"] == 0


def test_usage_requires_authentication():
    response = Client().get("/api/v1/usage")
    assert response.status_code in (401, 403)
    assert response.json()["code"] in ("not_authenticated", "permission_denied")


def test_an_api_key_cannot_read_usage():
    response = Client().get("/api/v1/usage", HTTP_X_API_KEY="mlk_abc.def")
    assert response.status_code in (401, 403)


def test_usage_rollups_are_written_with_their_raw_records():
    sub, (k1, _) = make_subscription()
    write_events([usage_event(sub, day=TODAY, key=k1), usage_event(sub, day=TODAY)])
    assert UsageRecord.objects.filter(subscription=sub).count() == 2
    assert DailyUsage.objects.filter(subscription=sub).count() == 2  # key and JWT rows
    assert set(DailyUsage.objects.values_list("key_id", flat=True)) == {k1.pk, 0}


def test_future_days_in_range_are_zero():
    sub, _ = make_subscription()
    end = (TODAY + timedelta(days=3)).isoformat()
    items = get_usage(client_for(sub), start=TODAY.isoformat(), end=end).json()["results"]
    assert len(items) == 4 and items[-1]["requests"] == 0


def test_recent_errors_lists_the_latest_failures_of_the_subscriber_only():
    sub, _ = make_subscription()
    other, _ = make_subscription()
    day = date(2026, 9, 9)
    write_events(
        [usage_event(sub, day=day, status=s) for s in (200, 400, 429, 503)]
        + [usage_event(other, day=day, status=500)]
    )
    errors = recent_errors(subscription=sub, limit=2)
    assert len(errors) == 2 and all(r.status >= 400 and r.subscription_id == sub.pk for r in errors)
    assert {r.status for r in recent_errors(subscription=sub)} == {400, 429, 503}


def test_daily_usage_selector_returns_the_api_items():
    sub, _ = make_subscription()
    write_events([usage_event(sub, day=date(2026, 9, 10), n=2)])
    items = daily_usage(subscription=sub, start=date(2026, 9, 10), end=date(2026, 9, 11))
    assert [(i["date"], i["requests"], i["predictions"]) for i in items] == [
        ("2026-09-10", 1, 2),
        ("2026-09-11", 0, 0),
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"end": "0001-01-01"},  # the default start would be 29 days before the first date
        {"end": "0001-01-10"},
        {"start": "0001-01-01", "end": "0001-01-03"},
        {"start": "9999-12-31", "end": "9999-12-31"},  # the quota period would end after it
        {"start": "9999-12-01"},
    ],
)
def test_days_at_the_ends_of_the_calendar_are_400_validation_error_not_500(params):
    sub, _ = make_subscription()
    response = get_usage(client_for(sub), **params)
    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "validation_error" and response.json()["errors"]
