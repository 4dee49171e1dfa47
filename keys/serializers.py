"""Serializers that only translate: separate input and output shapes for the account API."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from rest_framework import serializers

from keys.models import ApiKey, Plan
from mlapi import fields


class SignupInput(serializers.Serializer):
    """`{username, email, password, plan?}`; the password must pass Django's validators."""

    username = fields.RegexField(r"^[\w.@+-]+\Z", max_length=150)
    email = fields.EmailField(max_length=254)
    password = fields.CharField(max_length=128, write_only=True, trim_whitespace=False)
    plan = fields.SlugField(max_length=50, required=False, allow_blank=False)

    def validate(self, attrs: dict) -> dict:
        candidate = get_user_model()(username=attrs["username"], email=attrs["email"])
        try:
            validate_password(attrs["password"], user=candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from exc
        return attrs


class TokenPairInput(serializers.Serializer):
    username = fields.CharField(max_length=150)
    password = fields.CharField(max_length=128, trim_whitespace=False)


class RefreshInput(serializers.Serializer):
    refresh = fields.CharField(max_length=2000)


class PlanOutput(serializers.ModelSerializer):
    class Meta:
        model = Plan
        fields = [
            "name",
            "description",
            "rate",
            "burst",
            "quota",
            "quota_period",
            "max_instances",
            "max_job_rows",
            "all_models",
            "model_names",
            "requires_approval",
        ]


class KeyCreateInput(serializers.Serializer):
    name = fields.CharField(max_length=100, required=False, allow_blank=True, default="")
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value


class KeyOutput(serializers.ModelSerializer):
    """A key as listed: never its secret or hash; `key` is added once, at creation/rotation."""

    status = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    models = serializers.ListField(
        source="allowed_models", child=serializers.CharField(), allow_null=True
    )
    scopes = serializers.ListField(child=serializers.CharField())
    allowed_ips = serializers.ListField(child=serializers.CharField())
    allowed_origins = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "status",
            "created_at",
            "created_by",
            "last_used_at",
            "expires_at",
            "revoked_at",
            "rotated_to",
            "models",
            "scopes",
            "allowed_ips",
            "allowed_origins",
        ]

    def get_status(self, obj: ApiKey) -> str:
        return obj.status()


class QuotaOutput(serializers.Serializer):
    limit = serializers.IntegerField()
    used = serializers.IntegerField()
    remaining = serializers.IntegerField()
    period = serializers.CharField()
    period_start = serializers.DateTimeField()
    resets_at = serializers.DateTimeField()
