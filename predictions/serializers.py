"""Output shapes of the v1 model endpoints, and request/response serializers for the docs.

Input validation does not go through DRF serializers: `predictions.validation` is stricter
and faster. These classes describe the bodies in the OpenAPI schema.
"""

from __future__ import annotations

from rest_framework import serializers

from predictions.models import MLModel, ModelVersion


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def version_data(mv: ModelVersion) -> dict:
    return {
        "version": mv.version,
        "is_default": mv.is_default,
        "runtime": mv.runtime,
        "runtime_note": mv.runtime_note,
        "sha256": mv.sha256,
        "created_at": _iso(mv.created_at),
        "description": mv.description,
        "deprecated_at": _iso(mv.deprecated_at),
        "sunset_at": _iso(mv.sunset_at),
        "retired": mv.is_retired(),
    }


def rollout_data(model: MLModel, versions: list[ModelVersion]) -> dict:
    """The model's rollout as PUT /rollout takes it, plus its revision and time."""
    labels = {v.pk: v.version for v in versions}
    default = next((v.version for v in versions if v.is_default), None)

    def entry(version_id: int | None, percent: float) -> dict | None:
        if version_id is None or version_id not in labels:
            return None
        return {"version": labels[version_id], "percent": percent}

    return {
        "default": default,
        "canary": entry(model.canary_version_id, model.canary_percent),
        "shadow": entry(model.shadow_version_id, model.shadow_percent),
        "revision": model.rollout_revision,
        "updated_at": _iso(model.rollout_updated_at),
    }


def model_data(model: MLModel, *, detail: bool = False) -> dict:
    """A model as the API shows it; the default version's schema and output describe it."""
    versions = list(model.versions.all())
    default = next((v for v in versions if v.is_default), None)
    data = {
        "name": model.name,
        "task": model.task,
        "description": model.description,
        "default_version": default.version if default else None,
        "input_schema": default.input_schema if default else None,
        "output": default.output if default else None,
    }
    if detail:
        data["versions"] = [version_data(v) for v in versions]
        data["rollout"] = rollout_data(model, versions)
    else:
        data["versions"] = [v.version for v in versions]
    return data


class FeatureSerializer(serializers.Serializer):
    """One input feature: a number (with optional range) or a category."""

    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["number", "category"])
    minimum = serializers.FloatField(required=False)
    maximum = serializers.FloatField(required=False)
    categories = serializers.ListField(child=serializers.CharField(), required=False)


class InputSchemaSerializer(serializers.Serializer):
    """A version's input features, in the order array instances use."""

    features = FeatureSerializer(many=True)


class VersionSerializer(serializers.Serializer):
    """One version of a model and the runtime that serves it."""

    version = serializers.CharField()
    is_default = serializers.BooleanField()
    runtime = serializers.ChoiceField(choices=["onnx", "sklearn"])
    runtime_note = serializers.CharField()
    sha256 = serializers.CharField()
    created_at = serializers.DateTimeField()
    description = serializers.CharField()
    deprecated_at = serializers.DateTimeField(allow_null=True)
    sunset_at = serializers.DateTimeField(allow_null=True)
    retired = serializers.BooleanField()


class RolloutEntrySerializer(serializers.Serializer):
    """A canary or shadow: the version and the percent of callers (canary) or requests."""

    version = serializers.CharField()
    percent = serializers.FloatField(min_value=0, max_value=100)


class RolloutSerializer(serializers.Serializer):
    """Which versions answer unpinned calls (CONTRACT §13)."""

    default = serializers.CharField(allow_null=True)
    canary = RolloutEntrySerializer(allow_null=True)
    shadow = RolloutEntrySerializer(allow_null=True)
    revision = serializers.IntegerField()
    updated_at = serializers.DateTimeField(allow_null=True)


class ModelSerializer(serializers.Serializer):
    """A model in the list: its default version's schema and output."""

    name = serializers.CharField()
    task = serializers.ChoiceField(choices=["classification", "regression"])
    description = serializers.CharField()
    default_version = serializers.CharField(allow_null=True)
    input_schema = InputSchemaSerializer(allow_null=True)
    output = serializers.DictField(allow_null=True)
    versions = serializers.ListField(child=serializers.CharField())


class ModelDetailSerializer(ModelSerializer):
    """A model with all of its versions and its rollout."""

    versions = VersionSerializer(many=True)
    rollout = RolloutSerializer()


class PredictParametersSerializer(serializers.Serializer):
    """Options of a predict request."""

    probabilities = serializers.BooleanField(required=False, default=False)


class PredictRequestSerializer(serializers.Serializer):
    """The body of POST .../predict."""

    instances = serializers.ListField(
        child=serializers.JSONField(),
        help_text="Objects keyed by feature name, or arrays in schema order.",
    )
    parameters = PredictParametersSerializer(required=False)


class PredictResponseSerializer(serializers.Serializer):
    """The reply of POST .../predict, in instance order."""

    model = serializers.CharField()
    version = serializers.CharField()
    predictions = serializers.ListField(child=serializers.JSONField())
    probabilities = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()), required=False
    )


class FieldErrorSerializer(serializers.Serializer):
    """One validation error: the path of the offending value and what is wrong with it."""

    field = serializers.CharField()
    message = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details, as every /api/ error is answered."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField()
    errors = FieldErrorSerializer(many=True, required=False)


class ProtocolErrorSerializer(serializers.Serializer):
    """The Open Inference Protocol's error body (`/v2/...`, `/v1/models/...`)."""

    error = serializers.CharField()
    code = serializers.CharField()
    errors = FieldErrorSerializer(many=True, required=False)


class ModelPageSerializer(serializers.Serializer):
    """A page of models."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ModelSerializer(many=True)


DATA_PLANE_ERRORS = (400, 401, 403, 404, 413, 429, 503, 504)


def problems(*statuses: int) -> dict:
    """drf-spectacular `responses` entries for /api/ errors (application/problem+json)."""
    return {(status, "application/problem+json"): ProblemSerializer for status in statuses}


def protocol_errors(*statuses: int) -> dict:
    """drf-spectacular `responses` entries for protocol-route errors (application/json)."""
    return {(status, "application/json"): ProtocolErrorSerializer for status in statuses}
