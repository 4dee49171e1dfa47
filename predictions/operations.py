"""Operator workflows on the registry: change a model's rollout, deprecate or retire a version.

Both validate the whole request first and raise `RolloutError` (400) with the field at fault,
then write in one transaction and publish the registry change, so every web process follows
the new rollout within about a second.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from audit.services import record_action
from predictions.inference import registry_changed
from predictions.models import MLModel, ModelVersion
from predictions.registry import set_default_version


class RolloutError(ValueError):
    """A rollout or lifecycle change that cannot be accepted; `field` names what is wrong."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def record_audit(*, actor, action: str, target: ModelVersion | MLModel, changes: dict) -> None:
    """The audit entry of an operator's registry change (CONTRACT §11), in its transaction."""
    record_action(actor=actor, action=action, target=target, changes=changes)


def _usable_version(model: MLModel, label: object, field: str, now: datetime) -> ModelVersion:
    if not isinstance(label, str) or not label:
        raise RolloutError("must be a version label (a string)", field=field)
    mv = model.versions.filter(version=label).first()
    if mv is None:
        raise RolloutError(f"{model.name} has no version {label!r}", field=field)
    if mv.is_retired(now):
        raise RolloutError(f"version {label!r} was retired on {mv.sunset_at:%Y-%m-%d}", field=field)
    return mv


def _split(
    model: MLModel, spec: object, field: str, default: ModelVersion, now: datetime
) -> tuple[ModelVersion | None, float]:
    """(version, percent) of a canary/shadow entry, or (None, 0) for null."""
    if spec is None:
        return None, 0.0
    if not isinstance(spec, dict) or set(spec) - {"version", "percent"}:
        raise RolloutError('must be {"version": "...", "percent": 0-100} or null', field=field)
    mv = _usable_version(model, spec.get("version"), f"{field}.version", now)
    if mv.pk == default.pk:
        raise RolloutError("must differ from the default version", field=f"{field}.version")
    percent = spec.get("percent")
    if isinstance(percent, bool) or not isinstance(percent, (int, float)):
        raise RolloutError("must be a number from 0 to 100", field=f"{field}.percent")
    if not 0 <= percent <= 100:
        raise RolloutError("must be from 0 to 100", field=f"{field}.percent")
    return mv, float(percent)


def validate_rollout(*, model: MLModel, spec: dict) -> tuple:
    """(default, canary, canary %, shadow, shadow %) of a rollout, or RolloutError."""
    now = timezone.now()
    default = _usable_version(model, spec.get("default"), "default", now)
    canary, canary_percent = _split(model, spec.get("canary"), "canary", default, now)
    shadow, shadow_percent = _split(model, spec.get("shadow"), "shadow", default, now)
    return default, canary, canary_percent, shadow, shadow_percent


def set_rollout(*, model: MLModel, spec: dict, actor=None) -> MLModel:
    """Apply `{"default", "canary": {version, percent}|null, "shadow": {...}|null}` at once."""
    default, canary, canary_percent, shadow, shadow_percent = validate_rollout(
        model=model, spec=spec
    )
    now = timezone.now()
    with transaction.atomic():
        locked = MLModel.objects.select_for_update().get(pk=model.pk)
        if not default.is_default:
            set_default_version(model_version=default)
        locked.canary_version, locked.canary_percent = canary, canary_percent
        locked.shadow_version, locked.shadow_percent = shadow, shadow_percent
        locked.rollout_revision += 1
        locked.rollout_updated_at = now
        locked.save()
        record_audit(actor=actor, action="model.rollout_changed", target=locked, changes=spec)
        registry_changed()
    return locked


def _parse_time(value: object, field: str) -> datetime | None:
    from django.utils.dateparse import parse_datetime

    if value is None:
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise RolloutError("must be an ISO 8601 date-time or null", field=field)
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, timezone.utc)


def in_rollout(mv: ModelVersion) -> bool:
    """Whether the version answers or shadows unpinned traffic today."""
    model = mv.model
    return mv.is_default or mv.pk in (model.canary_version_id, model.shadow_version_id)


def update_version(*, model_version: ModelVersion, changes: dict, actor=None) -> ModelVersion:
    """PATCH a version: `deprecated_at`, `sunset_at` (not before deprecation), `description`.

    A sunset with no deprecation date deprecates the version now. A version the rollout uses
    cannot be retired at once (sunset now or earlier): move the rollout off it first.
    """
    unknown = set(changes) - {"deprecated_at", "sunset_at", "description"}
    if unknown:
        raise RolloutError("unknown field", field=sorted(unknown)[0])
    mv = model_version
    fields = {}
    for name in ("deprecated_at", "sunset_at"):
        if name in changes:
            fields[name] = _parse_time(changes[name], name)
    if "description" in changes:
        if not isinstance(changes["description"], str):
            raise RolloutError("must be a string", field="description")
        fields["description"] = changes["description"]
    deprecated = fields.get("deprecated_at", mv.deprecated_at)
    sunset = fields.get("sunset_at", mv.sunset_at)
    if sunset is not None and deprecated is None:
        deprecated = fields["deprecated_at"] = timezone.now()
    if sunset is not None and sunset < deprecated:
        raise RolloutError("must not be before deprecated_at", field="sunset_at")
    if sunset is not None and sunset <= timezone.now() and in_rollout(mv):
        raise RolloutError(
            "the rollout still uses this version; change the rollout first", field="sunset_at"
        )
    with transaction.atomic():
        ModelVersion.objects.filter(pk=mv.pk).update(**fields)
        mv.refresh_from_db()
        record_audit(actor=actor, action="model.version_updated", target=mv, changes=changes)
        registry_changed()
    return mv


def register_uploaded_version(
    *, name: str, data: bytes, version: str, description: str = "", actor=None
) -> ModelVersion:
    """Register an operator's skops upload as `version` of `name` (the model is created first
    time). A pickle, a corrupt file or one needing untrusted types is a RegistryError (400)."""
    import tempfile

    from predictions.registry import RegistryError, register_model_version

    if data[:1] == b"\x80":  # every pickle protocol >= 2 starts with PROTO (0x80)
        raise RegistryError("this is a pickle; upload a skops file (pickles are never loaded)")
    with tempfile.NamedTemporaryFile(suffix=".skops") as handle:
        handle.write(data)
        handle.flush()
        with transaction.atomic():
            created = register_model_version(  # records `model_version.registered`
                name=name,
                artifact_path=handle.name,
                version=version,
                description=description,
                actor=actor,
            )
            if description:
                ModelVersion.objects.filter(pk=created.pk).update(description=description)
                created.description = description
    return created
