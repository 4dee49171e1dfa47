"""Meters every authenticated data-plane request after its response is built.

Keys authentication sets `request.mlapi_principal`; predictions views set `mlapi_model`,
`mlapi_version` and `mlapi_predictions`; `mlapi.exceptions.problem_response` sets
`response.error_code`. Requests without a principal (anonymous, management plane, portal,
admin) are not metered here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from mlapi.metrics import PREDICT_REQUESTS
from usage.models import Protocol
from usage.recording import UsageEvent, record_usage


def protocol_for_path(path: str) -> str:
    """The route family of a data-plane path: v1, v2, kserve-v1, jobs, models or other."""
    if path.startswith("/api/v1/models"):
        return Protocol.V1 if path.rstrip("/").endswith("/predict") else Protocol.MODELS
    if path.startswith("/v2"):
        return Protocol.V2
    if path.startswith("/v1/models/"):
        return Protocol.KSERVE_V1
    if path.startswith("/api/v1/jobs"):
        return Protocol.JOBS
    return Protocol.OTHER


def outcome_for(status: int, error_code: str) -> str:
    """The metrics outcome label: "ok", else the contract error code (or the bare status).

    The same vocabulary as predictions.metering, so dashboards can tell a 429 that was
    `rate_limited` from one that was `quota_exceeded`.
    """
    if status < 400:
        return "ok"
    return error_code or str(status)


def response_size(response: HttpResponse) -> int:
    if getattr(response, "streaming", False):
        return int(response.get("Content-Length") or 0)
    return len(response.content)


class UsageRecordingMiddleware:
    """Times each request and, when it was an authenticated data-plane one, records it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.enabled = settings.MLAPI_USAGE_RECORDING
        self.counters: dict[tuple[str, str, str, str], object] = {}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started_at = timezone.now()
        started = time.perf_counter()
        response = self.get_response(request)
        principal = getattr(request, "mlapi_principal", None)
        if principal is not None and self.enabled:
            latency_ms = (time.perf_counter() - started) * 1000
            self.record(request, response, principal, started_at, latency_ms)
        return response

    def record(self, request, response, principal, started_at, latency_ms: float) -> None:
        status = response.status_code
        model = getattr(request, "mlapi_model", "") or ""
        protocol = protocol_for_path(request.path)
        plan = principal.plan.name
        ok = 200 <= status < 300
        error_code = "" if ok else getattr(response, "error_code", "") or ""
        record_usage(
            UsageEvent(
                time=started_at,
                subscription_id=principal.subscription_id,
                key_id=principal.key_id,
                plan_name=plan,
                model_name=model,
                model_version=getattr(request, "mlapi_version", "") or "",
                protocol=protocol,
                method=request.method or "",
                path=request.path,
                status=status,
                error_code=error_code,
                predictions=int(getattr(request, "mlapi_predictions", 0) or 0) if ok else 0,
                latency_ms=latency_ms,
                request_bytes=int(request.META.get("CONTENT_LENGTH") or 0),
                response_bytes=response_size(response),
                request_id=getattr(request, "request_id", ""),
            )
        )
        labels = (model or "-", protocol, plan, outcome_for(status, error_code))
        counter = self.counters.get(labels)
        if counter is None:  # .labels() takes a lock and hashes; look each child up once
            counter = self.counters[labels] = PREDICT_REQUESTS.labels(*labels)
        counter.inc()
