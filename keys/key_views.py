"""`/api/v1/keys`: list, create, get, revoke and rotate the caller's own API keys.

Another subscriber's key is a 404, exactly like a key that does not exist.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from keys import serializers, services
from keys.models import ApiKey
from keys.views import ManagementAPIView


def _with_plaintext(api_key: ApiKey, plaintext: str) -> dict:
    return {**serializers.KeyOutput(api_key).data, "key": plaintext}


class KeyListView(ManagementAPIView):
    """`GET` (paginated) and `POST /api/v1/keys` (the full key is in `key`, once)."""

    serializer_class = serializers.KeyOutput

    def get_queryset(self):
        return ApiKey.objects.for_subscription(self.subscription.pk).order_by("-created_at", "-id")

    @extend_schema(operation_id="api_v1_keys_list", responses=serializers.KeyOutput(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(serializers.KeyOutput(page, many=True).data)

    @extend_schema(request=serializers.KeyCreateInput, responses={201: serializers.KeyOutput})
    def post(self, request):
        data = serializers.KeyCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        api_key, plaintext = services.create_api_key(
            subscription=self.subscription, **data.validated_data
        )
        return Response(_with_plaintext(api_key, plaintext), status=status.HTTP_201_CREATED)


class KeyDetailView(ManagementAPIView):
    """`GET` and `DELETE /api/v1/keys/{id}` (delete revokes; the row stays for the record)."""

    serializer_class = serializers.KeyOutput

    def get_object(self):
        keys = ApiKey.objects.for_subscription(self.subscription.pk)
        return get_object_or_404(keys, pk=self.kwargs["pk"])

    def get(self, request, pk: int):
        return Response(serializers.KeyOutput(self.get_object()).data)

    def delete(self, request, pk: int):
        services.revoke_api_key(api_key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class KeyRotateView(KeyDetailView):
    """`POST /api/v1/keys/{id}/rotate`: a successor key (in `key`, once); the old one has grace."""

    http_method_names = ["post", "options"]

    @extend_schema(request=None, responses={201: serializers.KeyOutput})
    def post(self, request, pk: int):
        api_key, plaintext = services.rotate_api_key(api_key=self.get_object())
        return Response(_with_plaintext(api_key, plaintext), status=status.HTTP_201_CREATED)
