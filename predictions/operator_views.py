"""Operator API (CONTRACT §13): upload versions, set rollouts, deprecate versions. Staff only.

JWT or session (with CSRF), like the management plane; an API key or a non-staff user gets
403 permission_denied. Thin views: parse, call one workflow in predictions.operations, answer.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from keys.permissions import ManagementPlane
from keys.views import ManagementAPIView
from mlapi.exceptions import PayloadTooLarge
from predictions import operations
from predictions.models import MLModel, ModelVersion
from predictions.registry import NAME, RegistryError
from predictions.serializers import model_data, problems, version_data

TAGS = ["Operators"]


class IsStaff(BasePermission):
    """Registry operators: `is_staff` users only (403 permission_denied otherwise)."""

    message = "Only staff operators can change the model registry."

    def has_permission(self, request, view) -> bool:
        return bool(getattr(request.user, "is_staff", False))


class OperatorAPIView(ManagementAPIView):
    """Base of the operator endpoints: management-plane auth plus the staff check."""

    permission_classes = [ManagementPlane, IsStaff]

    def model_named(self, name: str) -> MLModel:
        model = MLModel.objects.filter(name=name).first()
        if model is None:
            raise Http404(f"No model named {name!r}.")
        return model


def _invalid(exc: operations.RolloutError | RegistryError, field: str = "") -> None:
    raise exceptions.ValidationError({getattr(exc, "field", field): [str(exc)]}) from exc


class UploadVersionSerializer(serializers.Serializer):
    """Multipart body of a version upload (documentation of the form fields)."""

    artifact = serializers.FileField(help_text="A fitted estimator saved with skops.io.")
    version = serializers.CharField(max_length=32)
    description = serializers.CharField(required=False, allow_blank=True)


class VersionUploadView(OperatorAPIView):
    """`POST /api/v1/models/{name}/versions`: register a skops upload as a new version."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": UploadVersionSerializer},
        responses={201: OpenApiTypes.OBJECT} | problems(400, 401, 403, 413, 415),
        summary="Register a model version",
        tags=TAGS,
    )
    def post(self, request, name: str):
        if not NAME.match(name):
            raise exceptions.ValidationError({"name": ["letters, digits, - and _ only"]})
        upload = request.FILES.get("artifact")
        version = request.data.get("version")
        if upload is None:
            raise exceptions.ValidationError({"artifact": ["upload a skops file as `artifact`"]})
        if not isinstance(version, str) or not 0 < len(version) <= 32 or "/" in version:
            raise exceptions.ValidationError({"version": ["a label of 1 to 32 characters"]})
        if upload.size > settings.MLAPI_MAX_UPLOAD_BYTES:
            raise PayloadTooLarge(f"The artifact exceeds {settings.MLAPI_MAX_UPLOAD_BYTES} bytes.")
        try:
            created = operations.register_uploaded_version(
                name=name,
                data=upload.read(),
                version=version,
                description=str(request.data.get("description") or ""),
                actor=request.user,
            )
        except RegistryError as exc:
            _invalid(exc, "artifact")
        return Response(version_data(created), status=201)


ROLLOUT_EXAMPLE = OpenApiExample(
    "10 % canary, full shadow",
    value={
        "default": "1",
        "canary": {"version": "2", "percent": 10},
        "shadow": {"version": "3", "percent": 100},
    },
    request_only=True,
)


class RolloutView(OperatorAPIView):
    """`PUT /api/v1/models/{name}/rollout`: default, canary and shadow in one change."""

    parser_classes = [JSONParser]

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT} | problems(400, 401, 403, 404, 415),
        examples=[ROLLOUT_EXAMPLE],
        summary="Set a model's rollout",
        tags=TAGS,
    )
    def put(self, request, name: str):
        model = self.model_named(name)
        if not isinstance(request.data, dict) or "default" not in request.data:
            raise exceptions.ValidationError({"default": ["this field is required"]})
        unknown = set(request.data) - {"default", "canary", "shadow"}
        if unknown:
            raise exceptions.ValidationError({sorted(unknown)[0]: ["unknown field"]})
        try:
            model = operations.set_rollout(model=model, spec=request.data, actor=request.user)
        except operations.RolloutError as exc:
            _invalid(exc)
        return Response(model_data(MLModel.objects.get(pk=model.pk), detail=True))


class VersionUpdateView(OperatorAPIView):
    """`PATCH /api/v1/models/{name}/versions/{v}`: deprecation, sunset, description."""

    parser_classes = [JSONParser]

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT} | problems(400, 401, 403, 404, 415),
        summary="Deprecate or describe a model version",
        tags=TAGS,
    )
    def patch(self, request, name: str, version: str):
        mv = (
            ModelVersion.objects.select_related("model")
            .filter(model__name=name, version=version)
            .first()
        )
        if mv is None:
            raise Http404(f"Model {name!r} has no version {version!r}.")
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError(["the body must be a JSON object"])
        try:
            mv = operations.update_version(
                model_version=mv, changes=request.data, actor=request.user
            )
        except operations.RolloutError as exc:
            _invalid(exc)
        return Response(version_data(mv))
