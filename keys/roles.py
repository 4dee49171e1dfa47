"""What each organization role may do (contract §9), as one table the views consult.

owner: everything, incl. plan changes and members; admin: keys, webhooks, invitations, members
other than owners; developer: create keys, revoke the keys it created, jobs, usage; viewer:
read usage and the key list.
"""

from __future__ import annotations

from keys.org_models import Role

READ = "org.read"  # the organization, its members, its keys and usage
KEYS_CREATE = "keys.create"
KEYS_MANAGE = "keys.manage"  # update, rotate, revoke any key of the organization
KEYS_MANAGE_OWN = "keys.manage_own"  # ... the keys this member created
MEMBERS_MANAGE = "members.manage"
INVITATIONS = "invitations.manage"
AUDIT_READ = "audit.read"
PLAN_CHANGE = "plan.change"
JOBS = "jobs"
WEBHOOKS = "webhooks.manage"  # endpoints, deliveries (owner, admin)

_ALL = {READ, KEYS_CREATE, KEYS_MANAGE, KEYS_MANAGE_OWN, MEMBERS_MANAGE, INVITATIONS, AUDIT_READ,
        PLAN_CHANGE, JOBS, WEBHOOKS}  # fmt: skip
PERMISSIONS: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset(_ALL),
    Role.ADMIN: frozenset(_ALL - {PLAN_CHANGE}),
    Role.DEVELOPER: frozenset({READ, KEYS_CREATE, KEYS_MANAGE_OWN, JOBS}),
    Role.VIEWER: frozenset({READ}),
}


def allows(role: str, permission: str) -> bool:
    """Whether a member with `role` holds `permission`."""
    return permission in PERMISSIONS.get(role, frozenset())


def may_manage_key(*, role: str, user_id: int, created_by_id: int | None) -> bool:
    """Owners and admins manage every key; developers the keys they created."""
    if allows(role, KEYS_MANAGE):
        return True
    return allows(role, KEYS_MANAGE_OWN) and created_by_id is not None and created_by_id == user_id


def may_assign(*, actor_role: str, target_role: str | None, new_role: str | None) -> bool:
    """Owners change anyone; admins only non-owners, and never make an owner."""
    if actor_role == Role.OWNER:
        return True
    if not allows(actor_role, MEMBERS_MANAGE):
        return False
    return target_role != Role.OWNER and new_role != Role.OWNER
