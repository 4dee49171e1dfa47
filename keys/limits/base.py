"""The limits store interface: what every store (database, Redis leases) implements.

A store keeps two things per subscription: the token bucket (rate, burst) and the quota
counter of each calendar period. `keys.limits` picks one store from the settings and turns
its `Step`s into `LimitState`s and 429s; a store knows nothing about HTTP.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Limits:
    """One subscription's limits for the current period: what a store needs to decide."""

    subscription_id: int
    rate: float
    burst: int
    quota: int  # the plan's quota; the period's extension lives in the store
    period_start: datetime
    period_end: datetime


class Outcome(enum.Enum):
    ADMITTED = "admitted"
    RATE_LIMITED = "rate_limited"  # no token: no quota was touched
    QUOTA_EXCEEDED = "quota_exceeded"  # the token was taken, no quota units


@dataclass(frozen=True, slots=True)
class Step:
    """What a store did, and the state right after it (for the RateLimit headers)."""

    outcome: Outcome
    tokens: float  # left in the bucket, fractional
    used: int  # quota units used in the period (delivered, not merely reserved)
    extension: int
    # For threshold crossings, `used` before this step as the store saw it (None: `used` minus
    # the step's units). A store whose counts can be revised down gives its high-water mark.
    before: int | None = None

    @property
    def admitted(self) -> bool:
        return self.outcome is Outcome.ADMITTED


class LimitsStore(ABC):
    """Atomic check-and-consume with a refund path (as Sentry's quotas), never read-then-write.

    Every method raises `mlapi.exceptions.ServiceUnavailable` when the store cannot be
    reached; no method ever admits what it could not check.
    """

    name: str = ""

    @abstractmethod
    def admit(self, limits: Limits, *, units: int, now: float) -> Step:
        """Take one rate token and `units` of quota, all or nothing on the quota.

        `units=0` takes the token only. No token: RATE_LIMITED, nothing used. A token but not
        `units` of quota: QUOTA_EXCEEDED, the token stays taken, no unit is used.
        """

    @abstractmethod
    def consume(self, limits: Limits, *, units: int) -> Step:
        """`units` of quota and no token (batch jobs), inside the caller's transaction if any."""

    @abstractmethod
    def refund(self, limits: Limits, *, units: int, period_start: datetime) -> None:
        """Give back `units` taken in the period that started at `period_start`."""

    @abstractmethod
    def peek(self, limits: Limits, *, now: float) -> Step:
        """The state now, consuming nothing (outcome ADMITTED)."""

    def close(self) -> None:  # noqa: B027 - optional for stores that hold connections
        """Release what the store holds (connections); it may be used again afterwards."""
