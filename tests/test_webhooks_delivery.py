"""One delivery attempt against a real local receiver: signed, bounded, never following.

The attempt runs in the test's thread here (the same function the Celery task calls), so each
misbehaving receiver is checked quickly; tests/test_webhooks_worker.py drives real workers.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from events.models import Event
from tests.support import webhook_helpers
from tests.support.webhook_helpers import (
    independent_signature_ok,
    org_with_owner,
    verified,
)
from tests.support.webhook_receiver import Receiver
from webhooks import dispatch, services, urlguard
from webhooks.models import Delivery, DeliveryStatus

webhook_settings = webhook_helpers.webhook_settings  # the fixture

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _local(webhook_settings):
    webhook_settings.MLAPI_WEBHOOK_MAX_COUNTDOWN_S = 0  # retries left to the sweep here


def ping_delivery(url: str) -> tuple[Delivery, str]:
    subscription, _, _ = org_with_owner()
    endpoint, secret = services.create_webhook_endpoint(
        organization=subscription.organization, url=url, events=["key.revoked"]
    )
    services.send_test_ping(endpoint=endpoint)
    assert dispatch.dispatch_events() >= 1
    return Delivery.objects.get(endpoint=endpoint), secret


def attempt(delivery: Delivery) -> Delivery:
    dispatch.attempt_delivery(delivery_id=delivery.pk)
    return Delivery.objects.get(pk=delivery.pk)


def test_a_ping_arrives_signed_per_standard_webhooks():
    with Receiver(["ok"]) as receiver:
        delivery, secret = ping_delivery(receiver.url)
        delivery = attempt(delivery)
        [received] = receiver.wait_for(1)
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert (delivery.response_status, delivery.attempts) == (200, 1)
    assert delivery.response_excerpt == "received"
    payload = verified(secret, received)  # the standardwebhooks package's verifier
    assert independent_signature_ok(secret, received)
    assert payload["type"] == "ping" and payload["data"]["endpoint_id"] == delivery.endpoint_id
    assert payload["timestamp"].endswith("Z")
    event = Event.objects.get(pk=delivery.event_id)
    assert received.headers["webhook-id"] == event.webhook_id
    assert received.headers["Content-Type"] == "application/json"


def test_a_tampered_body_does_not_verify():
    from standardwebhooks.webhooks import WebhookVerificationError

    with Receiver(["ok"]) as receiver:
        delivery, secret = ping_delivery(receiver.url)
        attempt(delivery)
        [received] = receiver.wait_for(1)
    received.body = received.body.replace(b"ping", b"pong")
    with pytest.raises(WebhookVerificationError):
        verified(secret, received)


def test_a_500_is_a_failed_attempt_scheduled_for_retry_with_backoff():
    with Receiver([500]) as receiver:
        delivery, _ = ping_delivery(receiver.url)
        first = attempt(delivery)
        assert first.status == DeliveryStatus.PENDING and first.response_status == 500
        assert first.error == "answered 500"
        gap1 = (first.next_attempt_at - first.last_attempt_at).total_seconds()
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        second = attempt(delivery)
        gap2 = (second.next_attempt_at - second.last_attempt_at).total_seconds()
        receiver.wait_for(2)
    assert second.attempts == 2 and gap2 > 1.5 * gap1  # exponential
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert len(ids) == 1  # the same webhook-id on every attempt


def test_a_redirect_is_not_followed():
    with Receiver(["ok"]) as target, Receiver(["redirect"], redirect_to=target.url) as receiver:
        delivery, _ = ping_delivery(receiver.url)
        delivery = attempt(delivery)
        receiver.wait_for(1)
        time.sleep(0.2)
        assert target.requests == []
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.response_status == 302 and "not followed" in delivery.error


def test_a_connection_reset_is_a_failed_attempt():
    with Receiver(["reset"]) as receiver:
        delivery, _ = ping_delivery(receiver.url)
        delivery = attempt(delivery)
    assert delivery.response_status is None and delivery.status == DeliveryStatus.PENDING
    assert "reset" in delivery.error or "closed" in delivery.error.lower(), delivery.error


@pytest.mark.parametrize("behaviour", ["hang", "trickle"])
def test_a_receiver_that_never_finishes_answering_times_out_in_bounded_time(behaviour):
    with Receiver([behaviour]) as receiver:
        delivery, _ = ping_delivery(receiver.url)
        started = time.monotonic()
        delivery = attempt(delivery)
        took = time.monotonic() - started
    assert took < 3.0  # the 1 s test timeout bounds the whole attempt, trickling or not
    assert delivery.error == "timed out after 1 s"
    assert delivery.status == DeliveryStatus.PENDING and delivery.next_attempt_at is not None


def test_only_a_short_excerpt_of_the_answer_is_stored():
    with Receiver(["big"]) as receiver:
        delivery, _ = ping_delivery(receiver.url)
        delivery = attempt(delivery)
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert len(delivery.response_excerpt) == 500


def test_retries_stop_when_the_retry_window_has_closed(webhook_settings):
    with Receiver([500]) as receiver:
        delivery, _ = ping_delivery(receiver.url)
        Event.objects.filter(pk=delivery.event_id).update(
            created_at=timezone.now() - timedelta(days=2)
        )
        delivery = attempt(delivery)
    assert delivery.status == DeliveryStatus.FAILED and delivery.next_attempt_at is None


def test_private_targets_are_checked_again_when_connecting(webhook_settings):
    """Saved while private targets were allowed; refused at connect time once they are not."""
    with Receiver(["ok"]) as receiver:
        delivery, _ = ping_delivery(receiver.url)
        webhook_settings.MLAPI_WEBHOOK_ALLOW_PRIVATE = False
        delivery = attempt(delivery)
        time.sleep(0.1)
        assert receiver.requests == []
    assert delivery.status == DeliveryStatus.FAILED  # retrying cannot help
    assert "public address" in delivery.error


def test_every_address_a_name_resolves_to_is_checked(settings):
    settings.MLAPI_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(urlguard.BlockedURL, match="not a public address"):
        urlguard.resolve_public("localhost", 443)  # a name, not a literal: DNS says loopback
    settings.MLAPI_WEBHOOK_ALLOW_PRIVATE = True
    assert urlguard.resolve_public("localhost", 443)


def test_a_due_delivery_whose_lease_expired_is_due_again():
    with Receiver(["ok"]) as receiver:
        delivery, _ = ping_delivery(receiver.url)
        now = timezone.now()
        Delivery.objects.filter(pk=delivery.pk).update(lease_until=now + timedelta(seconds=30))
        assert dispatch.attempt_delivery(delivery_id=delivery.pk) is None  # a live lease
        Delivery.objects.filter(pk=delivery.pk).update(lease_until=now - timedelta(seconds=1))
        assert dispatch.attempt_delivery(delivery_id=delivery.pk) == DeliveryStatus.SUCCEEDED
