"""`record_action(...)`: the one way an audit entry is written.

Call it inside the transaction of the action it records (every service that changes something
is `transaction.atomic` and records before it returns), so an action that rolls back leaves no
entry and no committed action lacks one.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from audit.models import AuditEntry

SYSTEM = "system"


def _actor(actor: Any) -> tuple[str, int | None]:
    if actor is None:
        return SYSTEM, None
    if isinstance(actor, str):
        return actor, None
    if getattr(actor, "is_authenticated", False):
        return actor.get_username(), actor.pk
    return SYSTEM, None


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def record_action(
    *,
    action: str,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: Any = "",
    actor: Any = None,
    organization_id: int | None = None,
    ip: str | None = None,
    changes: dict | None = None,
) -> AuditEntry:
    """Append one entry. `actor`: a user, a name, or None for `system`.

    `target` (a model instance) fills `target_type` (`app.model`) and `target_id`.
    `changes` is a JSON-safe dict, e.g. `{"role": ["developer", "admin"]}` (old, new).
    """
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target.pk
    name, actor_id = _actor(actor)
    return AuditEntry.objects.create(
        actor=name,
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id="" if target_id is None else str(target_id),
        organization_id=organization_id,
        ip=ip or None,
        changes=_json_safe(changes or {}),
    )
