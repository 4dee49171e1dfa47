"""Who is calling on the data plane, as a small immutable value the hot path can cache.

Authentication builds a `Principal` from the database (or the per-process cache) and every
later step (permissions, limits, usage recording) reads it instead of querying again.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

SCOPES = ("predict", "jobs", "models:read")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def all_scopes() -> list[str]:
    """A new key's scopes when none are named: all of them."""
    return list(SCOPES)


@dataclass(frozen=True, slots=True)
class KeyRestrictions:
    """A key's §10 restrictions, parsed once when the key is loaded (cached with it).

    `models` None = every model the plan covers; empty `networks` / `origins` = any.
    """

    models: frozenset[str] | None = None
    scopes: frozenset[str] = frozenset(SCOPES)
    networks: tuple[Network, ...] = ()
    origins: frozenset[str] = frozenset()

    @property
    def unrestricted(self) -> bool:
        return (
            self.models is None
            and not self.networks
            and not self.origins
            and len(self.scopes) == len(SCOPES)
        )

    @classmethod
    def from_key(cls, api_key) -> KeyRestrictions:
        """Parse a `keys.models.ApiKey` row's stored (already validated) restrictions."""
        restrictions = cls(
            models=None if api_key.allowed_models is None else frozenset(api_key.allowed_models),
            scopes=frozenset(api_key.scopes if api_key.scopes is not None else SCOPES),
            networks=tuple(
                ipaddress.ip_network(n, strict=False) for n in api_key.allowed_ips or ()
            ),
            origins=frozenset(api_key.allowed_origins or ()),
        )
        return UNRESTRICTED if restrictions.unrestricted else restrictions


UNRESTRICTED = KeyRestrictions()


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
    organization_id: int | None = None
    restrictions: KeyRestrictions = field(default=UNRESTRICTED)

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    @classmethod
    def for_subscription(
        cls,
        subscription,
        *,
        key_id: int | None = None,
        restrictions: KeyRestrictions = UNRESTRICTED,
        user_id: int | None = None,
    ) -> Principal:
        """Build from a `Subscription` whose `plan` is loaded (select_related).

        `user_id` is the caller (a JWT's user, a key's creator); it defaults to the
        subscription's personal user.
        """
        return cls(
            subscription_id=subscription.pk,
            user_id=user_id if user_id is not None else subscription.user_id,
            key_id=key_id,
            status=subscription.status,
            plan=PlanSnapshot.from_plan(subscription.plan),
            organization_id=subscription.organization_id,
            restrictions=restrictions,
        )
