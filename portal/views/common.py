"""What every subscriber page needs: login, the caller's subscription, and honest statuses."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from keys.models import Subscription
from mlapi.exceptions import DomainError

INVALID_FORM_STATUS = 400


def subscriber_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Log in first; then set `request.subscription` (plan loaded) or explain that there is none.

    Operators created with `createsuperuser` have no subscription: they get a page saying so
    (403) instead of a crash, with a link to the admin.
    """

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        subscription = (
            Subscription.objects.select_related("plan", "requested_plan")
            .filter(user=request.user)
            .first()
        )
        if subscription is None:
            return render(request, "portal/no_subscription.html", status=403)
        request.subscription = subscription
        return view(request, *args, **kwargs)

    return wrapper


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
    named = [e.get("field") for e in (exc.errors or []) if e.get("field") in form.fields]
    form.add_error(named[0] if named else None, forms.ValidationError(exc.detail, code=exc.code))
