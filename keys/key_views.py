"""`/api/v1/keys` (the personal organization, §6) and `/api/v1/orgs/{slug}/keys` (§9).

Another organization's key is a 404, exactly like a key that does not exist. The org routes add
role checks (developers manage only the keys they created) and `PATCH` for name and restrictions.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from keys import roles, serializers, services
from keys.clientip import client_ip
from keys.models import ApiKey
from keys.org_access import OrgAPIView
from keys.org_serializers import KeyUpdateInput, OrgKeyCreateInput
from keys.views import ManagementAPIView
from mlapi.exceptions import Forbidden


def _with_plaintext(api_key: ApiKey, plaintext: str) -> dict:
    return {**serializers.KeyOutput(api_key).data, "key": plaintext}


class KeyRoutes:
    """What the personal and the organization key views share; hooks for role checks."""

    serializer_class = serializers.KeyOutput

    def key_queryset(self):
        return (
            ApiKey.objects.for_subscription(self.subscription.pk)
            .select_related("created_by", "subscription__plan")
            .order_by("-created_at", "-id")
        )

    def get_object(self) -> ApiKey:
        return get_object_or_404(self.key_queryset(), pk=self.kwargs["pk"])

    def check_manage(self, api_key: ApiKey) -> None:
        """Refuse changing `api_key` (org routes: by role)."""

    def audit_context(self) -> dict:
        return {"actor": self.request.user, "ip": client_ip(self.request)}

    def list_keys(self, request):
        page = self.paginate_queryset(self.key_queryset())
        return self.get_paginated_response(serializers.KeyOutput(page, many=True).data)

    def create_key(self, request):
        data = OrgKeyCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        api_key, plaintext = services.create_api_key(
            subscription=self.subscription,
            name=data.validated_data["name"],
            expires_at=data.validated_data["expires_at"],
            created_by=request.user,
            restrictions=data.restrictions(),
            **self.audit_context(),
        )
        return Response(_with_plaintext(api_key, plaintext), status=status.HTTP_201_CREATED)

    def update_key(self, request):
        api_key = self.get_object()
        self.check_manage(api_key)
        data = KeyUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        api_key = services.update_api_key(
            api_key=api_key,
            name=data.validated_data.get("name"),
            restrictions=data.restrictions(),
            **self.audit_context(),
        )
        return Response(serializers.KeyOutput(api_key).data)

    def revoke_key(self, request):
        api_key = self.get_object()
        self.check_manage(api_key)
        services.revoke_api_key(api_key=api_key, **self.audit_context())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def rotate_key(self, request):
        api_key = self.get_object()
        self.check_manage(api_key)
        new_key, plaintext = services.rotate_api_key(api_key=api_key, **self.audit_context())
        return Response(_with_plaintext(new_key, plaintext), status=status.HTTP_201_CREATED)


class KeyListView(KeyRoutes, ManagementAPIView):
    """`GET` (paginated) and `POST /api/v1/keys` (the full key is in `key`, once)."""

    @extend_schema(operation_id="api_v1_keys_list", responses=serializers.KeyOutput(many=True))
    def get(self, request):
        return self.list_keys(request)

    @extend_schema(request=OrgKeyCreateInput, responses={201: serializers.KeyOutput})
    def post(self, request):
        return self.create_key(request)


class KeyDetailView(KeyRoutes, ManagementAPIView):
    """`GET` and `DELETE /api/v1/keys/{id}` (delete revokes; the row stays for the record)."""

    def get(self, request, pk: int):
        return Response(serializers.KeyOutput(self.get_object()).data)

    def delete(self, request, pk: int):
        return self.revoke_key(request)


class KeyRotateView(KeyDetailView):
    """`POST /api/v1/keys/{id}/rotate`: a successor key (in `key`, once); the old one has grace."""

    http_method_names = ["post", "options"]

    @extend_schema(request=None, responses={201: serializers.KeyOutput})
    def post(self, request, pk: int):
        return self.rotate_key(request)


class OrgKeyRoutes(KeyRoutes):
    """Role checks for the organization's keys: developers manage only their own."""

    def check_manage(self, api_key: ApiKey) -> None:
        if not roles.may_manage_key(
            role=self.role, user_id=self.request.user.pk, created_by_id=api_key.created_by_id
        ):
            raise Forbidden("Your role lets you change only the keys you created.")


class OrgKeyListView(OrgKeyRoutes, OrgAPIView):
    """`GET, POST /api/v1/orgs/{slug}/keys` (create: owner, admin, developer)."""

    @extend_schema(operation_id="api_v1_org_keys_list", responses=serializers.KeyOutput(many=True))
    def get(self, request, slug: str):
        return self.list_keys(request)

    @extend_schema(request=OrgKeyCreateInput, responses={201: serializers.KeyOutput})
    def post(self, request, slug: str):
        self.require(roles.KEYS_CREATE)
        return self.create_key(request)


class OrgKeyDetailView(OrgKeyRoutes, OrgAPIView):
    """`GET, PATCH, DELETE /api/v1/orgs/{slug}/keys/{id}`."""

    @extend_schema(responses=serializers.KeyOutput)
    def get(self, request, slug: str, pk: int):
        return Response(serializers.KeyOutput(self.get_object()).data)

    @extend_schema(request=KeyUpdateInput, responses=serializers.KeyOutput)
    def patch(self, request, slug: str, pk: int):
        return self.update_key(request)

    @extend_schema(responses={204: None})
    def delete(self, request, slug: str, pk: int):
        return self.revoke_key(request)


class OrgKeyRotateView(OrgKeyRoutes, OrgAPIView):
    """`POST /api/v1/orgs/{slug}/keys/{id}/rotate`."""

    @extend_schema(request=None, responses={201: serializers.KeyOutput})
    def post(self, request, slug: str, pk: int):
        return self.rotate_key(request)
