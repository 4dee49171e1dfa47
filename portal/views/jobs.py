"""Batch jobs: upload with a model picker, a live list, cancel, and results download."""

from __future__ import annotations

import time
from pathlib import Path

from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from keys import roles
from keys.principal import Principal
from mlapi import protocols
from mlapi.exceptions import DomainError, ServiceUnavailable
from portal.forms import JobUploadForm
from portal.views.common import add_service_error, render_form, require_role, subscriber_required
from predictions import dataplane
from predictions.jobs.serializers import JobSerializer
from predictions.jobs.services import ResultsNotReady, cancel_batch_job, open_results
from predictions.models import BatchJob, MLModel
from usage.calls import finish_call

JOBS_SHOWN = 50


def _own_job(request: HttpRequest, job_id) -> BatchJob:
    """The caller's job or 404: another subscriber's job does not exist for them."""
    jobs = BatchJob.objects.for_subscription(request.subscription.pk)
    return get_object_or_404(jobs.select_related("model_version__model"), pk=job_id)


def _model_names(subscription) -> list[str]:
    """Models the subscriber's plan covers and that have a default version to run."""
    names = MLModel.objects.filter(versions__is_default=True).values_list("name", flat=True)
    return [name for name in names if subscription.plan.covers(name)]


@subscriber_required
@require_http_methods(["GET", "POST"])
def jobs(request: HttpRequest) -> HttpResponse:
    """Upload a file to score; below, the latest jobs with progress that updates live."""
    subscription = request.subscription
    form = JobUploadForm(
        request.POST or None, request.FILES or None, model_names=_model_names(subscription)
    )
    if request.method == "POST":
        require_role(request, roles.JOBS)  # viewers read jobs, they do not run them
    if request.method == "POST" and not subscription.is_active:
        return render(request, "portal/jobs.html", _context(form, subscription), status=403)
    if request.method == "POST" and form.is_valid():
        started = time.perf_counter()
        meter = dataplane.start_call(
            protocol=protocols.JOBS,
            method=request.method,
            path=request.path,
            request_bytes=int(request.META.get("CONTENT_LENGTH") or 0),
        )
        meter.principal = Principal.for_subscription(subscription)
        try:
            job = dataplane.submit_job(
                meter, model_name=form.cleaned_data["model"], upload=form.cleaned_data["file"]
            )
        except DomainError as exc:
            add_service_error(form, exc)
        else:
            # Recorded like the API's submission, so usage agrees with the quota it took.
            meter.status, meter.latency_ms = 202, (time.perf_counter() - started) * 1000
            finish_call(meter)
            messages.success(
                request, f"Job for {job.rows_total:,} rows of {job.original_filename} is queued."
            )
            return redirect("portal:jobs")
    return render_form(request, "portal/jobs.html", _context(form, subscription))


def _context(form: JobUploadForm, subscription) -> dict:
    """The page: the form, the latest jobs (their rows poll for progress) and the status."""
    jobs = (
        BatchJob.objects.for_subscription(subscription.pk)
        .select_related("model_version__model")
        .order_by("-created_at")[:JOBS_SHOWN]
    )
    return {"form": form, "jobs": jobs, "subscription": subscription}


@subscriber_required
@require_POST
def job_cancel(request: HttpRequest, job_id) -> HttpResponse:
    """Cancel a queued job now or a running one at its next chunk; unused rows are refunded."""
    job = _own_job(request, job_id)
    require_role(request, roles.JOBS)
    try:
        cancel_batch_job(job=job)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "The job is cancelled; rows it did not score are refunded.")
    return redirect("portal:jobs")


@subscriber_required
def job_status(request: HttpRequest, job_id) -> HttpResponse:
    """The job as `GET /api/v1/jobs/{id}` shows it, for the page's live progress bars.

    A portal route rather than the API's: the API is the data plane (API key or JWT, one rate
    token per call, recorded as usage), and a browser tab polling every second must neither
    spend the subscriber's rate limit nor show up in their usage.
    """
    job = _own_job(request, job_id)
    response = JsonResponse(JobSerializer(job, context={"request": request}).data)
    response["Cache-Control"] = "no-store"
    return response


@subscriber_required
def job_results(request: HttpRequest, job_id) -> HttpResponse:
    """The results CSV (input columns, prediction, error) once the job has written it."""
    job = _own_job(request, job_id)
    try:
        results = open_results(job=job)
    except ResultsNotReady as exc:
        raise Http404(exc.detail) from exc
    except ServiceUnavailable as exc:  # the object store is down: say so, try again later
        return HttpResponse(exc.detail, status=503, headers={"Retry-After": "5"})
    stem = Path(job.original_filename or "job").stem or "job"
    return FileResponse(
        results,
        as_attachment=True,
        filename=f"{stem}-predictions.csv",
        content_type="text/csv",
    )
