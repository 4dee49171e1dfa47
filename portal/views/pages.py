"""Landing, dashboard, model docs and the plan page."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from keys import roles
from keys.limits import quota_status
from keys.models import ApiKey, Plan
from keys.services import request_plan_change
from mlapi.exceptions import DomainError
from portal.charts import usage_chart, usage_totals
from portal.examples import build_examples
from portal.forms import PlanChangeForm
from portal.views.common import (
    add_service_error,
    audit_context,
    render_form,
    require_role,
    subscriber_required,
)
from predictions.models import ModelVersion, Task
from usage.selectors import daily_usage, recent_errors

DASHBOARD_DAYS = 30


def landing(request: HttpRequest) -> HttpResponse:
    """What the API does and the public plans with their limits."""
    context = {
        "plans": Plan.objects.filter(is_public=True),
        "models": ModelVersion.objects.filter(is_default=True).select_related("model"),
    }
    return render(request, "portal/landing.html", context)


def _quota(subscription) -> object | None:
    """The quota meter's numbers, or None while the limits store is unreachable."""
    try:
        return quota_status(subscription=subscription)
    except DomainError:
        return None


@subscriber_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """Plan and status, the quota meter, 30 days of usage and the latest errors."""
    subscription = request.subscription
    today = timezone.now().date()
    days = daily_usage(
        subscription=subscription, start=today - timedelta(days=DASHBOARD_DAYS - 1), end=today
    )
    context = {
        "subscription": subscription,
        "quota": _quota(subscription),
        "days": days,
        "totals": usage_totals(days),
        "chart": usage_chart(days),
        "errors": recent_errors(subscription=subscription, limit=10),
        "active_keys": ApiKey.objects.usable().filter(subscription=subscription).count(),
    }
    return render(request, "portal/dashboard.html", context)


def docs(request: HttpRequest) -> HttpResponse:
    """Every registered model: its input schema; curl, Python and tritonclient (HTTP, gRPC)."""
    subscription = (
        getattr(request.user, "subscription", None) if request.user.is_authenticated else None
    )
    base_url = request.build_absolute_uri("/").rstrip("/")
    grpc_address = f"{request.get_host().rsplit(':', 1)[0]}:{settings.MLAPI_GRPC_PORT}"
    models = []
    for version in ModelVersion.objects.filter(is_default=True).select_related("model"):
        models.append(
            {
                "model": version.model,
                "version": version,
                "features": (version.input_schema or {}).get("features", []),
                "covered": subscription is None or subscription.plan.covers(version.model.name),
                "examples": build_examples(
                    base_url=base_url,
                    model_name=version.model.name,
                    schema=version.input_schema or {},
                    classifier=version.model.task == Task.CLASSIFICATION,
                    metadata=version.metadata,
                    grpc_address=grpc_address,
                ),
            }
        )
    context = {"models": models, "base_url": base_url, "grpc_port": settings.MLAPI_GRPC_PORT}
    return render(request, "portal/docs.html", context)


@subscriber_required
def plan(request: HttpRequest) -> HttpResponse:
    """The current plan and a request to change it (immediate, or queued for an operator)."""
    subscription = request.subscription
    form = PlanChangeForm(request.POST or None, current_plan=subscription.plan)
    if request.method == "POST" and form.is_valid():
        try:
            require_role(request, roles.PLAN_CHANGE)
            subscription = request_plan_change(
                subscription=subscription, plan=form.cleaned_data["plan"], **audit_context(request)
            )
        except DomainError as exc:
            add_service_error(form, exc)
        else:
            if subscription.requested_plan_id:
                messages.info(
                    request,
                    f"Your request for the {subscription.requested_plan.name} plan is waiting "
                    "for an operator's approval. You stay on your current plan until then.",
                )
            else:
                messages.success(request, f"You are now on the {subscription.plan.name} plan.")
            return redirect("portal:plan")
    context = {
        "subscription": subscription,
        "plans": Plan.objects.filter(is_public=True),
        "form": form,
    }
    return render_form(request, "portal/plan.html", context)
