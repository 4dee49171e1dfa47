"""Usage over a date range: chart, table and CSV download, from `usage.selectors`."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils.http import urlencode

from keys.models import ApiKey
from portal.charts import usage_chart, usage_csv, usage_totals
from portal.forms import UsageFilterForm
from portal.views.common import render_form, subscriber_required
from predictions.models import MLModel
from usage.selectors import daily_usage


def _filter_form(request: HttpRequest) -> UsageFilterForm:
    """The range from the query string, or the last 30 days when none was given."""
    data = request.GET if "start" in request.GET or "end" in request.GET else None
    return UsageFilterForm(
        data,
        initial=UsageFilterForm.default_range(),
        model_names=MLModel.objects.values_list("name", flat=True),
        keys=ApiKey.objects.filter(subscription=request.subscription),
    )


def _days(request: HttpRequest, form: UsageFilterForm) -> list[dict] | None:
    """The daily items for a valid form (or the default range when unbound), else None."""
    if form.is_bound and not form.is_valid():
        return None
    criteria = form.cleaned_data if form.is_bound else form.initial
    return daily_usage(
        subscription=request.subscription,
        start=criteria["start"],
        end=criteria["end"],
        model=criteria.get("model") or None,
        key_id=criteria.get("key") or None,
    )


@subscriber_required
def usage(request: HttpRequest) -> HttpResponse:
    """Pick a range (and optionally a model or key); see it as a chart and a table."""
    form = _filter_form(request)
    days = _days(request, form)
    query = request.GET.urlencode() or urlencode(
        {k: v.isoformat() for k, v in UsageFilterForm.default_range().items()}
    )
    context = {
        "form": form,
        "days": days,
        "totals": usage_totals(days or []),
        "chart": usage_chart(days or []),
        "csv_query": query,
    }
    return render_form(request, "portal/usage.html", context)


@subscriber_required
def usage_export(request: HttpRequest) -> HttpResponse:
    """The same table as CSV (400 with the form's errors as text for a bad range)."""
    form = _filter_form(request)
    days = _days(request, form)
    if days is None:
        lines = [f"{name}: {error}" for name, errors in form.errors.items() for error in errors]
        return HttpResponse("\n".join(lines), status=400, content_type="text/plain")
    start, end = days[0]["date"] if days else "", days[-1]["date"] if days else ""
    response = HttpResponse(usage_csv(days), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="mlapi-usage-{start}-{end}.csv"'
    return response
