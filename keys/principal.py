"""Who is calling on the data plane, as a small immutable value the hot path can cache.

Authentication builds a `Principal` from the database (or the per-process cache) and every
later step (permissions, limits, usage recording) reads it instead of querying again.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PlanSnapshot:
    """The plan's limits as they were when the principal was loaded (refreshed within ~1 s)."""

    id: int
    name: str
    rate: float
    burst: int
    quota: int
    quota_period: str
    max_instances: int
    max_job_rows: int
    all_models: bool
    model_names: frozenset[str]

    def covers(self, model_name: str) -> bool:
        """Whether requests to `model_name` are allowed on this plan."""
        return self.all_models or model_name in self.model_names

    @classmethod
    def from_plan(cls, plan) -> PlanSnapshot:
        """Snapshot a `keys.models.Plan` row."""
        return cls(
            id=plan.pk,
            name=plan.name,
            rate=float(plan.rate),
            burst=int(plan.burst),
            quota=int(plan.quota),
            quota_period=plan.quota_period,
            max_instances=int(plan.max_instances),
            max_job_rows=int(plan.max_job_rows),
            all_models=bool(plan.all_models),
            model_names=frozenset(plan.model_names or ()),
        )


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated subscriber on the data plane: whose limits apply and through which key."""

    subscription_id: int
    user_id: int
    key_id: int | None
    status: str
    plan: PlanSnapshot

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    @classmethod
    def for_subscription(cls, subscription, *, key_id: int | None = None) -> Principal:
        """Build from a `Subscription` whose `plan` is loaded (select_related)."""
        return cls(
            subscription_id=subscription.pk,
            user_id=subscription.user_id,
            key_id=key_id,
            status=subscription.status,
            plan=PlanSnapshot.from_plan(subscription.plan),
        )
