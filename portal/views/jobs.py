"""Batch jobs: upload with a model picker, a live list, cancel, and results download."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_http_methods, require_POST

from keys.principal import Principal
from mlapi.exceptions import DomainError
from portal.forms import JobUploadForm
from portal.views.common import render_form, subscriber_required
from predictions.jobs.services import cancel_batch_job, submit_batch_job
from predictions.models import BatchJob, MLModel

JOBS_SHOWN = 50


def _own_job(request: HttpRequest, job_id) -> BatchJob:
    """The caller's job or 404: another subscriber's job does not exist for them."""
    return get_object_or_404(BatchJob.objects.for_subscription(request.subscription.pk), pk=job_id)


def _model_names(subscription) -> list[str]:
    """Models the subscriber's plan covers and that have a default version to run."""
    names = MLModel.objects.filter(versions__is_default=True).values_list("name", flat=True)
    return [name for name in names if subscription.plan.covers(name)]


def _add_domain_error(form: JobUploadForm, exc: DomainError) -> None:
    """Put a service's error on the field it names (file, model), else on the whole form."""
    fields = [e.get("field") for e in (exc.errors or []) if e.get("field") in form.fields]
    if fields:
        form.add_error(fields[0], exc.detail)
    else:
        form.add_error(None, exc.detail)


@subscriber_required
@require_http_methods(["GET", "POST"])
def jobs(request: HttpRequest) -> HttpResponse:
    """Upload a file to score; below, the latest jobs with progress that updates live."""
    subscription = request.subscription
    form = JobUploadForm(
        request.POST or None, request.FILES or None, model_names=_model_names(subscription)
    )
    if request.method == "POST" and form.is_valid():
        try:
            job = submit_batch_job(
                principal=Principal.for_subscription(subscription),
                model_name=form.cleaned_data["model"],
                upload=form.cleaned_data["file"],
            )
        except DomainError as exc:
            _add_domain_error(form, exc)
        else:
            messages.success(
                request, f"Job for {job.rows_total:,} rows of {job.original_filename} is queued."
            )
            return redirect("portal:jobs")
    listed = (
        BatchJob.objects.for_subscription(subscription.pk)
        .select_related("model_version__model")
        .order_by("-created_at")[:JOBS_SHOWN]
    )
    return render_form(request, "portal/jobs.html", {"form": form, "jobs": listed})


@subscriber_required
@require_POST
def job_cancel(request: HttpRequest, job_id) -> HttpResponse:
    """Cancel a queued job now or a running one at its next chunk; unused rows are refunded."""
    job = _own_job(request, job_id)
    try:
        cancel_batch_job(job=job)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "The job is cancelled; rows it did not score are refunded.")
    return redirect("portal:jobs")


@subscriber_required
def job_results(request: HttpRequest, job_id) -> HttpResponse:
    """The results CSV (input columns, prediction, error) once the job has written it."""
    job = _own_job(request, job_id)
    if not job.results_path:
        raise Http404("No results yet.")
    data_dir = Path(settings.DATA_DIR).resolve()
    path = (data_dir / job.results_path).resolve()
    if data_dir not in path.parents or not path.is_file():
        raise Http404("No results file.")
    stem = Path(job.original_filename or "job").stem or "job"
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=f"{stem}-predictions.csv",
        content_type="text/csv",
    )
