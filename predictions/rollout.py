"""Which version answers an unpinned prediction: the rollout's default, canary or shadow.

`choose_version(name, caller_id=...)` is the one place the unpinned version is decided, on
every protocol. A caller (an API key, or a user for a JWT) lands in one of 10,000 buckets by a
stable hash of (caller, model, canary version); buckets below `canary_percent` * 100 get the
canary. So a caller keeps its version while the rollout is unchanged, across processes and
restarts; ramping the percent up only moves callers from the default to the canary (none the
other way); naming another canary reshuffles.

Plans are cached per process and dropped with the registry's routes
(`inference.route_generation()`): once warm, the hot path does no query.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass

from predictions import inference
from predictions.models import MLModel

BUCKETS = 10_000


@dataclass(frozen=True)
class Plan:
    """A model's rollout as the data plane needs it (version labels; percents as buckets)."""

    default: str | None
    canary: str | None
    canary_buckets: int
    shadow: str | None
    shadow_percent: float


_lock = threading.Lock()
_plans: dict[str, Plan] = {}
_state = {"generation": None}


def _load_plan(name: str) -> Plan | None:
    model = (
        MLModel.objects.filter(name=name).select_related("canary_version", "shadow_version").first()
    )
    if model is None:
        return None
    default = model.versions.filter(is_default=True).values_list("version", flat=True).first()
    canary = model.canary_version.version if model.canary_version else None
    shadow = model.shadow_version.version if model.shadow_version else None
    return Plan(
        default=default,
        canary=canary,
        canary_buckets=round(model.canary_percent * BUCKETS / 100) if canary else 0,
        shadow=shadow,
        shadow_percent=model.shadow_percent if shadow else 0.0,
    )


def plan_for(name: str) -> Plan | None:
    """The cached rollout of `name` (None for an unknown model; misses are not cached)."""
    generation = inference.route_generation()
    if _state["generation"] != generation:
        with _lock:
            _plans.clear()
            _state["generation"] = generation
    plan = _plans.get(name)
    if plan is None:
        plan = _load_plan(name)
        if plan is not None:
            _plans[name] = plan
    return plan


def bucket(caller_id: str, name: str, canary: str) -> int:
    """The caller's stable bucket in [0, BUCKETS) for this model's canary."""
    digest = hashlib.blake2b(f"{caller_id}\x00{name}\x00{canary}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") % BUCKETS


def choose_version(name: str, *, caller_id: str) -> str | None:
    """The version label that answers `caller_id`'s unpinned call to `name`.

    None when the model is unknown or has no default (get_predictor then answers 404).
    """
    plan = plan_for(name)
    if plan is None:
        return None
    if plan.canary_buckets and bucket(caller_id, name, plan.canary) < plan.canary_buckets:
        return plan.canary
    return plan.default


def caller_id(principal) -> str:
    """Stickiness key of a data-plane principal: its API key, or its user for a JWT."""
    if principal.key_id is not None:
        return f"key:{principal.key_id}"
    return f"user:{principal.user_id}"


def shadow_for(name: str, answered: str) -> str | None:
    """The shadow version that should also score this request (sampled), or None."""
    plan = plan_for(name)
    if plan is None or plan.shadow is None or plan.shadow == answered:
        return None
    if plan.shadow_percent >= 100 or random.random() * 100 < plan.shadow_percent:
        return plan.shadow
    return None


def add_lifecycle_headers(response, headers: dict[str, str] | None) -> None:
    """Put a deprecated version's `Deprecation` / `Sunset` headers on a reply it gave."""
    for header, value in (headers or {}).items():
        response[header] = value
