"""Finishing a data-plane call: its usage record and its request counter, on every transport.

REST calls are finished by `usage.middleware.UsageRecordingMiddleware` once the response is
built; gRPC calls by their servicer (predictions.grpc) once the status is known. Both hand over
the call's `keys.meter.RequestMeter` with status, error code, bytes and latency filled in.
"""

from __future__ import annotations

from django.conf import settings

from keys.meter import RequestMeter
from mlapi.metrics import PREDICT_REQUESTS
from usage.events import UsageEvent
from usage.recording import record_usage

_counters: dict[tuple[str, str, str, str], object] = {}


def outcome_for(status: int, error_code: str) -> str:
    """The metrics outcome label: "ok", else the contract error code (or the bare status).

    The same vocabulary as predictions.metering, so dashboards can tell a 429 that was
    `rate_limited` from one that was `quota_exceeded`.
    """
    if status < 400:
        return "ok"
    return error_code or str(status)


def finish_call(meter: RequestMeter) -> None:
    """Record an authenticated call (usage event + `mlapi_predict_requests_total`)."""
    principal = meter.principal
    if principal is None or not settings.MLAPI_USAGE_RECORDING:
        return
    record_usage(UsageEvent.from_meter(meter))
    outcome = outcome_for(meter.status, meter.error_code)
    labels = (meter.model or "-", meter.protocol, principal.plan.name, outcome)
    counter = _counters.get(labels)
    if counter is None:  # .labels() takes a lock and hashes; look each child up once
        counter = _counters[labels] = PREDICT_REQUESTS.labels(*labels)
    counter.inc()
