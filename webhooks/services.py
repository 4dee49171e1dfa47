"""Workflows of webhook endpoints: create (secret shown once), change, delete, test, redeliver.

Keyword-only and atomic with their audit entry (`audit.record_action`); `actor` and `ip` are
only for that entry. URLs go through the SSRF guard's save-time check here; every delivery
checks again at connect time (webhooks/transport.py).
"""

from __future__ import annotations

from django.db import transaction

from audit.services import record_action
from events.services import PING, SUBSCRIBABLE, emit_event
from keys.models import Organization
from mlapi.exceptions import invalid
from webhooks import crypto, dispatch
from webhooks.models import Delivery, WebhookEndpoint
from webhooks.urlguard import BlockedURL, check_url

MAX_ENDPOINTS = 20


def clean_url(url: str) -> str:
    try:
        check_url(url)
    except BlockedURL as exc:
        raise invalid("url", str(exc)) from None
    return url


def clean_events(events) -> list[str]:
    if not isinstance(events, list) or not events:
        raise invalid("events", f"Name at least one event: {', '.join(SUBSCRIBABLE)}.")
    for i, name in enumerate(events):
        if not isinstance(name, str) or name not in SUBSCRIBABLE:
            raise invalid(
                f"events[{i}]", f"Unknown event {name!r}; known: {', '.join(SUBSCRIBABLE)}."
            )
    return sorted(set(events))


def _audit(action: str, endpoint: WebhookEndpoint, *, actor, ip, changes) -> None:
    record_action(
        action=action,
        target=endpoint,
        actor=actor,
        organization_id=endpoint.organization_id,
        ip=ip,
        changes=changes,
    )


@transaction.atomic
def create_webhook_endpoint(
    *, organization: Organization, url: str, events: list[str], description: str = "",
    is_active: bool = True, actor=None, ip=None,
) -> tuple[WebhookEndpoint, str]:  # fmt: skip
    """A new endpoint and its secret (`whsec_...`), which is returned here only."""
    url, events = clean_url(url), clean_events(events)
    if WebhookEndpoint.objects.filter(organization=organization).count() >= MAX_ENDPOINTS:
        raise invalid("url", f"An organization has at most {MAX_ENDPOINTS} webhook endpoints.")
    secret = crypto.new_secret()
    endpoint = WebhookEndpoint.objects.create(
        organization=organization,
        url=url,
        events=events,
        description=description,
        is_active=is_active,
        secret_encrypted=crypto.encrypt_secret(secret),
    )
    changes = {"url": url, "events": events}
    _audit("webhook.created", endpoint, actor=actor, ip=ip, changes=changes)
    return endpoint, secret


@transaction.atomic
def update_webhook_endpoint(
    *, endpoint: WebhookEndpoint, actor=None, ip=None, **fields
) -> WebhookEndpoint:
    """Change any of `url`, `events`, `description`, `is_active` (others are ignored)."""
    changes = {}
    cleaners = {"url": clean_url, "events": clean_events, "description": str, "is_active": bool}
    for name, clean in cleaners.items():
        if name in fields:
            value = clean(fields[name])
            if value != getattr(endpoint, name):
                changes[name] = [getattr(endpoint, name), value]
                setattr(endpoint, name, value)
    if changes:
        endpoint.save()
        _audit("webhook.updated", endpoint, actor=actor, ip=ip, changes=changes)
    return endpoint


@transaction.atomic
def delete_webhook_endpoint(*, endpoint: WebhookEndpoint, actor=None, ip=None) -> None:
    """Delete the endpoint and its delivery log; pending deliveries stop."""
    _audit("webhook.deleted", endpoint, actor=actor, ip=ip, changes={"url": endpoint.url})
    endpoint.delete()


@transaction.atomic
def send_test_ping(*, endpoint: WebhookEndpoint):
    """A `ping` event for this endpoint only, delivered like any other."""
    return emit_event(
        type=PING,
        organization_id=endpoint.organization_id,
        data={"endpoint_id": endpoint.pk, "message": "Test event from mlapi."},
        endpoint_id=endpoint.pk,
    )


def redeliver(*, delivery: Delivery) -> Delivery:
    """Send the delivery's event again now, with the same `webhook-id`."""
    return dispatch.redeliver(delivery=delivery)
