"""`job.succeeded` / `job.failed`: the job as `GET /api/v1/jobs/{id}` shows it (contract §12)."""

from __future__ import annotations

from django.conf import settings

from events.services import JOB_FAILED, JOB_SUCCEEDED, emit_event
from keys.models import Subscription
from predictions.jobs.serializers import JobSerializer
from predictions.models import BatchJob, JobStatus


def emit_job_finished(*, job: BatchJob) -> None:
    """Call inside the transaction that records the job's final state."""
    if job.status not in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        return
    data = JobSerializer(job).data
    base = settings.MLAPI_PUBLIC_URL
    if base and data.get("results_url", "").startswith("/"):
        data["results_url"] = base.rstrip("/") + data["results_url"]
    organization_id = (
        Subscription.objects.filter(pk=job.subscription_id)
        .values_list("organization_id", flat=True)
        .first()
    )
    if organization_id is not None:
        kind = JOB_SUCCEEDED if job.status == JobStatus.SUCCEEDED else JOB_FAILED
        emit_event(type=kind, organization_id=organization_id, data=dict(data))
