"""Input and output shapes of the organization API (§9) and key restrictions (§10)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from keys.models import Invitation, Membership, Role
from keys.principal import SCOPES
from keys.restrictions import MAX_ITEMS
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


def _string_list(items: dict | None = None, **schema) -> dict:
    """The OpenAPI schema of a restriction: a list of strings (`keys.restrictions` rules)."""
    items = items or {"type": "string", "minLength": 1}
    return {"type": "array", "items": items, "maxItems": MAX_ITEMS} | schema


@extend_schema_field(_string_list(minItems=1))  # allow_null adds the null
class ModelsField(serializers.JSONField):
    """`models`: names within the plan, or null for all it covers."""


@extend_schema_field(_string_list({"type": "string", "enum": list(SCOPES)}, minItems=1))
class ScopesField(serializers.JSONField):
    """`scopes`: any of predict, jobs, models:read."""


@extend_schema_field(_string_list())
class StringListField(serializers.JSONField):
    """`allowed_ips` (CIDRs), `allowed_origins` (https://host[:port])."""


class RestrictionsInput(serializers.Serializer):
    """§10 fields, passed through raw: `keys.restrictions` validates them with precise paths.

    (The fields only say what the OpenAPI document shows: a bare JSONField allowing null came
    out as `oneOf: [{}, {type: null}]`, which a null matches twice and so violates.)
    """

    models = ModelsField(required=False, allow_null=True)
    scopes = ScopesField(required=False)
    allowed_ips = StringListField(required=False)
    allowed_origins = StringListField(required=False)

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
