"""Meters every authenticated REST data-plane request after its response is built.

The data plane's REST base view (`keys.views.MeteredAPIView`) puts a `keys.meter.RequestMeter`
on the request (`request.mlapi_meter`) and names its principal once authenticated; the data
plane fills in model, version and predictions; `mlapi.exceptions.problem_response` sets
`response.error_code`. This middleware adds status, error code, size and latency and finishes
the call (`usage.calls.finish_call`). Requests without an authenticated meter (anonymous,
management plane, portal, admin) are not metered here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from mlapi.protocols import protocol_for_path  # noqa: F401 - the old import path
from usage.calls import finish_call, outcome_for  # noqa: F401 - outcome_for: the old path


def response_size(response: HttpResponse) -> int:
    if getattr(response, "streaming", False):
        return int(response.get("Content-Length") or 0)
    return len(response.content)


class UsageRecordingMiddleware:
    """Times each request and, when it was an authenticated data-plane one, records it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        meter = getattr(request, "mlapi_meter", None)
        if meter is not None and meter.principal is not None:
            meter.latency_ms = (time.perf_counter() - started) * 1000
            meter.status = response.status_code
            meter.error_code = getattr(response, "error_code", "") or ""
            meter.response_bytes = response_size(response)
            meter.request_id = getattr(request, "request_id", "")
            finish_call(meter)
        return response
