"""API keys: list, create (shown once), revoke and rotate. Only the caller's keys exist here."""

from __future__ import annotations

from datetime import UTC, datetime, time

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_http_methods

from keys import roles
from keys.models import ApiKey
from keys.services import create_api_key, revoke_api_key, rotate_api_key
from mlapi.exceptions import DomainError
from portal.forms import ApiKeyCreateForm
from portal.views.common import (
    add_service_error,
    audit_context,
    no_store,
    render_form,
    require_role,
    subscriber_required,
)
from predictions.models import MLModel


def _own_key(request: HttpRequest, key_id: int) -> ApiKey:
    """The organization's key or 404 (another organization's key does not exist for them);
    403 when the member's role may not change it (developers: only the keys they created)."""
    api_key = get_object_or_404(ApiKey, pk=key_id, subscription=request.subscription)
    if not roles.may_manage_key(
        role=request.membership.role, user_id=request.user.pk, created_by_id=api_key.created_by_id
    ):
        raise PermissionDenied("Your role lets you change only the keys you created.")
    return api_key


def _model_names(subscription) -> list[str]:
    plan = subscription.plan
    return [n for n in MLModel.objects.order_by("name").values_list("name", flat=True)
            if plan.covers(n)]  # fmt: skip


def key_rows(subscription, now: datetime | None = None) -> list[dict]:
    """Each key with a state a person can read: active, grace (rotated), expired or revoked."""
    now = now or timezone.now()
    rows = []
    keys = ApiKey.objects.filter(subscription=subscription).select_related(
        "rotated_to", "created_by"
    )
    for key in keys:
        if key.revoked_at is not None:
            state = "revoked"
        elif key.expires_at is not None and key.expires_at <= now:
            state = "expired"
        elif key.rotated_to_id is not None:
            state = "grace"
        else:
            state = "active"
        rows.append({"key": key, "state": state})
    return rows


def _keys_page(request: HttpRequest, form: ApiKeyCreateForm) -> HttpResponse:
    can_create = roles.allows(request.membership.role, roles.KEYS_CREATE)
    context = {"rows": key_rows(request.subscription), "form": form, "can_create": can_create}
    return render_form(request, "portal/keys.html", context)


@subscriber_required
@require_http_methods(["GET", "POST"])
@sensitive_variables("secret")
def keys(request: HttpRequest) -> HttpResponse:
    """The key list and the create form; a created key is shown in this response only."""
    form = ApiKeyCreateForm(request.POST or None, model_names=_model_names(request.subscription))
    if request.method == "POST":
        require_role(request, roles.KEYS_CREATE)
    if request.method != "POST" or not form.is_valid():
        return _keys_page(request, form)
    expires_on = form.cleaned_data["expires_on"]
    expires_at = datetime.combine(expires_on, time.min, tzinfo=UTC) if expires_on else None
    try:
        api_key, secret = create_api_key(
            subscription=request.subscription,
            name=form.cleaned_data["name"],
            expires_at=expires_at,
            created_by=request.user,
            restrictions=form.restrictions(),
            **audit_context(request),
        )
    except DomainError as exc:
        add_service_error(form, exc)
        return _keys_page(request, form)
    context = {"api_key": api_key, "secret": secret, "rotated_from": None}
    return no_store(render(request, "portal/key_created.html", context, status=201))


@subscriber_required
@require_http_methods(["GET", "POST"])
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    """GET asks for confirmation; POST revokes the key at once."""
    api_key = _own_key(request, key_id)
    if request.method == "POST":
        if api_key.revoked_at is None:
            revoke_api_key(api_key=api_key, **audit_context(request))
            messages.success(request, f"Key mlk_{api_key.prefix} is revoked.")
        return redirect("portal:keys")
    return render(request, "portal/key_confirm.html", {"api_key": api_key, "action": "revoke"})


@subscriber_required
@require_http_methods(["GET", "POST"])
@sensitive_variables("secret")
def key_rotate(request: HttpRequest, key_id: int) -> HttpResponse:
    """GET asks for confirmation; POST issues a successor, shown once, and starts the grace."""
    api_key = _own_key(request, key_id)
    if api_key.revoked_at is not None or api_key.rotated_to_id is not None:
        messages.error(request, f"Key mlk_{api_key.prefix} cannot be rotated any more.")
        return redirect("portal:keys")
    if request.method == "POST":
        try:
            new_key, secret = rotate_api_key(api_key=api_key, **audit_context(request))
        except DomainError as exc:
            messages.error(request, exc.detail)
            return redirect("portal:keys")
        api_key.refresh_from_db()
        context = {"api_key": new_key, "secret": secret, "rotated_from": api_key}
        return no_store(render(request, "portal/key_created.html", context, status=201))
    return render(request, "portal/key_confirm.html", {"api_key": api_key, "action": "rotate"})
