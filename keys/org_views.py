"""`/api/v1/orgs`, members, invitations and `POST /api/v1/invitations/accept` (contract §9)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from keys import orgs, roles
from keys.account_views import subscription_body
from keys.clientip import client_ip
from keys.models import Membership
from keys.org_access import OrgAPIView
from keys.org_serializers import (
    AcceptInput,
    InvitationInput,
    InvitationOutput,
    MemberOutput,
    OrgCreateInput,
    RoleInput,
)
from keys.views import ManagementAPIView


def problems(*statuses: int) -> dict:
    """Declared error responses beyond those mlapi.openapi adds to every operation."""
    return {(status, "application/problem+json"): OpenApiTypes.OBJECT for status in statuses}


def org_body(membership: Membership) -> dict:
    org = membership.organization
    return {
        "slug": org.slug,
        "name": org.name,
        "role": membership.role,
        "subscription": subscription_body(org.subscription),
    }


class OrgListView(ManagementAPIView):
    """`GET /api/v1/orgs` (the caller's organizations) and `POST` (a new one, caller owner)."""

    def get_queryset(self):
        return (
            Membership.objects.filter(user_id=self.request.user.pk)
            .select_related("organization__subscription__plan")
            .order_by("organization__slug")
        )

    @extend_schema(operation_id="api_v1_orgs_list", responses={200: dict})
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([org_body(m) for m in page])

    @extend_schema(request=OrgCreateInput, responses={201: dict})
    def post(self, request):
        data = OrgCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        org = orgs.create_organization(
            name=data.validated_data["name"],
            slug=data.validated_data.get("slug"),
            plan_name=data.validated_data.get("plan"),
            owner=request.user,
            ip=client_ip(request),
        )
        membership = self.get_queryset().get(organization=org)
        return Response(org_body(membership), status=status.HTTP_201_CREATED)


class OrgDetailView(OrgAPIView):
    """`GET /api/v1/orgs/{slug}`: `{slug, name, role, subscription}`."""

    @extend_schema(responses={200: dict})
    def get(self, request, slug: str):
        return Response(org_body(self.membership))


class MemberListView(OrgAPIView):
    """`GET /api/v1/orgs/{slug}/members` (every member may see who is in the organization)."""

    @extend_schema(operation_id="api_v1_org_members_list", responses=MemberOutput(many=True))
    def get(self, request, slug: str):
        members = self.organization.memberships.select_related("user").order_by("created_at", "id")
        page = self.paginate_queryset(members)
        return self.get_paginated_response(MemberOutput(page, many=True).data)


class MemberDetailView(OrgAPIView):
    """`PATCH {role}` and `DELETE /api/v1/orgs/{slug}/members/{user_id}`; never the last owner."""

    def get_object(self) -> Membership:
        members = self.organization.memberships.select_related("user", "organization")
        return get_object_or_404(members, user_id=self.kwargs["user_id"])

    @extend_schema(request=RoleInput, responses={200: MemberOutput} | problems(409))
    def patch(self, request, slug: str, user_id: int):
        self.require(roles.MEMBERS_MANAGE)
        data = RoleInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = orgs.change_member_role(
            membership=self.get_object(),
            role=data.validated_data["role"],
            actor_role=self.role,
            **self.audit,
        )
        return Response(MemberOutput(membership).data)

    @extend_schema(responses={204: None} | problems(409))
    def delete(self, request, slug: str, user_id: int):
        target = self.get_object()
        if target.user_id != request.user.pk:  # anyone may leave; removing others needs rights
            self.require(roles.MEMBERS_MANAGE)
        orgs.remove_member(membership=target, actor_role=self.role, **self.audit)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationListView(OrgAPIView):
    """`GET, POST /api/v1/orgs/{slug}/invitations` (owner, admin): email with a one-time link."""

    permission = roles.INVITATIONS

    @extend_schema(
        operation_id="api_v1_org_invitations_list", responses=InvitationOutput(many=True)
    )
    def get(self, request, slug: str):
        invitations = self.organization.invitations.select_related("invited_by")
        page = self.paginate_queryset(invitations.filter(used_at__isnull=True))
        return self.get_paginated_response(InvitationOutput(page, many=True).data)

    @extend_schema(request=InvitationInput, responses={201: InvitationOutput} | problems(409))
    def post(self, request, slug: str):
        data = InvitationInput(data=request.data)
        data.is_valid(raise_exception=True)
        invitation, _ = orgs.invite_member(
            organization=self.organization,
            email=data.validated_data["email"],
            role=data.validated_data["role"],
            actor_role=self.role,
            base_url=request.build_absolute_uri("/"),
            **self.audit,
        )
        return Response(InvitationOutput(invitation).data, status=status.HTTP_201_CREATED)


class InvitationDetailView(OrgAPIView):
    """`DELETE /api/v1/orgs/{slug}/invitations/{id}`: withdraw a pending invitation."""

    permission = roles.INVITATIONS

    @extend_schema(responses={204: None})
    def delete(self, request, slug: str, pk: int):
        pending = self.organization.invitations.filter(used_at__isnull=True)
        orgs.revoke_invitation(invitation=get_object_or_404(pending, pk=pk), **self.audit)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AcceptInvitationView(ManagementAPIView):
    """`POST /api/v1/invitations/accept {token}` -> `{slug, name, role}`; bad tokens 404."""

    @extend_schema(request=AcceptInput, responses={200: dict} | problems(404, 409))
    def post(self, request):
        data = AcceptInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = orgs.accept_invitation(
            token=data.validated_data["token"], user=request.user, ip=client_ip(request)
        )
        org = membership.organization
        return Response({"slug": org.slug, "name": org.name, "role": membership.role})
