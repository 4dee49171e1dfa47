"""The usage event: one answered data-plane request, as recording, spool and writer see it.

Its own module so that `usage.recording` (the buffer), `usage.spool` (the exit spool) and
`usage.writer` (the database write) all import it and none of them imports another for it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keys.meter import RequestMeter


@dataclass(slots=True)  # not frozen: frozen dataclasses cost ~2x to build, once per request
class UsageEvent:
    """One answered data-plane request, as the middleware (or a task) saw it."""

    time: datetime
    subscription_id: int
    key_id: int | None
    plan_name: str
    model_name: str
    model_version: str
    protocol: str
    method: str
    path: str
    status: int
    error_code: str
    predictions: int
    latency_ms: float
    request_bytes: int
    response_bytes: int
    request_id: str = ""  # the reply's X-Request-ID (mlapi.request_id)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_meter(cls, meter: RequestMeter) -> UsageEvent:
        """The event of a finished, authenticated call (`meter.principal` is set)."""
        principal = meter.principal
        ok = 200 <= meter.status < 300
        return cls(
            time=meter.started_at,
            subscription_id=principal.subscription_id,
            key_id=principal.key_id,
            plan_name=principal.plan.name,
            model_name=meter.model,
            model_version=meter.version,
            protocol=meter.protocol,
            method=meter.method,
            path=meter.path,
            status=meter.status,
            error_code="" if ok else meter.error_code,
            predictions=meter.predictions if ok else 0,
            latency_ms=meter.latency_ms,
            request_bytes=meter.request_bytes,
            response_bytes=meter.response_bytes,
            request_id=meter.request_id,
        )
