"""Portal pages for webhooks (list, create with the secret shown once, delivery log, test,
redeliver, delete) and email-alert opt-outs, on the caller's personal organization.

Webhook pages are for its owners and admins (403 page otherwise); the alerts page is for
every member. Each page calls the same services as the API.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from events.services import SUBSCRIBABLE
from keys import roles
from keys.clientip import client_ip
from keys.models import Membership
from mlapi.exceptions import DomainError
from portal.views.common import add_service_error, no_store, render_form, subscriber_required
from webhooks import services
from webhooks.models import ALERT_EVENTS, AlertOptOut, Delivery, WebhookEndpoint
from webhooks.views import checked_id


class EndpointForm(forms.Form):
    url = forms.CharField(label="URL", max_length=2000, help_text="https, a public address.")
    events = forms.MultipleChoiceField(
        choices=[(e, e) for e in SUBSCRIBABLE], widget=forms.CheckboxSelectMultiple
    )
    description = forms.CharField(max_length=200, required=False)


def _membership(request: HttpRequest) -> Membership:
    return Membership.objects.select_related("organization").get(
        user=request.user, organization_id=request.subscription.organization_id
    )


def _manager_or_403(request: HttpRequest) -> Membership | HttpResponse:
    membership = _membership(request)
    if not roles.allows(membership.role, roles.WEBHOOKS):
        return render(request, "webhooks/forbidden.html", status=403)
    return membership


def _form_id(value) -> int:
    if not (isinstance(value, str) and value.isascii() and value.isdigit()):  # not "²"
        raise Http404("No such delivery.")
    return checked_id(int(value))


def _audit(request: HttpRequest) -> dict:
    return {"actor": request.user, "ip": client_ip(request)}


@subscriber_required
@require_http_methods(["GET", "POST"])
@sensitive_variables("secret")
def webhook_list(request: HttpRequest) -> HttpResponse:
    """The organization's endpoints and the create form; a new secret is shown once."""
    membership = _manager_or_403(request)
    if isinstance(membership, HttpResponse):
        return membership
    org = membership.organization
    form = EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = services.create_webhook_endpoint(
                organization=org, **form.cleaned_data, **_audit(request)
            )
        except DomainError as exc:
            add_service_error(form, exc)
        else:
            context = {"endpoint": endpoint, "secret": secret}
            return no_store(render(request, "webhooks/created.html", context, status=201))
    endpoints = WebhookEndpoint.objects.filter(organization=org)
    return render_form(request, "webhooks/list.html", {"form": form, "endpoints": endpoints})


@subscriber_required
@require_http_methods(["GET"])
def webhook_detail(request: HttpRequest, webhook_id: int) -> HttpResponse:
    """One endpoint's delivery log (newest first)."""
    membership = _manager_or_403(request)
    if isinstance(membership, HttpResponse):
        return membership
    endpoint = get_object_or_404(
        WebhookEndpoint, pk=checked_id(webhook_id), organization=membership.organization
    )
    deliveries = Delivery.objects.filter(endpoint=endpoint).select_related("event")[:100]
    return render(request, "webhooks/detail.html", {"endpoint": endpoint, "deliveries": deliveries})


@subscriber_required
@require_POST
def webhook_action(request: HttpRequest, webhook_id: int, action: str) -> HttpResponse:
    """`test` (a ping), `delete`, or `redeliver` (with `delivery` in the form)."""
    membership = _manager_or_403(request)
    if isinstance(membership, HttpResponse):
        return membership
    endpoint = get_object_or_404(
        WebhookEndpoint, pk=checked_id(webhook_id), organization=membership.organization
    )
    if action not in ("test", "delete", "redeliver"):
        raise Http404("No such action.")
    if action == "delete":
        services.delete_webhook_endpoint(endpoint=endpoint, **_audit(request))
        messages.success(request, "The webhook endpoint is deleted.")
        return redirect("webhooks_portal:list")
    if action == "test":
        services.send_test_ping(endpoint=endpoint)
        messages.success(request, "A ping is on its way.")
    else:
        delivery = get_object_or_404(
            Delivery, pk=_form_id(request.POST.get("delivery")), endpoint=endpoint
        )
        services.redeliver(delivery=delivery)
        messages.success(request, "The delivery is sent again.")
    return redirect("webhooks_portal:detail", webhook_id=endpoint.pk)


@subscriber_required
@require_http_methods(["GET", "POST"])
def alerts(request: HttpRequest) -> HttpResponse:
    """Which alert emails this member gets (owners receive them; anyone may opt out)."""
    membership = _membership(request)
    if request.method == "POST":
        wanted = set(request.POST.getlist("events"))
        AlertOptOut.objects.filter(membership=membership).delete()
        AlertOptOut.objects.bulk_create(
            [
                AlertOptOut(membership=membership, event_type=e)
                for e in ALERT_EVENTS
                if e not in wanted
            ]
        )
        messages.success(request, "Your alert settings are saved.")
        return redirect("webhooks_portal:alerts")
    off = set(
        AlertOptOut.objects.filter(membership=membership).values_list("event_type", flat=True)
    )
    rows = [{"event": e, "on": e not in off} for e in ALERT_EVENTS]
    return render(request, "webhooks/alerts.html", {"rows": rows, "membership": membership})
