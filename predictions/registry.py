"""Registry workflows: register a version (store, hash, describe, convert) and switch defaults."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction

from audit.services import record_action
from predictions import artifacts
from predictions.conversion import convert_and_verify
from predictions.errors import ArtifactRejected
from predictions.introspect import check_schema, describe_output, infer_schema, infer_task
from predictions.models import MLModel, ModelVersion, Runtime

NAME = re.compile(r"^[-a-zA-Z0-9_]{1,64}$")


class RegistryError(ValueError):
    """A registration that cannot be accepted (bad schema, task mismatch, duplicate version)."""


def _next_version(model: MLModel | None) -> str:
    if model is None:
        return "1"
    versions = model.versions.values_list("version", flat=True)
    numbers = [int(v) for v in versions if v.isascii() and v.isdigit()]  # "²".isdigit() too
    return str(max(numbers, default=0) + 1)


def _schema_for(estimator: Any, input_schema: dict | None, sample: Any) -> dict:
    try:
        schema = check_schema(input_schema) if input_schema else infer_schema(estimator, sample)
    except ValueError as exc:
        raise RegistryError(str(exc)) from exc
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and [f["name"] for f in schema["features"]] != [str(n) for n in names]:
        raise RegistryError(f"the schema's features must be {', '.join(map(str, names))}")
    expected = getattr(estimator, "n_features_in_", None)
    if expected is not None and expected != len(schema["features"]):
        raise RegistryError(
            f"the schema has {len(schema['features'])} features, the estimator {expected}"
        )
    return schema


def _load_source(artifact_path: str | Path | None, estimator: Any) -> tuple[bytes, Any]:
    if (artifact_path is None) == (estimator is None):
        raise RegistryError("give exactly one of artifact_path and estimator")
    if artifact_path is not None:
        data = Path(artifact_path).read_bytes()
        return data, verify_upload(data)
    return artifacts.dump_skops(estimator), estimator


def register_model_version(
    *,
    name: str,
    artifact_path: str | Path | None = None,
    estimator: Any = None,
    version: str | None = None,
    make_default: bool = False,
    input_schema: dict | None = None,
    description: str = "",
    sample: Any = None,
    output: dict | None = None,
    actor: Any = None,
    ip: str | None = None,
) -> ModelVersion:
    """Store a fitted estimator as a new version of `name` and pick the runtime that serves it.

    `artifact_path` must be a skops file (types outside the allow-list are refused). The input
    schema is inferred (encoder categories, numeric ranges from `sample`) unless given. The
    first version of a model, or any with `make_default`, becomes the default.
    """
    if not NAME.match(name):
        raise RegistryError("a model name uses letters, digits, - and _ only (at most 64)")
    data, estimator = _load_source(artifact_path, estimator)
    try:
        task = infer_task(estimator)
        out = output or describe_output(estimator, task)
    except (ValueError, AttributeError) as exc:
        raise RegistryError(str(exc)) from exc
    schema = _schema_for(estimator, input_schema, sample)
    version = _free_version(name, task, version)
    try:
        conversion = convert_and_verify(estimator, schema["features"], task, sample)
    except ValueError as exc:
        raise RegistryError(str(exc)) from exc
    stem = f"{name}-{version}-{artifacts.sha256_bytes(data)[:12]}"
    artifact, sha = artifacts.write_atomic(data, f"{stem}.skops")
    onnx_artifact = onnx_sha = ""
    if conversion.onnx_bytes is not None:
        onnx_artifact, onnx_sha = artifacts.write_atomic(conversion.onnx_bytes, f"{stem}.onnx")
    fields = {
        "version": version,
        "artifact": artifact,
        "sha256": sha,
        "onnx_artifact": onnx_artifact,
        "onnx_sha256": onnx_sha,
        "runtime": Runtime.ONNX if onnx_artifact else Runtime.SKLEARN,
        "runtime_note": conversion.note,
        "input_schema": schema,
        "output": out,
        "metadata": {"onnx_layout": conversion.layout, "estimator": type(estimator).__name__},
    }
    audit = {"actor": actor, "ip": ip}
    return _save_version(name, task, description, fields, make_default=make_default, audit=audit)


def _free_version(name: str, task: str, version: str | None) -> str:
    """The version label to use; refuses a task change and a label already taken."""
    existing = MLModel.objects.filter(name=name).first()
    if existing is not None and existing.task != task:
        raise RegistryError(f"{name} is a {existing.task} model; this estimator is a {task}")
    version = version or _next_version(existing)
    if existing is not None and existing.versions.filter(version=version).exists():
        raise RegistryError(f"{name} already has a version {version}")
    return version


def _save_version(
    name: str, task: str, description: str, fields: dict, *, make_default: bool, audit: dict
) -> ModelVersion:
    try:
        with transaction.atomic():
            model, _ = MLModel.objects.get_or_create(
                name=name, defaults={"task": task, "description": description}
            )
            if description and model.description != description:
                model.description = description
                model.save(update_fields=["description"])
            created = ModelVersion.objects.create(model=model, **fields)
            record_action(
                action="model_version.registered",
                target=created,
                changes={"model": name, "version": created.version, "sha256": created.sha256},
                **audit,
            )
            if make_default or not model.versions.filter(is_default=True).exists():
                set_default_version(model_version=created, **audit)
    except IntegrityError as exc:  # a concurrent registration took the label first
        raise RegistryError(f"{name} already has a version {fields['version']}") from exc
    return created


def set_default_version(
    *, model_version: ModelVersion, actor: Any = None, ip: str | None = None
) -> ModelVersion:
    """Make `model_version` its model's only default, atomically (the DB allows one)."""
    with transaction.atomic():
        model = MLModel.objects.select_for_update().get(pk=model_version.model_id)
        previous = (
            ModelVersion.objects.filter(model_id=model.pk, is_default=True)
            .values_list("version", flat=True)
            .first()
        )
        ModelVersion.objects.filter(model_id=model_version.model_id, is_default=True).exclude(
            pk=model_version.pk
        ).update(is_default=False)
        ModelVersion.objects.filter(pk=model_version.pk).update(is_default=True)
        model_version.is_default = True
        if previous != model_version.version:
            record_action(
                action="model.default_changed",
                target=model,
                actor=actor,
                ip=ip,
                changes={"default": [previous, model_version.version], "model": model.name},
            )
        from predictions.inference import registry_changed

        registry_changed()
    return model_version


def verify_upload(data: bytes) -> Any:
    """Check an operator's upload before registering it: skops, allow-listed types only."""
    try:
        return artifacts.load_skops(data)
    except ArtifactRejected as exc:
        raise RegistryError(str(exc)) from exc
