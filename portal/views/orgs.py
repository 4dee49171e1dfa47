"""Organizations in the portal: switcher, new organization, members, invitations, accept, audit.

Pages that name an organization in their URL (`/portal/orgs/<slug>/...`) are 404 to anyone
who is not a member at the moment of the request; role refusals are the 403 page.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from keys import orgs, roles
from keys.audit_views import audit_entries
from keys.models import Invitation, Membership, Role
from keys.org_access import membership_for
from mlapi.exceptions import DomainError, invalid
from portal.forms import InvitationForm, OrganizationForm, RoleForm
from portal.views.common import ORG_SESSION_KEY, add_service_error, audit_context, render_form

AUDIT_PAGE = 100


def _member(request: HttpRequest, slug: str, permission: str = roles.READ) -> Membership:
    membership = membership_for(request.user, slug)
    if membership is None:
        raise Http404("No such organization.")
    if not roles.allows(membership.role, permission):
        raise PermissionDenied(f"Your role ({membership.role}) does not allow this.")
    return membership


@login_required
@require_http_methods(["GET", "POST"])
def organizations(request: HttpRequest) -> HttpResponse:
    """The user's organizations and a form to create one (its creator is the owner)."""
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            org = orgs.create_organization(
                name=form.cleaned_data["name"],
                slug=form.cleaned_data["slug"] or None,
                owner=request.user,
                ip=audit_context(request)["ip"],
            )
        except DomainError as exc:
            add_service_error(form, exc)
        else:
            request.session[ORG_SESSION_KEY] = org.slug
            messages.success(request, f"Created {org.name}; it is now your current organization.")
            return redirect("portal:members", slug=org.slug)
    memberships = Membership.objects.filter(user=request.user).select_related(
        "organization__subscription__plan"
    )
    context = {"memberships": memberships.order_by("organization__slug"), "form": form}
    return render_form(request, "portal/organizations.html", context)


@login_required
@require_POST
def switch(request: HttpRequest) -> HttpResponse:
    """Make another organization current for the keys, usage, jobs and plan pages."""
    membership = _member(request, request.POST.get("slug", ""))
    request.session[ORG_SESSION_KEY] = membership.organization.slug
    messages.info(request, f"Now working in {membership.organization.name}.")
    return redirect("portal:dashboard")


@login_required
@require_http_methods(["GET", "POST"])
def members(request: HttpRequest, slug: str) -> HttpResponse:
    """Members (role changes, removal) and invitations (owners and admins)."""
    membership = _member(request, slug)
    org = membership.organization
    can_manage = roles.allows(membership.role, roles.MEMBERS_MANAGE)
    form = InvitationForm(request.POST or None)
    if request.method == "POST":
        _member(request, slug, roles.INVITATIONS)
        if form.is_valid():
            try:
                orgs.invite_member(
                    organization=org,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    actor_role=membership.role,
                    base_url=request.build_absolute_uri("/"),
                    **audit_context(request),
                )
            except DomainError as exc:
                add_service_error(form, exc)
            else:
                messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
                return redirect("portal:members", slug=slug)
    context = {
        "org": org,
        "membership": membership,
        "can_manage": can_manage,
        "can_invite": roles.allows(membership.role, roles.INVITATIONS),
        "can_audit": roles.allows(membership.role, roles.AUDIT_READ),
        "members": org.memberships.select_related("user").order_by("created_at", "id"),
        "invitations": org.invitations.filter(used_at__isnull=True).select_related("invited_by"),
        "roles": Role.choices,
        "form": form,
    }
    return render_form(request, "portal/members.html", context)


@login_required
@require_POST
def member_role(request: HttpRequest, slug: str, user_id: int) -> HttpResponse:
    membership = _member(request, slug, roles.MEMBERS_MANAGE)
    target = get_object_or_404(membership.organization.memberships, user_id=user_id)
    form = RoleForm(request.POST)
    try:
        if not form.is_valid():
            raise invalid("role", "Pick one of the roles.")
        orgs.change_member_role(
            membership=target,
            role=form.cleaned_data["role"],
            actor_role=membership.role,
            **audit_context(request),
        )
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"{target.user.username} is now {target.role}.")
    return redirect("portal:members", slug=slug)


@login_required
@require_POST
def member_remove(request: HttpRequest, slug: str, user_id: int) -> HttpResponse:
    membership = _member(request, slug)
    target = get_object_or_404(membership.organization.memberships, user_id=user_id)
    if target.user_id != request.user.pk:
        _member(request, slug, roles.MEMBERS_MANAGE)
    try:
        orgs.remove_member(membership=target, actor_role=membership.role, **audit_context(request))
    except DomainError as exc:
        messages.error(request, exc.detail)
        return redirect("portal:members", slug=slug)
    if target.user_id == request.user.pk:
        messages.success(request, f"You left {membership.organization.name}.")
        return redirect("portal:organizations")
    messages.success(request, f"{target.user.username} was removed.")
    return redirect("portal:members", slug=slug)


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, slug: str, invitation_id: int) -> HttpResponse:
    membership = _member(request, slug, roles.INVITATIONS)
    pending = Invitation.objects.filter(organization=membership.organization, used_at__isnull=True)
    invitation = get_object_or_404(pending, pk=invitation_id)
    orgs.revoke_invitation(invitation=invitation, **audit_context(request))
    messages.success(request, f"The invitation to {invitation.email} was withdrawn.")
    return redirect("portal:members", slug=slug)


@login_required
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest) -> HttpResponse:
    """The link in the email: shows the invitation; POST joins (404 if unknown/used/expired)."""
    token = request.POST.get("token") or request.GET.get("token", "")
    invitation = (
        Invitation.objects.pending()
        .filter(token_hash=orgs.hash_token(token))
        .select_related("organization", "invited_by")
        .first()
    )
    if invitation is None:
        raise Http404("This invitation does not exist, was already used, or has expired.")
    if request.method == "POST":
        try:
            joined = orgs.accept_invitation(token=token, user=request.user, **_ip(request))
        except DomainError as exc:
            messages.error(request, exc.detail)
        else:
            request.session[ORG_SESSION_KEY] = invitation.organization.slug
            messages.success(
                request, f"You joined {invitation.organization.name} as {joined.role}."
            )
            return redirect("portal:dashboard")
    return render(
        request, "portal/invitation_accept.html", {"invitation": invitation, "token": token}
    )


def _ip(request: HttpRequest) -> dict:
    return {"ip": audit_context(request)["ip"]}


@login_required
def audit(request: HttpRequest, slug: str) -> HttpResponse:
    """The organization's audit log, newest first (owners and admins)."""
    membership = _member(request, slug, roles.AUDIT_READ)
    action = request.GET.get("action", "").strip()[:64]
    entries = audit_entries(organization_id=membership.organization_id, action=action or None)
    context = {"org": membership.organization, "entries": entries[:AUDIT_PAGE], "action": action}
    return render(request, "portal/audit.html", context)
