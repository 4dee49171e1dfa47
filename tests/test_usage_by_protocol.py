"""Rollups per protocol and model version: the writer, readers that sum over them, the admin
report's split (tables, filters, CSV), team organizations as subscribers, and the migration."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import date

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from tests.factories import team_organization
from tests.factories import usage_event as event
from tests.support.usage import make_subscription
from usage.models import DailyUsage
from usage.writer import write_events

URL = "/admin/reports/usage/"
DAY = date(2026, 4, 7)
RANGE = {"start": "2026-04-06", "end": "2026-04-08"}


def on(protocol: str, version: str, base):
    """`base` (a v1, version "1" event) as answered by `version` over `protocol`."""
    path = {"grpc": "ModelInfer", "v2": "/v2/models/iris/infer"}.get(protocol, base.path)
    return replace(base, protocol=protocol, model_version=version, path=path)


@pytest.fixture
def mixed():
    """One subscriber and key, one model, one day: v1 on version 1, gRPC on versions 1 and 2."""
    sub, (key, _) = make_subscription()
    write_events(
        [on("v1", "1", event(sub, day=DAY, key=key, n=2, ms=4.0))] * 4
        + [on("v1", "1", event(sub, day=DAY, key=key, status=400))]
        + [on("grpc", "1", event(sub, day=DAY, key=key, n=3, ms=40.0))] * 2
        + [on("grpc", "2", event(sub, day=DAY, key=key, n=5, ms=40.0))]
        + [on("grpc", "2", event(sub, day=DAY, key=key, status=429))]
    )
    return sub, key


def csv_rows(response) -> list[dict]:
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.mark.django_db
def test_the_writer_keeps_one_rollup_per_protocol_and_version(mixed):
    sub, key = mixed
    rows = DailyUsage.objects.filter(subscription=sub, key_id=key.pk, model_name="iris")
    assert {(r.protocol, r.model_version): r.requests for r in rows} == {
        ("v1", "1"): 5,
        ("grpc", "1"): 2,
        ("grpc", "2"): 2,
    }
    write_events([on("grpc", "2", event(sub, day=DAY, key=key, n=1))])  # the upsert adds up
    assert rows.get(protocol="grpc", model_version="2").predictions == 6


@pytest.mark.django_db
@pytest.mark.urls("tests.support.usage")
def test_api_usage_sums_every_protocol_and_version_of_a_day(mixed):
    sub, key = mixed
    client = Client()
    client.force_login(sub.user)
    for params in ({}, {"model": "iris"}, {"key": key.pk}):
        response = client.get(
            "/api/v1/usage", {"start": "2026-04-07", "end": "2026-04-07", **params}
        )
        assert response.status_code == 200, params
        (item,) = response.json()["results"]
        assert (item["requests"], item["predictions"]) == (9, 4 * 2 + 2 * 3 + 5), params
        assert (item["errors"], item["throttled"]) == (1, 1), params
        assert item["quota_used"] == 19, params
        # 6 answers at 4 ms, 3 at 40 ms (bucket bounds 5.6234 and 56.2341): merged histograms.
        assert (item["p50_ms"], item["p95_ms"]) == (5.6234, 56.2341), params


@pytest.mark.django_db
def test_report_splits_rows_and_csv_by_protocol_and_version(admin_client, mixed):
    sub, _ = mixed
    report = admin_client.get(URL, RANGE).context["report"]
    split = {(r["protocol"], r["version"]): r["requests"] for r in report.rows}
    assert split == {("v1", "1"): 5, ("grpc", "1"): 2, ("grpc", "2"): 2}
    assert {r["protocol"]: r["requests"] for r in report.by_protocol} == {"v1": 5, "grpc": 4}
    assert report.totals["requests"] == 9
    rows = csv_rows(admin_client.get(URL, {**RANGE, "format": "csv"}))
    assert {(r["protocol"], r["version"]): int(r["requests"]) for r in rows} == split
    assert all(r["subscriber"] == sub.organization.slug and r["model"] == "iris" for r in rows)
    grpc_v2 = next(r for r in rows if (r["protocol"], r["version"]) == ("grpc", "2"))
    assert (grpc_v2["predictions"], grpc_v2["throttled"]) == ("5", "1")


@pytest.mark.django_db
def test_report_shows_the_by_protocol_table_and_new_columns(admin_client, mixed):
    html = admin_client.get(URL, RANGE).content.decode()
    assert "By protocol" in html and "Top subscribers" in html and "Top models" in html
    assert '<th scope="col">Version</th>' in html and '<th scope="col">Protocol</th>' in html
    assert 'title="Open Inference Protocol (gRPC)">grpc</td>' in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("filters", "requests", "predictions"),
    [
        ({"protocol": "grpc"}, 4, 11),
        ({"protocol": "v1"}, 5, 8),
        ({"version": "2"}, 2, 5),
        ({"protocol": "grpc", "version": "1"}, 2, 6),
        ({"protocol": "kserve-v1"}, 0, 0),
        ({"protocol": "grpc", "model": "iris", "status": "throttled"}, 1, 0),
    ],
)
def test_report_filters_by_protocol_and_version(
    admin_client, mixed, filters, requests, predictions
):
    response = admin_client.get(URL, {**RANGE, **filters})
    assert response.status_code == 200
    totals = response.context["report"].totals
    assert (totals["requests"], totals["predictions"]) == (requests, predictions)
    rows = csv_rows(admin_client.get(URL, {**RANGE, **filters, "format": "csv"}))
    assert sum(int(r["requests"]) for r in rows) == requests


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        {"protocol": "http"},
        {"protocol": "GRPC"},
        {"version": "x" * 33},
        {"version": "1 2"},
        {"version": "1\x002"},
    ],
)
def test_bad_protocol_or_version_filters_are_form_errors(admin_client, params):
    response = admin_client.get(URL, params)
    assert response.status_code == 400
    assert response.context["form"].errors.keys() == params.keys()
    assert admin_client.get(URL, {**params, "format": "csv"}).status_code == 400


@pytest.mark.django_db
def test_a_team_organizations_usage_shows_under_the_organization(admin_client):
    org = team_organization(slug="acme-labs")
    person, _ = make_subscription()
    write_events(
        [on("v2", "1", event(org.subscription, day=DAY, n=4))] * 3 + [event(person, day=DAY, n=1)]
    )
    report = admin_client.get(URL, RANGE).context["report"]
    top = {r["subscriber"]: r["requests"] for r in report.top_subscribers}
    assert top == {"acme-labs": 3, person.user.username: 1}
    for subscriber in ("acme-labs", "ACME-Labs"):
        response = admin_client.get(URL, {**RANGE, "subscriber": subscriber})
        (row,) = response.context["report"].rows
        assert (row["subscriber"], row["protocol"], row["requests"]) == ("acme-labs", "v2", 3)
    rows = csv_rows(admin_client.get(URL, {**RANGE, "subscriber": "acme-labs", "format": "csv"}))
    assert [(r["subscriber"], r["plan"], r["predictions"]) for r in rows] == [
        ("acme-labs", org.subscription.plan.name, "12")
    ]
    # A user's name still finds their personal subscription, as it always did.
    response = admin_client.get(URL, {**RANGE, "subscriber": person.user.username})
    assert response.context["report"].totals["requests"] == 1


@pytest.mark.django_db(transaction=True)
def test_rollups_from_before_the_migration_keep_empty_protocol_and_version():
    sub, _ = make_subscription()
    before = [("usage", "0003_usagerecord_request_id")]
    after = [("usage", "0004_dailyusage_version_protocol")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("usage", "DailyUsage")
    old.objects.create(day=DAY, subscription_id=sub.pk, key_id=0, model_name="iris", requests=7)
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    row = DailyUsage.objects.get(subscription=sub)
    assert (row.requests, row.protocol, row.model_version) == (7, "", "")
    write_events([event(sub, day=DAY)])  # new traffic gets its own row beside the old one
    assert DailyUsage.objects.filter(subscription=sub).count() == 2
