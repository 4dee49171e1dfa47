"""`RequestMeter`: what one data-plane call is charged and how it ended, on every transport.

The data plane (predictions.dataplane) fills it as the call goes: who called (`principal`),
which model and version answered, how many predictions were admitted; the transport adapter
adds what only it knows (status, error code, bytes, latency) and hands the meter to usage
recording (`usage.recording.record_call`). The limit steps live here too, so that a REST view,
a gRPC servicer and a test helper charge a call the same way: `take_token()` for calls that
predict nothing, `admit(units)` once the input is valid, `refund()` when the prediction fails
on our side, `settle()` for the RateLimit headers at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from keys import limits
from keys.events import note_admitted
from keys.principal import Principal
from mlapi.exceptions import DomainError


@dataclass(slots=True)
class RequestMeter:
    """One data-plane call. Unauthenticated calls keep `principal` None and are not recorded."""

    protocol: str
    started_at: datetime
    consumes_quota: bool = False
    method: str = ""
    path: str = ""
    principal: Principal | None = None
    model: str = ""
    version: str = ""
    unpinned: bool = False  # no version named: the rollout chose it (and may shadow it)
    predictions: int = 0
    status: int = 0
    error_code: str = ""
    request_bytes: int = 0
    response_bytes: int = 0
    latency_ms: float = 0.0
    request_id: str = ""  # X-Request-ID (REST) or x-request-id metadata (gRPC)
    # Where the call came from, raw (read only for keys restricted by IP or origin, §10):
    peer: str = ""  # the socket peer's address
    forwarded_for: str = ""  # X-Forwarded-For as received (trusted only from MLAPI_TRUSTED_PROXIES)
    origin: str = ""  # the Origin header
    limit_state: limits.LimitState | None = None
    admitted: tuple[int, datetime] | None = None
    # Reply headers the data plane adds (e.g. a deprecated version's Deprecation/Sunset).
    headers: dict[str, str] = field(default_factory=dict)

    def take_token(self) -> None:
        """One rate token (calls that predict nothing); raises `keys.limits.RateLimited`."""
        self._limit(lambda principal: limits.take_token(principal=principal))

    def admit(self, units: int) -> None:
        """One token and `units` of quota, atomically; raises `RateLimited`/`QuotaExceeded`."""
        self._limit(lambda principal: limits.admit(principal=principal, units=units))
        # quota.threshold webhooks: arithmetic on the admitted state; a write only on a crossing.
        note_admitted(principal=self.principal, state=self.limit_state)
        self.admitted = (units, self.limit_state.period_start)

    def refund(self) -> None:
        """Give back what `admit()` took (the prediction failed on our side)."""
        if self.admitted is not None:
            units, period_start = self.admitted
            self.admitted = None
            limits.refund(principal=self.principal, units=units, period_start=period_start)

    def settle(self) -> tuple[dict[str, str], limits.RateLimited | None]:
        """(RateLimit headers, a 429 to answer instead) once the call has its answer.

        A quota-consuming call that ended before `admit()` (bad input, unknown model) still
        costs its rate token, so errors cannot be used to hammer the service for free; that
        token can be refused, and then the answer becomes the 429. A limits store that is
        down leaves the answer without headers (it says so itself, or stands).
        """
        principal, state, refused = self.principal, self.limit_state, None
        if principal is None:
            return {}, None
        try:
            if state is None and self.consumes_quota and principal.is_active:
                try:
                    state = limits.take_token(principal=principal)
                except limits.RateLimited as exc:
                    state, refused = exc.state, exc
            if state is None:
                state = limits.peek(principal=principal)
        except DomainError:
            return {}, None
        self.limit_state = state
        return state.headers(), refused

    def _limit(self, step) -> None:
        try:
            self.limit_state = step(self.principal)
        except limits.LimitError as exc:
            self.limit_state = exc.state
            raise
