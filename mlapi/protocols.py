"""Which paths are the data plane, and which protocol each one speaks: the one place that knows.

Read by the body-size guard and the lean middleware chain (mlapi.middleware), the error bodies
(mlapi.exceptions: `{"error"}` on the inference protocols), usage recording (the `protocol` of a
record) and the data plane's REST adapters. The gRPC data plane has no paths; it is `GRPC`.
Values are `usage.models.Protocol`'s (plain strings here, so every layer can import this).
"""

from __future__ import annotations

V1 = "v1"  # POST /api/v1/models/{name}[/versions/{v}]/predict
MODELS = "models"  # GET /api/v1/models[/{name}]
V2 = "v2"  # Open Inference Protocol, REST
KSERVE_V1 = "kserve-v1"  # POST /v1/models/{name}:predict
JOBS = "jobs"  # /api/v1/jobs...
GRPC = "grpc"  # Open Inference Protocol, gRPC (predictions.grpc)
OTHER = "other"

V1_MODELS_PREFIX = "/api/v1/models"
V2_PREFIX = "/v2"
KSERVE_V1_PREFIX = "/v1/models/"
JOBS_PREFIX = "/api/v1/jobs"

# Routes whose errors use the inference protocols' `{"error": "...", "code": "..."}` body.
PROTOCOL_PREFIXES = (V2_PREFIX, KSERVE_V1_PREFIX)
# Data-plane routes no browser uses (API key or JWT only): they skip sessions, CSRF, CSP...
LEAN_PREFIXES = (V1_MODELS_PREFIX, V2_PREFIX, KSERVE_V1_PREFIX)
# Routes whose every error is JSON in the contract's shapes (problem+json, or `{"error"}` above).
CONTRACT_ERROR_PREFIXES = ("/api/", V2_PREFIX, KSERVE_V1_PREFIX)
# Routes that take file uploads (streamed to disk) and so get MLAPI_MAX_UPLOAD_BYTES.
UPLOAD_PREFIXES = (JOBS_PREFIX, "/admin/", "/portal/jobs")


def is_protocol_path(path: str) -> bool:
    """True for the KServe/Triton routes, whose error body is `{"error": ...}`."""
    return path.startswith(PROTOCOL_PREFIXES)


def is_lean_path(path: str) -> bool:
    """True for the browserless data-plane routes (see `LEAN_PREFIXES`)."""
    return path.startswith(LEAN_PREFIXES)


def protocol_for_path(path: str) -> str:
    """The route family of a data-plane path: v1, models, v2, kserve-v1, jobs or other."""
    if path.startswith(V1_MODELS_PREFIX):
        return V1 if path.rstrip("/").endswith("/predict") else MODELS
    if path.startswith(V2_PREFIX):
        return V2
    if path.startswith(KSERVE_V1_PREFIX):
        return KSERVE_V1
    if path.startswith(JOBS_PREFIX):
        return JOBS
    return OTHER
