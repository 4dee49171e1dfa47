"""Serving: per-process cache of loaded predictors, default-version resolution, readiness.

Once warm, a request costs no query and no load: predictors are cached per process by
(name, version) route. A registry change anywhere writes a new stamp into the shared Django
cache; each process compares its stamp at most once per `CHECK_INTERVAL_S` and forgets its
routes when it changed, so a default switch is visible everywhere within about a second.
Loaded predictors are kept by version (id, label, hashes), so a switch back costs no reload.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from predictions import artifacts, storage
from predictions.errors import ArtifactRejected, ModelNotFound, ModelRetired, ModelUnavailable
from predictions.models import ModelVersion, Runtime
from predictions.runtimes import Columns, OnnxRunner, SklearnRunner

logger = logging.getLogger(__name__)
STAMP_KEY = "predictions:registry-stamp"
CHECK_INTERVAL_S = 1.0


@dataclass(frozen=True)
class Prediction:
    """Predictions in instance order, and class probabilities when asked for and available."""

    predictions: list
    probabilities: list[list[float]] | None


class Predictor:
    """One loaded model version, ready to predict from validated columns."""

    def __init__(self, mv: ModelVersion, runner: Any) -> None:
        self.model_name = mv.model.name
        self.version = mv.version
        self.version_id = mv.pk
        self.task = mv.model.task
        self.schema: list[dict] = mv.input_schema["features"]
        self.output: dict = mv.output
        self.classes: list | None = mv.output.get("classes")
        self.runtime = mv.runtime if isinstance(runner, OnnxRunner) else Runtime.SKLEARN
        self.runner = runner
        self.sunset_ts = mv.sunset_at.timestamp() if mv.sunset_at else None
        self.lifecycle_headers = lifecycle_headers(mv.deprecated_at, mv.sunset_at)

    def predict(
        self, columns: Columns, *, probabilities: bool = False, timeout: float | None = None
    ) -> Prediction:
        """Predict every row; `timeout` seconds (default MLAPI_PREDICT_TIMEOUT_S) -> 504."""
        limit = settings.MLAPI_PREDICT_TIMEOUT_S if timeout is None else timeout
        started = time.monotonic()
        values, proba = self.runner.run(columns, started + limit)
        if time.monotonic() - started > limit:
            from predictions.errors import PredictionTimeout

            raise PredictionTimeout("The prediction ran past the time limit.")
        if self.task == "regression":
            out = np.asarray(values, dtype=np.float64).tolist()
        else:
            out = values.tolist()
        probs = None
        if probabilities and proba is not None and self.output.get("probabilities"):
            probs = normalized_probabilities(proba)
        return Prediction(out, probs)


def normalized_probabilities(proba: np.ndarray) -> list[list[float]]:
    """Rows that sum to 1, rounded to 6 places.

    ONNX Runtime's tree ensembles average in float32, so a sure class comes out as 0.9999993;
    renormalising in float64 gives back the 1.0 scikit-learn reports.
    """
    rows = np.asarray(proba, dtype=np.float64)
    totals = rows.sum(axis=1, keepdims=True)
    np.divide(rows, totals, out=rows, where=totals > 0)
    return rows.round(6).tolist()


def lifecycle_headers(deprecated_at, sunset_at) -> dict[str, str]:
    """`Deprecation: @<unix>` (RFC 9745) and `Sunset: <HTTP-date>` (RFC 8594) of a version."""
    from django.utils.http import http_date

    headers = {}
    if deprecated_at is not None:
        headers["Deprecation"] = f"@{int(deprecated_at.timestamp())}"
    if sunset_at is not None:
        headers["Sunset"] = http_date(sunset_at.timestamp())
    return headers


_lock = threading.RLock()
_routes: dict[tuple[str, str | None], Predictor] = {}
_loaded: dict[tuple, Predictor] = {}
_state = {"stamp": None, "checked": -1e9, "generation": 0}


def _forget_routes() -> None:
    _routes.clear()
    _state["generation"] += 1  # predictions.rollout drops its cached plans when this moves


def route_generation() -> int:
    """A number that changes whenever cached routes are forgotten (after a stamp check)."""
    check_stamp()
    return _state["generation"]


def _build(mv: ModelVersion) -> Predictor:
    """Load a version's artifact (hash verified); ONNX when registered so, else the estimator."""
    features = mv.input_schema["features"]
    try:
        if mv.runtime == Runtime.ONNX and mv.onnx_artifact:
            data = artifacts.read_verified(mv.onnx_artifact, mv.onnx_sha256)
            layout = mv.metadata.get("onnx_layout", "columns")
            return Predictor(mv, OnnxRunner(data, features, mv.model.task, layout))
        data = artifacts.read_verified(mv.artifact, mv.sha256)
        estimator = artifacts.load_skops(data)
        return Predictor(mv, SklearnRunner(estimator, features, mv.model.task))
    except storage.ArtifactUnreachable as exc:  # a store away, not a broken model: 503 as such
        logger.warning("cannot load %s: %s", mv, exc)
        raise storage.StorageUnavailable(
            f"Object storage is unavailable; model {mv} cannot be loaded right now.",
            headers={"Retry-After": "5"},
        ) from exc
    except (OSError, ArtifactRejected) as exc:
        logger.error("cannot load %s: %s", mv, exc)
        raise ModelUnavailable(f"Model {mv} cannot be loaded right now.") from exc


def _resolve(name: str, version: str | None) -> ModelVersion:
    qs = ModelVersion.objects.select_related("model").filter(model__name=name)
    mv = qs.filter(version=version).first() if version else qs.filter(is_default=True).first()
    if mv is None:
        what = f"Model {name!r} has no version {version!r}." if version else None
        raise ModelNotFound(what or f"No model named {name!r}.")
    return mv


def check_stamp() -> None:
    """Forget cached routes if the registry changed (looks at the shared stamp once a second)."""
    now = time.monotonic()
    if now - _state["checked"] < CHECK_INTERVAL_S:
        return
    _state["checked"] = now
    try:
        stamp = cache.get(STAMP_KEY)
    except Exception:  # noqa: BLE001 - cache down: re-resolve routes from the database
        stamp = object()
    if stamp != _state["stamp"]:
        _state["stamp"] = stamp
        _forget_routes()


_check_stamp = check_stamp  # the old private name


def get_predictor(name: str, version: str | None = None) -> Predictor:
    """The predictor for `name` (its default version unless `version`); cached per process.

    A version past its `sunset_at` is retired: ModelRetired (404) instead of a prediction.
    """
    check_stamp()
    predictor = _routes.get((name, version))
    if predictor is None:
        predictor = _load_route(name, version)
    if predictor.sunset_ts is not None and time.time() >= predictor.sunset_ts:
        raise ModelRetired(
            f"Version {predictor.version!r} of {name!r} was retired on "
            f"{predictor.lifecycle_headers['Sunset']}; use another version."
        )
    return predictor


def _load_route(name: str, version: str | None) -> Predictor:
    with _lock:
        mv = _resolve(name, version)
        key = (mv.pk, name, mv.version, mv.sha256, mv.onnx_sha256, mv.runtime)
        loaded = _loaded.get(key)
        if loaded is None:
            predictor = _loaded[key] = _build(mv)
        else:  # same artifact: reuse the loaded runner, refresh the version's other fields
            predictor = Predictor(mv, loaded.runner)
        _routes[(name, version)] = predictor
        return predictor


def clear_cache() -> None:
    """Forget every loaded predictor in this process (tests; after deleting artifacts)."""
    with _lock:
        _forget_routes()
        _loaded.clear()
        _state["checked"] = -1e9


def _write_stamp() -> None:
    try:
        cache.set(STAMP_KEY, uuid.uuid4().hex, None)
    except Exception:  # noqa: BLE001 - other processes fall back to their check interval
        logger.warning("could not publish a registry change to the cache")


def registry_changed() -> None:
    """Publish a registry change: this process forgets routes now, others within a second."""
    _forget_routes()
    _write_stamp()
    transaction.on_commit(_write_stamp)  # again once the change is visible to others


def models_ready() -> tuple[bool, str]:
    """Every default version loads (for /readyz)."""
    defaults = ModelVersion.objects.filter(is_default=True).select_related("model")
    failed = []
    for mv in defaults:
        try:
            get_predictor(mv.model.name)
        except ModelRetired:
            continue  # retired on schedule: unpinned calls say so (404); nothing failed to load
        except (ModelUnavailable, ModelNotFound, storage.StorageUnavailable):
            failed.append(mv.model.name)  # (the object store away: not loadable right now)
    if failed:
        return False, f"cannot load: {', '.join(sorted(failed))}"
    return True, "ok"
