"""Portal webhook pages and alert opt-outs: same services as the API, secret shown once."""

from __future__ import annotations

import pytest

from tests.support.webhook_helpers import add_member, org_with_owner
from webhooks.models import AlertOptOut, Delivery, WebhookEndpoint

pytestmark = pytest.mark.django_db


def test_owner_adds_an_endpoint_and_sees_its_secret_once(client):
    subscription, owner, _ = org_with_owner()
    client.force_login(owner)
    response = client.post(
        "/portal/webhooks/",
        {"url": "https://example.com/hook", "events": ["job.failed", "quota.threshold"]},
    )
    assert response.status_code == 201
    assert b"whsec_" in response.content and response["Cache-Control"].startswith("no-store")
    endpoint = WebhookEndpoint.objects.get(organization=subscription.organization)
    listing = client.get("/portal/webhooks/")
    assert b"https://example.com/hook" in listing.content and b"whsec_" not in listing.content
    assert client.post(f"/portal/webhooks/{endpoint.pk}/test/").status_code == 302
    page = client.get(f"/portal/webhooks/{endpoint.pk}/")
    assert page.status_code == 200 and b"Send a test ping" in page.content


def test_a_private_url_is_refused_on_the_form(client):
    _, owner, _ = org_with_owner()
    client.force_login(owner)
    response = client.post(
        "/portal/webhooks/", {"url": "https://10.0.0.1/", "events": ["job.failed"]}
    )
    assert response.status_code == 400 and b"public address" in response.content


def test_redeliver_from_the_log(client):
    from events.services import emit_event
    from webhooks import dispatch

    subscription, owner, _ = org_with_owner()
    client.force_login(owner)
    client.post("/portal/webhooks/", {"url": "https://example.com/h", "events": ["job.failed"]})
    endpoint = WebhookEndpoint.objects.get()
    emit_event(type="job.failed", organization_id=subscription.organization_id, data={"id": "x"})
    dispatch.dispatch_events()
    delivery = Delivery.objects.get(endpoint=endpoint)
    Delivery.objects.filter(pk=delivery.pk).update(status="failed", next_attempt_at=None)
    response = client.post(f"/portal/webhooks/{endpoint.pk}/redeliver/", {"delivery": delivery.pk})
    assert response.status_code == 302
    assert Delivery.objects.get(pk=delivery.pk).status == "pending"


def test_developers_do_not_manage_webhooks_in_the_portal(client):
    subscription, _, _ = org_with_owner()
    developer = add_member(subscription.organization, "developer")
    client.force_login(subscription.user)
    client.post("/portal/webhooks/", {"url": "https://example.com/h", "events": ["job.failed"]})
    endpoint = WebhookEndpoint.objects.get()
    client.force_login(developer)
    # a developer's own portal shows their personal organization; the team's endpoint is not theirs
    assert client.get(f"/portal/webhooks/{endpoint.pk}/").status_code in (403, 404)


def test_a_member_opts_out_of_one_alert_email(client):
    _, owner, _ = org_with_owner()
    client.force_login(owner)
    page = client.get("/portal/alerts/")
    assert page.status_code == 200 and page.content.count(b"checked") == 3
    client.post("/portal/alerts/", {"events": ["quota.threshold", "key.expiring"]})
    assert list(AlertOptOut.objects.values_list("event_type", flat=True)) == ["job.failed"]
