"""Webhook serializers: translation only (services check URLs and event names)."""

from __future__ import annotations

from rest_framework import serializers

from mlapi import fields
from webhooks.models import Delivery, WebhookEndpoint


class EndpointInput(serializers.Serializer):
    """`{url, events, description?}` (PATCH: any of them, and `is_active`)."""

    url = fields.CharField(max_length=2000)
    events = serializers.ListField(child=fields.CharField(max_length=64), max_length=20)
    description = fields.CharField(max_length=200, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)


class EndpointOutput(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "events", "description", "is_active", "created_at", "updated_at"]


class EndpointCreatedOutput(EndpointOutput):
    """The endpoint plus its signing secret, in the creation reply only."""

    secret = serializers.CharField(read_only=True)

    class Meta(EndpointOutput.Meta):
        fields = [*EndpointOutput.Meta.fields, "secret"]


class DeliveryOutput(serializers.ModelSerializer):
    """One delivery: event, status, attempts, next retry, last status code and duration."""

    event = serializers.CharField(source="event.type")
    event_id = serializers.CharField(source="event.webhook_id")
    status_code = serializers.IntegerField(source="response_status", allow_null=True)
    next_retry_at = serializers.DateTimeField(source="next_attempt_at", allow_null=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event",
            "event_id",
            "status",
            "attempts",
            "next_retry_at",
            "status_code",
            "duration_ms",
            "error",
            "response_excerpt",
            "created_at",
            "last_attempt_at",
            "delivered_at",
        ]
