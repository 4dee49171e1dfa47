"""`/api/v1/orgs/{slug}/webhooks...` (contract §12): who may, what is accepted, secret once."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from tests.support.webhook_helpers import add_member, org_with_owner, webhooks_url
from webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_client(client):
    subscription, owner, _ = org_with_owner()
    client.force_login(owner)
    client.org = subscription.organization
    return client


def post(client, body):
    return client.post(webhooks_url(client.org), body, content_type="application/json")


def test_created_endpoint_shows_its_secret_once_and_keeps_it_encrypted(owner_client):
    response = post(owner_client, {"url": "https://example.com/hook", "events": ["key.revoked"]})
    assert response.status_code == 201, response.content
    body = response.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert body["events"] == ["key.revoked"] and body["url"] == "https://example.com/hook"
    detail = owner_client.get(webhooks_url(owner_client.org, f"/{body['id']}")).json()
    listing = owner_client.get(webhooks_url(owner_client.org)).json()
    assert "secret" not in detail and "secret" not in listing["results"][0]
    stored = WebhookEndpoint.objects.get(pk=body["id"]).secret_encrypted
    assert secret not in stored and secret.removeprefix("whsec_") not in stored


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("not a url", "valid"),
        ("ftp://example.com/hook", "http(s)"),
        ("https://", "http(s)"),
        ("http://example.com/hook", "https"),
        ("https://127.0.0.1/hook", "public address"),
        ("https://10.1.2.3/hook", "public address"),
        ("https://192.168.0.10:8443/hook", "public address"),
        ("https://169.254.169.254/latest/meta-data", "public address"),
        ("https://[::1]/hook", "public address"),
        ("https://[::ffff:10.0.0.1]/hook", "public address"),
        ("https://localhost/hook", "localhost"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("https://example.com:99999/hook", "valid"),
    ],
)
def test_unacceptable_urls_are_refused_with_the_reason(owner_client, url, reason):
    response = post(owner_client, {"url": url, "events": ["key.revoked"]})
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["errors"][0]["field"] == "url"
    assert reason in body["errors"][0]["message"]
    assert not WebhookEndpoint.objects.exists()


def test_http_and_private_targets_are_accepted_only_when_the_settings_allow(owner_client, settings):
    settings.MLAPI_WEBHOOK_ALLOW_HTTP = True
    settings.MLAPI_WEBHOOK_ALLOW_PRIVATE = True
    response = post(owner_client, {"url": "http://127.0.0.1:9/hook", "events": ["key.revoked"]})
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("events", "field"),
    [
        (["quota.exceeded"], "events[0]"),
        (["key.revoked", "nope"], "events[1]"),
        (["ping"], "events[0]"),  # a ping is only ever sent by the test button
        ([], "events"),
        ("key.revoked", "events"),
    ],
)
def test_unknown_event_names_are_refused(owner_client, events, field):
    response = post(owner_client, {"url": "https://example.com/hook", "events": events})
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == field


def test_patch_and_delete_change_the_endpoint_and_are_audited(owner_client):
    created = post(owner_client, {"url": "https://example.com/a", "events": ["key.revoked"]})
    url = webhooks_url(owner_client.org, f"/{created.json()['id']}")
    patched = owner_client.patch(
        url, {"events": ["job.failed", "quota.threshold"]}, content_type="application/json"
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["events"] == ["job.failed", "quota.threshold"]
    bad = owner_client.patch(url, {"url": "https://10.0.0.1/"}, content_type="application/json")
    assert bad.status_code == 400
    assert owner_client.delete(url).status_code == 204
    assert owner_client.get(url).status_code == 404
    actions = list(
        AuditEntry.objects.filter(organization_id=owner_client.org.pk)
        .filter(action__startswith="webhook.")
        .values_list("action", flat=True)
    )
    assert sorted(actions) == ["webhook.created", "webhook.deleted", "webhook.updated"]


@pytest.mark.parametrize(("role", "status"), [("admin", 201), ("developer", 403), ("viewer", 403)])
def test_only_owners_and_admins_manage_webhooks(client, role, status):
    subscription, _, _ = org_with_owner()
    member = add_member(subscription.organization, role)
    client.force_login(member)
    response = client.post(
        webhooks_url(subscription.organization),
        {"url": "https://example.com/hook", "events": ["key.revoked"]},
        content_type="application/json",
    )
    assert response.status_code == status, response.content
    if status == 403:
        assert response.json()["code"] == "permission_denied"
        assert client.get(webhooks_url(subscription.organization)).status_code == 403


def test_non_members_get_404_for_the_organization_and_its_endpoints(client, owner_client):
    created = post(owner_client, {"url": "https://example.com/a", "events": ["key.revoked"]})
    endpoint_id = created.json()["id"]
    _, stranger, _ = org_with_owner()
    client.force_login(stranger)
    org = owner_client.org
    assert client.get(webhooks_url(org)).status_code == 404
    assert client.get(webhooks_url(org, f"/{endpoint_id}")).status_code == 404
    assert client.post(webhooks_url(org, f"/{endpoint_id}/test")).status_code == 404
    assert client.get(webhooks_url(org, f"/{endpoint_id}/deliveries")).status_code == 404


def test_an_api_key_cannot_manage_webhooks(client):
    subscription, _, key = org_with_owner()
    response = client.get(webhooks_url(subscription.organization), HTTP_X_API_KEY=key)
    assert response.status_code in (401, 403)


def test_ids_beyond_any_database_integer_are_404_not_500(owner_client):
    huge = 2**70
    assert owner_client.get(webhooks_url(owner_client.org, f"/{huge}")).status_code == 404
    url = webhooks_url(owner_client.org, f"/1/deliveries/{huge}/redeliver")
    assert owner_client.post(url).status_code == 404
