"""Portal dashboard, usage (chart, table, CSV), model docs and the plan page."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest

from keys.limits import consume_quota
from keys.models import Subscription
from keys.principal import Principal
from tests.factories import ApiKeyFactory, seeded_plan, usage_event
from usage.writer import write_events

pytestmark = pytest.mark.django_db

TODAY = datetime.now(UTC).date()
SUBSCRIBER_PAGES = [
    "/portal/dashboard/",
    "/portal/keys/",
    "/portal/usage/",
    "/portal/jobs/",
    "/portal/plan/",
    "/portal/usage/export.csv",
]


@pytest.fixture
def owner(client, make_subscriber):
    subscription = make_subscriber(plan="free")
    client.force_login(subscription.user)
    return subscription


def chart_data(response) -> dict:
    found = re.search(
        r'<script id="usage-chart-data" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    return json.loads(found[1])


@pytest.mark.parametrize("url", SUBSCRIBER_PAGES)
def test_subscriber_pages_send_anonymous_visitors_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/portal/login/?next=")


@pytest.mark.parametrize(
    "url",
    ["/portal/", "/portal/docs/", "/portal/login/", "/portal/signup/", "/portal/password-reset/"],
)
def test_public_pages_render_for_anonymous_visitors(client, url):
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<main id="main"' in html and 'href="#main"' in html
    assert "<script>" not in html  # CSP script-src 'self': no inline scripts


def test_every_page_sends_a_csp_without_inline_scripts(client, owner):
    response = client.get("/portal/dashboard/")
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert (
        "unsafe-inline"
        not in response["Content-Security-Policy"].split("script-src")[1].split(";")[0]
    )


def test_dashboard_shows_plan_quota_usage_and_recent_errors(client, owner):
    key = ApiKeyFactory(subscription=owner)
    write_events(
        [
            usage_event(owner, day=TODAY, n=7, key=key),
            usage_event(owner, day=TODAY - timedelta(days=3), n=2, key=key),
            usage_event(owner, day=TODAY, status=400, key=key),
        ]
    )
    response = client.get("/portal/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "free" in html and "Active" in html
    assert response.context["quota"].limit == 1000
    assert re.search(r'<meter id="quota-meter"[^>]*max="1000"', html)
    assert response.context["totals"] == {
        "requests": 3,
        "predictions": 9,
        "errors": 1,
        "throttled": 0,
    }
    chart = chart_data(response)
    assert len(chart["labels"]) == 30 and chart["labels"][-1] == TODAY.isoformat()
    assert chart["series"][0]["data"][-1] == 7 and chart["series"][0]["data"][-4] == 2
    assert "validation_error" in html and f"mlk_{key.prefix}" in html


def test_dashboard_of_a_new_subscriber_invites_a_first_key(client, owner):
    html = client.get("/portal/dashboard/").content.decode()
    assert "Create your first key" in html and "No errors recently" in html


def test_dashboard_shows_another_subscribers_usage_nowhere(client, owner, make_subscriber):
    other = make_subscriber()
    write_events([usage_event(other, day=TODAY, n=55)])
    response = client.get("/portal/dashboard/")
    assert response.context["totals"]["predictions"] == 0


def test_usage_defaults_to_the_last_30_days_with_a_table_and_chart(client, owner):
    write_events([usage_event(owner, day=TODAY, n=4)])
    # Today's quota comes from the live counter (what /api/v1/me shows), not the rollups.
    consume_quota(principal=Principal.for_subscription(owner), units=4)
    response = client.get("/portal/usage/")
    assert response.status_code == 200
    days = response.context["days"]
    assert len(days) == 30 and days[-1]["date"] == TODAY.isoformat()
    assert days[-1]["predictions"] == 4 and days[-1]["quota_used"] == 4
    assert len(chart_data(response)["labels"]) == 30
    assert f"start={(TODAY - timedelta(days=29)).isoformat()}" in response.context["csv_query"]


def test_usage_filters_by_range_model_and_key(client, owner):
    key = ApiKeyFactory(subscription=owner)
    write_events(
        [
            usage_event(owner, day=TODAY, n=4, key=key),
            usage_event(owner, day=TODAY, n=5, model="house-price"),
        ]
    )
    base = {"start": TODAY.isoformat(), "end": TODAY.isoformat()}
    both = client.get("/portal/usage/", base).context["days"]
    assert len(both) == 1 and both[0]["predictions"] == 9
    by_key = client.get("/portal/usage/", base | {"key": key.pk})
    assert by_key.context["days"][0]["predictions"] == 4


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"start": "2026-02-01", "end": "2026-01-01"}, "end", "end_before_start"),
        ({"start": "2024-01-01", "end": "2025-01-01"}, "end", "range_too_long"),
        ({"start": "not-a-date", "end": "2026-01-01"}, "start", "invalid"),
        ({"start": "2026-01-01"}, "end", "required"),
        ({"start": "2026-01-01", "end": "2026-01-02", "key": "abc"}, "key", "invalid_choice"),
        ({"start": "2026-01-01", "end": "2026-01-02", "model": "nope"}, "model", "invalid_choice"),
        ({"start": "9999-12-31", "end": "9999-12-31"}, "start", "out_of_range"),  # not a 500
        ({"start": "0001-01-01", "end": "0001-01-02"}, "end", "out_of_range"),
    ],
)
def test_bad_usage_filters_are_400_with_the_field_error(client, owner, params, field, code):
    response = client.get("/portal/usage/", params)
    assert response.status_code == 400
    assert code in [e.code for e in response.context["form"].errors.as_data()[field]]
    assert response.context["days"] is None
    export = client.get("/portal/usage/export.csv", params)
    assert export.status_code == 400 and export["Content-Type"].startswith("text/plain")


def test_another_subscribers_key_is_not_a_usage_filter(client, owner, make_subscriber):
    theirs = ApiKeyFactory(subscription=make_subscriber())
    params = {"start": TODAY.isoformat(), "end": TODAY.isoformat(), "key": theirs.pk}
    response = client.get("/portal/usage/", params)
    assert response.status_code == 400
    assert "invalid_choice" in [e.code for e in response.context["form"].errors.as_data()["key"]]


def test_usage_csv_has_one_row_per_day_with_the_api_columns(client, owner):
    write_events([usage_event(owner, day=TODAY, n=3), usage_event(owner, day=TODAY, status=429)])
    start = TODAY - timedelta(days=2)
    response = client.get(
        "/portal/usage/export.csv", {"start": start.isoformat(), "end": TODAY.isoformat()}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["date"] for r in rows] == [(start + timedelta(days=n)).isoformat() for n in range(3)]
    assert rows[-1]["predictions"] == "3" and rows[-1]["throttled"] == "1"
    assert rows[0]["requests"] == "0" and rows[0]["p50_ms"] == ""


def test_docs_show_schema_and_working_examples_for_every_model(client, demo_models):
    response = client.get("/portal/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    for name in ("iris", "house-price"):
        assert f'id="model-{name}"' in html
        assert f"http://testserver/api/v1/models/{name}/predict" in html
    assert "petal_width" in html and "property_type" in html
    assert "tritonclient.http" in html and "import requests" in html
    assert "X-API-Key: $MLAPI_KEY" in html
    assert (
        "tritonclient.grpc" in html and "InferenceServerClient(&quot;testserver:8001&quot;" in html
    )
    assert "&quot;x-api-key&quot;: os.environ" in html  # gRPC metadata keys are lower-case


def test_docs_examples_use_a_real_iris_flower_not_made_up_values(client, demo_models):
    page = unescape(client.get("/portal/docs/").content.decode())
    assert '"sepal_length": 5.1, "sepal_width": 3.5' in page


def test_docs_say_when_the_plan_does_not_cover_a_model(client, demo_models, make_subscriber):
    narrow = make_subscriber(plan="narrow", all_models=False, model_names=["iris"])
    client.force_login(narrow.user)
    items = {i["model"].name: i for i in client.get("/portal/docs/").context["models"]}
    assert items["iris"]["covered"] and not items["house-price"]["covered"]


def test_plan_change_to_a_plan_without_approval_is_immediate(client, owner):
    seeded_plan("pro")
    response = client.post("/portal/plan/", {"plan": "pro"})
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.plan.name == "pro" and owner.requested_plan is None
    assert "You are now on the pro plan" in client.get("/portal/plan/").content.decode()


def test_plan_change_to_a_plan_needing_approval_is_queued(client, owner):
    seeded_plan("enterprise")
    client.post("/portal/plan/", {"plan": "enterprise"})
    owner.refresh_from_db()
    assert owner.plan.name == "free" and owner.requested_plan.name == "enterprise"
    page = client.get("/portal/plan/").content.decode()
    assert "waiting for an operator" in page


@pytest.mark.parametrize("plan", ["", "free", "no-such-plan", "hidden"])
def test_plan_change_refuses_missing_current_unknown_and_private_plans(client, owner, plan):
    seeded_plan("pro")
    hidden = seeded_plan("enterprise")
    hidden.name, hidden.is_public = "hidden", False
    hidden.save()
    response = client.post("/portal/plan/", {"plan": plan})
    assert response.status_code == 400
    codes = [e.code for e in response.context["form"].errors.as_data()["plan"]]
    assert codes == (["required"] if plan == "" else ["invalid_choice"])
    assert Subscription.objects.get(pk=owner.pk).plan.name == "free"


def test_a_pending_subscription_is_told_so_on_the_dashboard(client, make_subscriber):
    pending = make_subscriber(plan="enterprise", status="pending")
    client.force_login(pending.user)
    html = client.get("/portal/dashboard/").content.decode()
    assert "waiting for an operator" in html and "subscription_inactive" in html
