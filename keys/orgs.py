"""Workflows for organizations, members and invitations (contract §9).

Keyword-only, verb-first, each one atomic with its audit entry. `actor` is the user acting
(None = `system`), `ip` their address, both only for the audit log.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import record_action
from keys import keycache
from keys.models import (
    INVITATION_VALIDITY,
    Invitation,
    Membership,
    Organization,
    Plan,
    Role,
    Subscription,
    SubscriptionStatus,
)
from keys.roles import may_assign
from mlapi.exceptions import Conflict, Forbidden, NotFound, invalid

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?\Z")
ACCEPT_PATH = "/portal/invitations/accept?token="  # the portal's accept page (by URL only)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def slug_taken(slug: str) -> bool:
    """An organization or a user (whose personal organization it would be) has this name."""
    return (
        Organization.objects.filter(slug__iexact=slug).exists()
        or get_user_model().objects.filter(username__iexact=slug).exists()
    )


def ensure_personal_organization(*, user) -> Organization:
    """The user's personal organization (slug = username, the user its owner), made if missing."""
    org = Organization.objects.filter(
        slug__iexact=user.username, memberships__user=user, memberships__role=Role.OWNER
    ).first()
    if org is not None:
        return org
    slug = user.username
    if Organization.objects.filter(slug__iexact=slug).exists():
        slug = f"{user.username}-{user.pk}"  # only when an old row already took the name
    with transaction.atomic():
        org = Organization.objects.create(slug=slug, name=user.username)
        Membership.objects.create(organization=org, user=user, role=Role.OWNER)
    return org


def _public_plan(plan_name: str | None) -> Plan:
    plan = Plan.objects.filter(name=plan_name or "free", is_public=True).first()
    if plan is None:
        raise invalid("plan", f"There is no public plan named {plan_name!r}.")
    return plan


@transaction.atomic
def create_organization(
    *, name: str, owner, slug: str | None = None, plan_name: str | None = None, ip=None
) -> Organization:
    """A team organization owned by `owner`, on a new subscription (`free` unless named)."""
    from django.utils.text import slugify

    slug = (slug or slugify(name)).lower()
    if not SLUG_RE.match(slug):
        raise invalid("slug", "Use 1-50 lowercase letters, digits and hyphens.")
    if slug_taken(slug):
        raise invalid("slug", "This slug is taken.")
    plan = _public_plan(plan_name)
    status = SubscriptionStatus.PENDING if plan.requires_approval else SubscriptionStatus.ACTIVE
    try:
        with transaction.atomic():
            org = Organization.objects.create(slug=slug, name=name)
    except IntegrityError as exc:  # lost a race for the slug
        raise invalid("slug", "This slug is taken.") from exc
    Membership.objects.create(organization=org, user=owner, role=Role.OWNER)
    Subscription.objects.create(organization=org, plan=plan, status=status)
    record_action(
        action="org.created",
        target=org,
        actor=owner,
        organization_id=org.pk,
        ip=ip,
        changes={"slug": slug, "plan": plan.name},
    )
    return org


def _locked_owner_count(organization: Organization) -> int:
    # Lock the organization row so two concurrent demotions cannot both see "another owner".
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    return Membership.objects.filter(organization=organization).owners().count()


def _forget_user(user_id: int) -> None:
    keycache.forget(f"jwt-user:{user_id}")


@transaction.atomic
def change_member_role(*, membership: Membership, role: str, actor, actor_role: str, ip=None):
    """Set a member's role; 403 beyond the actor's rights, 409 for the last owner."""
    if role not in Role.values:
        raise invalid("role", f"Unknown role {role!r}; choose from {', '.join(Role.values)}.")
    if not may_assign(actor_role=actor_role, target_role=membership.role, new_role=role):
        raise Forbidden("Your role cannot give or change this role.")
    old = membership.role
    if old == role:
        return membership
    if old == Role.OWNER and _locked_owner_count(membership.organization) <= 1:
        raise Conflict("An organization always keeps an owner; make someone else owner first.")
    Membership.objects.filter(pk=membership.pk).update(role=role)
    membership.role = role
    record_action(
        action="member.role_changed",
        target=membership,
        actor=actor,
        organization_id=membership.organization_id,
        ip=ip,
        changes={"user": membership.user.username, "role": [old, role]},
    )
    return membership


@transaction.atomic
def remove_member(*, membership: Membership, actor, actor_role: str, ip=None) -> None:
    """Remove a member (or let one leave); their access ends at once, the org's keys stay."""
    leaving = actor is not None and actor.pk == membership.user_id
    if not leaving and not may_assign(actor_role=actor_role, target_role=membership.role,
                                      new_role=None):  # fmt: skip
        raise Forbidden("Your role cannot remove this member.")
    if membership.role == Role.OWNER and _locked_owner_count(membership.organization) <= 1:
        raise Conflict("An organization always keeps an owner; make someone else owner first.")
    record_action(
        action="member.removed",
        target=membership,
        actor=actor,
        organization_id=membership.organization_id,
        ip=ip,
        changes={"user": membership.user.username, "role": membership.role},
    )
    Membership.objects.filter(pk=membership.pk).delete()
    transaction.on_commit(lambda: _forget_user(membership.user_id))


def _send_invitation(*, invitation: Invitation, token: str, base_url: str, inviter: str) -> None:
    link = f"{base_url.rstrip('/')}{ACCEPT_PATH}{token}"
    org = invitation.organization
    send_mail(
        subject=f"{inviter} invited you to {org.name} on mlapi",
        message=(
            f"{inviter} invited you to join the organization {org.name} ({org.slug}) on mlapi "
            f"as {invitation.role}.\n\nAccept within 7 days (sign in or sign up with "
            f"{invitation.email} first):\n{link}\n\nThe link works once.\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[invitation.email],
    )


@transaction.atomic
def invite_member(
    *, organization: Organization, email: str, role: str, actor, actor_role: str, base_url: str,
    ip=None,
) -> tuple[Invitation, str]:  # fmt: skip
    """Invite `email` as `role`; the email (sent after commit) holds the one-time link.

    Re-inviting replaces a pending invitation for the same address. 409 for an existing member.
    """
    if role not in Role.values:
        raise invalid("role", f"Unknown role {role!r}; choose from {', '.join(Role.values)}.")
    if not may_assign(actor_role=actor_role, target_role=None, new_role=role):
        raise Forbidden("Your role cannot invite members with this role.")
    email = email.strip()
    if organization.memberships.filter(user__email__iexact=email).exists():
        raise Conflict(f"{email} is already a member of this organization.")
    organization.invitations.filter(email__iexact=email, used_at__isnull=True).delete()
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        organization=organization,
        email=email,
        role=role,
        token_hash=hash_token(token),
        invited_by=actor,
        expires_at=timezone.now() + INVITATION_VALIDITY,
    )
    record_action(
        action="invitation.created",
        target=invitation,
        actor=actor,
        organization_id=organization.pk,
        ip=ip,
        changes={"email": email, "role": role},
    )
    inviter = actor.get_username() if actor is not None else "mlapi"
    transaction.on_commit(
        lambda: _send_invitation(
            invitation=invitation, token=token, base_url=base_url, inviter=inviter
        )
    )
    return invitation, token


@transaction.atomic
def revoke_invitation(*, invitation: Invitation, actor, ip=None) -> None:
    """Withdraw a pending invitation (its link stops working)."""
    record_action(
        action="invitation.revoked",
        target=invitation,
        actor=actor,
        organization_id=invitation.organization_id,
        ip=ip,
        changes={"email": invitation.email, "role": invitation.role},
    )
    Invitation.objects.filter(pk=invitation.pk).delete()


@transaction.atomic
def accept_invitation(*, token: str, user, ip=None) -> Membership:
    """Join the organization `token` invites to. Unknown, used or expired: 404."""
    invitation = (
        Invitation.objects.select_for_update()
        .pending()
        .filter(token_hash=hash_token(token or ""))
        .first()
    )
    if invitation is None:
        raise NotFound("This invitation does not exist, was already used, or has expired.")
    if invitation.email.lower() != (user.email or "").lower():
        raise Forbidden(
            f"This invitation was sent to another email address; sign in as {invitation.email}."
        )
    if Membership.objects.filter(organization_id=invitation.organization_id, user=user).exists():
        raise Conflict("You are already a member of this organization.")
    membership = Membership.objects.create(
        organization_id=invitation.organization_id, user=user, role=invitation.role
    )
    Invitation.objects.filter(pk=invitation.pk).update(used_at=timezone.now(), used_by=user)
    record_action(
        action="member.joined",
        target=membership,
        actor=user,
        organization_id=invitation.organization_id,
        ip=ip,
        changes={"user": user.get_username(), "role": invitation.role, "invitation": invitation.pk},
    )
    return membership
