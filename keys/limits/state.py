"""The values the limits hand out: periods, the state rendered as headers, and the 429s."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mlapi.exceptions import QUOTA_PROBLEM_TYPE, DomainError


def period_bounds(period: str, at: datetime) -> tuple[datetime, datetime]:
    """`[start, end)` of the calendar day, ISO week (from Monday) or month containing `at`, UTC."""
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else (start.replace(month=start.month + 1))
        )
        return start, end
    raise ValueError(f"unknown quota period {period!r}")


@dataclass(frozen=True, slots=True)
class LimitState:
    """The limits of one subscription right after a request's step, rendered as headers."""

    rate: float
    burst: int
    tokens: float
    quota: int  # the period's limit, extension included
    used: int
    period_start: datetime
    period_end: datetime
    now: float
    before: int  # `used` before this request's units, as the store saw it (thresholds)

    @property
    def remaining(self) -> int:
        return max(0, self.quota - self.used)

    @property
    def resets_in(self) -> int:
        return max(0, math.ceil(self.period_end.timestamp() - self.now))

    @property
    def token_wait(self) -> int:
        """Whole seconds until the bucket holds one more whole token (0 when full)."""
        if self.tokens >= self.burst:
            return 0
        return max(1, math.ceil((math.floor(self.tokens) + 1 - self.tokens) / self.rate))

    def headers(self) -> dict[str, str]:
        """CONTRACT section 5: RateLimit-Policy, RateLimit and the legacy trio (for the quota)."""
        window = round((self.period_end - self.period_start).total_seconds())
        return {
            "RateLimit-Policy": (
                f'"burst";q={self.burst};w=1, "quota";q={self.quota};w={window};qu="predictions"'
            ),
            "RateLimit": (
                f'"burst";r={max(0, math.floor(self.tokens))};t={self.token_wait}, '
                f'"quota";r={self.remaining};t={self.resets_in}'
            ),
            "RateLimit-Limit": str(self.quota),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.resets_in),
        }


class LimitError(DomainError):
    """A 429 that carries the limit state, so the reply still has every RateLimit header."""

    status = 429

    def __init__(self, detail: str, *, state: LimitState, retry_after: int, policy: str) -> None:
        headers = {**state.headers(), "Retry-After": str(max(1, retry_after))}
        super().__init__(detail, headers=headers, extra={"violated-policies": [policy]})
        self.state = state


class RateLimited(LimitError):
    code = "rate_limited"
    title = "Too many requests"


class QuotaExceeded(LimitError):
    code = "quota_exceeded"
    title = "Quota exceeded"
    problem_type = QUOTA_PROBLEM_TYPE


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """What `/api/v1/me` shows about the current quota period."""

    limit: int
    used: int
    remaining: int
    period: str
    period_start: datetime
    resets_at: datetime


def rate_limited(state: LimitState) -> RateLimited:
    """The 429 for an empty bucket; `Retry-After` is the wait for one whole token."""
    wait = math.ceil((1 - state.tokens) / state.rate) if state.tokens < 1 else 1
    return RateLimited(
        "Request rate over the plan's limit; slow down.",
        state=state,
        retry_after=wait,
        policy="burst",
    )


def quota_exceeded(state: LimitState, units: int) -> QuotaExceeded:
    """The 429 for a request larger than what is left of the period's quota."""
    return QuotaExceeded(
        f"This request needs {units} predictions but {state.remaining} remain in the current "
        f"quota period, which resets at {state.period_end.isoformat()}.",
        state=state,
        retry_after=state.resets_in,
        policy="quota",
    )
