"""API keys: list, create (shown once), revoke and rotate. Only the caller's keys exist here."""

from __future__ import annotations

from datetime import UTC, datetime, time

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_http_methods

from keys.models import ApiKey
from keys.services import create_api_key, revoke_api_key, rotate_api_key
from mlapi.exceptions import DomainError
from portal.forms import ApiKeyCreateForm
from portal.views.common import add_service_error, no_store, render_form, subscriber_required


def _own_key(request: HttpRequest, key_id: int) -> ApiKey:
    """The caller's key or 404: another subscriber's key does not exist for them."""
    return get_object_or_404(ApiKey, pk=key_id, subscription=request.subscription)


def key_rows(subscription, now: datetime | None = None) -> list[dict]:
    """Each key with a state a person can read: active, grace (rotated), expired or revoked."""
    now = now or timezone.now()
    rows = []
    for key in ApiKey.objects.filter(subscription=subscription).select_related("rotated_to"):
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
    context = {"rows": key_rows(request.subscription), "form": form}
    return render_form(request, "portal/keys.html", context)


@subscriber_required
@require_http_methods(["GET", "POST"])
@sensitive_variables("secret")
def keys(request: HttpRequest) -> HttpResponse:
    """The key list and the create form; a created key is shown in this response only."""
    form = ApiKeyCreateForm(request.POST or None)
    if request.method != "POST" or not form.is_valid():
        return _keys_page(request, form)
    expires_on = form.cleaned_data["expires_on"]
    expires_at = datetime.combine(expires_on, time.min, tzinfo=UTC) if expires_on else None
    try:
        api_key, secret = create_api_key(
            subscription=request.subscription,
            name=form.cleaned_data["name"],
            expires_at=expires_at,
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
            revoke_api_key(api_key=api_key)
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
            new_key, secret = rotate_api_key(api_key=api_key)
        except DomainError as exc:
            messages.error(request, exc.detail)
            return redirect("portal:keys")
        api_key.refresh_from_db()
        context = {"api_key": new_key, "secret": secret, "rotated_from": api_key}
        return no_store(render(request, "portal/key_created.html", context, status=201))
    return render(request, "portal/key_confirm.html", {"api_key": api_key, "action": "rotate"})
