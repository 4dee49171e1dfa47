"""Input and output shapes of the organization API (§9) and key restrictions (§10)."""

from __future__ import annotations

from rest_framework import serializers

from keys.models import Invitation, Membership, Role
from keys.serializers import KeyCreateInput
from mlapi import fields


class OrgCreateInput(serializers.Serializer):
    name = fields.CharField(max_length=150)
    slug = fields.CharField(max_length=50, required=False)
    plan = fields.SlugField(max_length=50, required=False)


class MemberOutput(serializers.ModelSerializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField(source="user.username")
    email = serializers.EmailField(source="user.email")
    joined_at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Membership
        fields = ["user_id", "username", "email", "role", "joined_at"]


class RoleInput(serializers.Serializer):
    # A plain string: the service answers unknown roles with a message listing the real ones.
    role = fields.CharField(max_length=20)


class InvitationInput(serializers.Serializer):
    email = fields.EmailField(max_length=254)
    role = fields.CharField(max_length=20, default=Role.DEVELOPER)


class InvitationOutput(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()
    invited_by = serializers.CharField(source="invited_by.username", default=None, allow_null=True)

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "status", "invited_by", "created_at", "expires_at"]

    def get_status(self, obj: Invitation) -> str:
        return obj.status()


class AcceptInput(serializers.Serializer):
    token = fields.CharField(max_length=200)


class RestrictionsInput(serializers.Serializer):
    """§10 fields, passed through raw: `keys.restrictions` validates them with precise paths."""

    models = serializers.JSONField(required=False, allow_null=True)
    scopes = serializers.JSONField(required=False)
    allowed_ips = serializers.JSONField(required=False)
    allowed_origins = serializers.JSONField(required=False)

    RESTRICTIONS = ("models", "scopes", "allowed_ips", "allowed_origins")

    def restrictions(self) -> dict:
        return {k: v for k, v in self.validated_data.items() if k in self.RESTRICTIONS}


class OrgKeyCreateInput(KeyCreateInput, RestrictionsInput):
    """`{name?, expires_at?, models?, scopes?, allowed_ips?, allowed_origins?}`."""


class KeyUpdateInput(RestrictionsInput):
    """PATCH: `{name?, models?, scopes?, allowed_ips?, allowed_origins?}`."""

    name = fields.CharField(max_length=100, required=False, allow_blank=True)


class AuditQuery(serializers.Serializer):
    action = serializers.CharField(max_length=64, required=False)
    since = serializers.DateTimeField(required=False)


class AuditEntryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    time = serializers.DateTimeField()
    actor = serializers.CharField()
    action = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    ip = serializers.CharField(allow_null=True)
    changes = serializers.JSONField()
