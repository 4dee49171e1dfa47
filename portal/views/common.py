"""What every subscriber page needs: login, the caller's subscription, and honest statuses."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from keys import roles
from keys.clientip import client_ip
from keys.models import Membership
from mlapi.exceptions import DomainError

INVALID_FORM_STATUS = 400


ORG_SESSION_KEY = "mlapi_org"


def current_membership(request: HttpRequest) -> Membership | None:
    """The organization the portal acts on: the one picked in the switcher, else the personal
    one, else the first the user belongs to. Read fresh on every page: a removed member's
    session loses the organization at once."""
    memberships = list(
        Membership.objects.filter(user_id=request.user.pk)
        .select_related("organization__subscription__plan")
        .select_related("organization__subscription__requested_plan")
        .order_by("organization__slug")
    )
    request.memberships = memberships
    wanted = request.session.get(ORG_SESSION_KEY)
    usable = [m for m in memberships if hasattr(m.organization, "subscription")]
    for match in (
        lambda m: m.organization.slug == wanted,
        lambda m: m.organization.subscription.user_id == request.user.pk,  # the personal one
        lambda m: True,
    ):
        for membership in usable:
            if match(membership):
                return membership
    return None


def subscriber_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Log in first; then set `request.membership`, `request.organization` and
    `request.subscription` (plan loaded) of the current organization, or explain there is none.

    Operators created with `createsuperuser` have no subscription: they get a page saying so
    (403) instead of a crash, with a link to the admin.
    """

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        membership = current_membership(request)
        if membership is None:
            return render(request, "portal/no_subscription.html", status=403)
        request.membership = membership
        request.organization = membership.organization
        request.subscription = membership.organization.subscription
        return view(request, *args, **kwargs)

    return wrapper


def require_role(request: HttpRequest, permission: str) -> None:
    """403 page unless the current member's role holds `permission` (keys.roles)."""
    if not roles.allows(request.membership.role, permission):
        raise PermissionDenied(f"Your role ({request.membership.role}) does not allow this.")


def audit_context(request: HttpRequest) -> dict:
    """`actor` and `ip` for the audit entry of a portal action."""
    return {"actor": request.user, "ip": client_ip(request)}


def render_form(
    request: HttpRequest, template: str, context: dict, *, form_key: str = "form"
) -> HttpResponse:
    """Render a page; 400 when the form in it was submitted and is invalid."""
    form = context.get(form_key)
    invalid = form is not None and form.is_bound and bool(form.errors)
    return render(request, template, context, status=INVALID_FORM_STATUS if invalid else 200)


def no_store(response: HttpResponse) -> HttpResponse:
    """Keep a page that shows a secret out of every cache, the browser's history included."""
    response["Cache-Control"] = "no-store, max-age=0"
    response["Pragma"] = "no-cache"
    return response


def add_service_error(form: forms.Form, exc: DomainError) -> None:
    """Show a service's refusal on the form: on the field it names, else above the form.

    The error keeps the contract's code (`quota_exceeded`, `validation_error`, ...), so the
    page and the API describe the same refusal the same way.
    """
    fields = [(e.get("field") or "").split("[")[0] for e in (exc.errors or [])]
    named = [f for f in fields if f in form.fields]  # `allowed_ips[2]` is the allowed_ips box
    form.add_error(named[0] if named else None, forms.ValidationError(exc.detail, code=exc.code))
