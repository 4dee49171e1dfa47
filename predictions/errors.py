"""Domain errors raised by the registry and the inference layer (mapped by mlapi.exceptions)."""

from __future__ import annotations

from mlapi.exceptions import DomainError, Forbidden, NotFound


class ModelNotFound(NotFound):
    """No model (or no such version of it) in the registry."""


class NotPermitted(Forbidden):
    """The caller's plan does not cover the model."""


class ModelRetired(ModelNotFound):
    """The version is past its `sunset_at` (404, with a detail saying it was retired)."""


class ModelUnavailable(DomainError):
    """The model exists but cannot be served: missing file, hash mismatch, failed load."""

    status = 503
    code = "model_unavailable"
    title = "Model unavailable"

    def __init__(self, detail: str | None = None, **kwargs) -> None:
        kwargs.setdefault("headers", {"Retry-After": "30"})
        super().__init__(detail, **kwargs)


class PredictionTimeout(DomainError):
    """The prediction ran past MLAPI_PREDICT_TIMEOUT_S; the worker was freed."""

    status = 504
    code = "prediction_timeout"
    title = "Prediction timed out"


class ArtifactRejected(ValueError):
    """An uploaded artifact is not acceptable (not skops, untrusted types, hash mismatch)."""
