"""Shared helpers for the webhook tests: an organization with members, settings, verification."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid

import pytest
from django.contrib.auth import get_user_model
from standardwebhooks.webhooks import Webhook

from keys.models import Membership
from tests.conftest import make_subscriber_key

# This session's own webhook queue (as tests.support.jobs.JOB_QUEUE): a shared broker's
# other workers must not take these messages.
WEBHOOK_QUEUE = f"mlapi-webhooks-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def webhook_settings(settings):
    """Local receivers allowed (http, 127.0.0.1), quick retries and timeouts, own queue."""
    settings.MLAPI_WEBHOOK_ALLOW_HTTP = True
    settings.MLAPI_WEBHOOK_ALLOW_PRIVATE = True
    settings.MLAPI_WEBHOOK_RETRY_BASE_S = 0.2
    settings.MLAPI_WEBHOOK_TIMEOUT_S = 1.0
    settings.MLAPI_WEBHOOK_LEASE_S = 3.0
    settings.MLAPI_WEBHOOK_QUEUE = WEBHOOK_QUEUE
    settings.MLAPI_USAGE_MODE = "sync"
    return settings


def org_with_owner(**plan_fields):
    """(subscription, owner user, api key) of a fresh personal organization."""
    subscription, key = make_subscriber_key(**plan_fields)
    subscription.refresh_from_db()
    return subscription, subscription.user, key


def add_member(organization, role: str):
    user_model = get_user_model()
    n = user_model.objects.count()
    user = user_model.objects.create_user(
        username=f"member-{n}", email=f"member-{n}@example.com", password="x-Pass-12345"
    )
    Membership.objects.create(organization=organization, user=user, role=role)
    return user


def webhooks_url(org, suffix: str = "") -> str:
    return f"/api/v1/orgs/{org.slug}/webhooks{suffix}"


def create_endpoint(client, org, url: str, events=("key.revoked",)) -> tuple[int, str]:
    """(endpoint id, secret) of a new endpoint, through the API."""
    body = {"url": url, "events": list(events)}
    response = client.post(webhooks_url(org), body, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()["id"], response.json()["secret"]


def verified(secret: str, received) -> dict:
    """The payload, verified by the standardwebhooks package's own verifier."""
    return Webhook(secret).verify(received.body, received.headers)


def independent_signature_ok(secret: str, received) -> bool:
    """The Standard Webhooks algorithm, written out here independently of the product."""
    import base64
    import hashlib
    import hmac

    key = base64.b64decode(secret.removeprefix("whsec_"))
    h = {k.lower(): v for k, v in received.headers.items()}
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(part.split(",", 1) == ["v1", expected] for part in h["webhook-signature"].split(" "))


def payloads(requests) -> list[dict]:
    return [json.loads(r.body) for r in requests]


@contextlib.contextmanager
def beat_sweeping(every: float = 1.0):
    """What production's beat does every 15 s (`webhooks.sweep`), every `every` seconds in a
    thread: re-enqueue due deliveries whose countdown message a broker handed over late or not
    at all (seen on RabbitMQ under load: 6.7 s late, or not within 30 s)."""
    from django.db import connection

    from webhooks import dispatch

    stop = threading.Event()

    def sweep() -> None:
        try:
            while not stop.wait(every):
                dispatch.sweep()
        finally:
            connection.close()

    thread = threading.Thread(target=sweep, name="test-beat-sweep", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
