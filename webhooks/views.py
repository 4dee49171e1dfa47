"""`/api/v1/orgs/{slug}/webhooks...` (contract §12): owner and admin only.

Thin: validate, call one service, serialize. Non-members get 404 and other roles 403
(`keys.org_access.OrgAPIView`); an endpoint or delivery of another organization is a 404.
"""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from keys import roles
from keys.org_access import OrgAPIView
from webhooks import services
from webhooks.models import Delivery, WebhookEndpoint
from webhooks.serializers import (
    DeliveryOutput,
    EndpointCreatedOutput,
    EndpointInput,
    EndpointOutput,
)

MAX_ID = 2**63 - 1


def checked_id(value: int) -> int:
    """An id from the URL; one beyond any database integer names nothing (404, not a 500)."""
    if value > MAX_ID:
        raise Http404("No such object.")
    return value


class WebhookAPIView(OrgAPIView):
    permission = roles.WEBHOOKS

    def endpoint(self) -> WebhookEndpoint:
        return get_object_or_404(
            WebhookEndpoint,
            pk=checked_id(self.kwargs["webhook_id"]),
            organization=self.organization,
        )


class WebhookListView(WebhookAPIView):
    """`GET` the organization's endpoints; `POST {url, events, description?}` -> 201 + secret."""

    @extend_schema(
        operation_id="api_v1_org_webhooks_list", responses={200: EndpointOutput(many=True)}
    )
    def get(self, request, slug):
        queryset = WebhookEndpoint.objects.filter(organization=self.organization)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(EndpointOutput(page, many=True).data)

    @extend_schema(request=EndpointInput, responses={201: EndpointCreatedOutput})
    def post(self, request, slug):
        data = EndpointInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint, secret = services.create_webhook_endpoint(
            organization=self.organization, **data.validated_data, **self.audit
        )
        body = {**EndpointOutput(endpoint).data, "secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)


class WebhookDetailView(WebhookAPIView):
    """`GET, PATCH, DELETE /webhooks/{id}`."""

    @extend_schema(responses={200: EndpointOutput})
    def get(self, request, slug, webhook_id):
        return Response(EndpointOutput(self.endpoint()).data)

    @extend_schema(request=EndpointInput(partial=True), responses={200: EndpointOutput})
    def patch(self, request, slug, webhook_id):
        endpoint = self.endpoint()
        data = EndpointInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        endpoint = services.update_webhook_endpoint(
            endpoint=endpoint, **data.validated_data, **self.audit
        )
        return Response(EndpointOutput(endpoint).data)

    @extend_schema(responses={204: None})
    def delete(self, request, slug, webhook_id):
        services.delete_webhook_endpoint(endpoint=self.endpoint(), **self.audit)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookTestView(WebhookAPIView):
    """`POST /webhooks/{id}/test`: a `ping` to this endpoint, delivered by a worker."""

    @extend_schema(request=None, responses={202: dict})
    def post(self, request, slug, webhook_id):
        event = services.send_test_ping(endpoint=self.endpoint())
        return Response({"event_id": event.webhook_id, "type": event.type}, status=202)


class DeliveryListView(WebhookAPIView):
    """`GET /webhooks/{id}/deliveries`, newest first."""

    @extend_schema(responses={200: DeliveryOutput(many=True)})
    def get(self, request, slug, webhook_id):
        queryset = Delivery.objects.filter(endpoint=self.endpoint()).select_related("event")
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(DeliveryOutput(page, many=True).data)


class RedeliverView(WebhookAPIView):
    """`POST /webhooks/{id}/deliveries/{delivery_id}/redeliver` -> 202."""

    @extend_schema(request=None, responses={202: DeliveryOutput})
    def post(self, request, slug, webhook_id, delivery_id):
        delivery = get_object_or_404(Delivery, pk=checked_id(delivery_id), endpoint=self.endpoint())
        delivery = services.redeliver(delivery=delivery)
        return Response(DeliveryOutput(delivery).data, status=202)
