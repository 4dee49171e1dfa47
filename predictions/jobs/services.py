"""Batch-job workflows: submit (store + check + charge + enqueue), cancel, retry, refund.

Quota: a job consumes `rows_total` units at submission, in the same database transaction that
creates it, and gives back the rows it never processed (cancel, failure) exactly once, guarded
by the `quota_refunded` flag flipped with a conditional UPDATE.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from keys import events as key_events
from keys import limits
from keys.models import Subscription
from keys.principal import Principal
from mlapi.exceptions import DomainError, ServiceUnavailable
from predictions.inference import get_predictor
from predictions.jobs import parsing
from predictions.models import BatchJob, JobStatus, ModelVersion

logger = logging.getLogger("mlapi.jobs")

# Kept short: a submission waits for the broker at most about a second before answering 503.
ENQUEUED_MARKER = "enqueued"
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.25}


class ModelNotInPlan(DomainError):
    """The subscriber's plan does not cover the requested model."""

    status = 403
    code = "permission_denied"
    title = "Forbidden"


class BrokerUnavailable(ServiceUnavailable):
    """The task could not be published: the broker is down or refuses connections."""


class JobNotCancellable(DomainError):
    """Cancel (or retry) asked of a job in a state that does not allow it."""

    status = 409
    code = "conflict"
    title = "Conflict"


class ResultsNotReady(DomainError):
    """Results asked of a job that has not produced any yet."""

    status = 409
    code = "conflict"
    title = "Conflict"


def jobs_root() -> Path:
    return Path(settings.DATA_DIR) / "jobs"


def job_dir(job_id: uuid.UUID | str) -> Path:
    """Where a job's input, result parts, results file and lock live."""
    return jobs_root() / str(job_id)


def enqueue_batch_job(job_id: uuid.UUID | str) -> None:
    """Publish the task for a committed job; raise BrokerUnavailable (503) when it cannot.

    A connection of its own (not the pooled producer) so that a broker that went away is
    noticed at once and a broker that came back is used at once.
    """
    from mlapi.celery import app
    from predictions.tasks import run_batch_job

    marker = job_dir(job_id) / ENQUEUED_MARKER
    with contextlib.suppress(FileNotFoundError):  # files expired: the run will do nothing
        marker.touch()  # when it was last published (housekeeping's stale-queue rule)
    try:
        with app.connection_for_write() as connection:
            run_batch_job.apply_async(
                args=[str(job_id)],
                queue=settings.MLAPI_JOB_QUEUE or None,
                connection=connection,
                retry=True,
                retry_policy=PUBLISH_RETRY_POLICY,
            )
    except Exception as exc:  # kombu, amqp, redis and sqlalchemy errors all differ
        logger.warning("broker unavailable: %s", exc.__class__.__name__)
        raise BrokerUnavailable(
            "The job queue is unavailable; try again shortly.", headers={"Retry-After": "5"}
        ) from exc


def _store_input(
    *, directory: Path, features: list[str], upload: UploadedFile | None, instances: list | None
) -> parsing.StoredInput:
    if upload is not None:
        declared = parsing.detect_format(upload.name or "", upload.content_type)
        path = parsing.save_upload(upload=upload, directory=directory)
        return parsing.inspect_input(path=path, declared_format=declared, features=features)
    if not isinstance(instances, list) or not instances:
        raise parsing.InvalidJobInput("Give a non-empty list of instances.", field="instances")
    return parsing.write_instances(instances=instances, features=features, directory=directory)


def submit_batch_job(
    *,
    principal: Principal,
    model_name: str,
    version: str | None = None,
    upload: UploadedFile | None = None,
    instances: list | None = None,
) -> BatchJob:
    """Check the input as a whole, charge its rows to the quota, create the job and enqueue it.

    Raises ModelNotFound (404), ModelNotInPlan (403), InvalidJobInput (400), PayloadTooLarge
    (413), UnsupportedFileType (415), QuotaExceeded (429) or ServiceUnavailable (503); on any
    of them nothing is left behind: no job row, no file, no quota used.
    """
    if not principal.plan.covers(model_name):
        raise ModelNotInPlan(f"Your plan does not include the model {model_name!r}.")
    predictor = get_predictor(model_name, version)
    model_version = ModelVersion.objects.get(
        model__name=predictor.model_name, version=predictor.version
    )
    features = [feature["name"] for feature in predictor.schema]
    job_id = uuid.uuid4()
    directory = job_dir(job_id)
    try:
        stored = _store_input(
            directory=directory, features=features, upload=upload, instances=instances
        )
        if stored.rows > principal.plan.max_job_rows:
            raise parsing.InvalidJobInput(
                f"The input has {stored.rows} rows; your plan allows {principal.plan.max_job_rows}"
                " per job.",
                field="file" if upload is not None else "instances",
            )
        return _create_and_enqueue(
            job_id=job_id,
            principal=principal,
            model_version=model_version,
            stored=stored,
            filename=upload.name if upload is not None else "",
        )
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def _create_and_enqueue(
    *,
    job_id: uuid.UUID,
    principal: Principal,
    model_version: ModelVersion,
    stored: parsing.StoredInput,
    filename: str,
) -> BatchJob:
    try:
        with transaction.atomic():
            period_start = limits.consume_quota(principal=principal, units=stored.rows)
            key_events.note_consumed(principal=principal)
            job = BatchJob.objects.create(
                id=job_id,
                subscription_id=principal.subscription_id,
                api_key_id=principal.key_id,
                model_version=model_version,
                input_path=str(stored.path.relative_to(settings.DATA_DIR)),
                input_format=stored.input_format,
                original_filename=filename[:255],
                rows_total=stored.rows,
                quota_period_start=period_start,
            )
            transaction.on_commit(lambda: enqueue_batch_job(job_id), robust=False)
    except BrokerUnavailable:
        # The row committed before the publish failed: take it back with its quota.
        BatchJob.objects.filter(pk=job_id).delete()
        limits.refund(principal=principal, units=stored.rows, period_start=period_start)
        raise
    return job


def results_file(*, job: BatchJob) -> Path:
    """The job's results CSV on disk, or ResultsNotReady (409)."""
    if not job.results_path:
        raise ResultsNotReady(f"The job is {job.status}; its results are not ready.")
    path = Path(settings.DATA_DIR) / job.results_path
    if not path.is_file():
        raise ResultsNotReady("The job's results have expired or are missing.")
    return path


def refund_unprocessed_rows(*, job: BatchJob) -> int:
    """Give back the rows the job never processed, once; return how many were refunded."""
    units = job.rows_total - job.rows_done
    with transaction.atomic():
        flipped = BatchJob.objects.filter(pk=job.pk, quota_refunded=False).update(
            quota_refunded=True
        )
        if not flipped or units <= 0 or job.quota_period_start is None:
            return 0
        subscription = Subscription.objects.select_related("plan").get(pk=job.subscription_id)
        principal = Principal.for_subscription(subscription, key_id=job.api_key_id)
        limits.refund(principal=principal, units=units, period_start=job.quota_period_start)
    return units


def cancel_batch_job(*, job: BatchJob) -> BatchJob:
    """Ask a job to stop: a queued job is cancelled now, a running one at its next chunk."""
    if job.status == JobStatus.CANCELLED:
        return job
    with transaction.atomic():
        BatchJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.CANCELLED, cancel_requested=True, finished_at=timezone.now()
        )
        BatchJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(cancel_requested=True)
        job.refresh_from_db()
        if job.status == JobStatus.CANCELLED:
            refund_unprocessed_rows(job=job)
            job.refresh_from_db()
    if job.status not in (JobStatus.CANCELLED, JobStatus.RUNNING):
        raise JobNotCancellable(f"The job has already {job.status}.")
    return job


def retry_batch_job(*, job: BatchJob) -> BatchJob:
    """Operator action: run a failed or cancelled job again from its last committed chunk.

    Rows already refunded are not charged again (an operator's retry is on the house).
    """
    updated = BatchJob.objects.filter(
        pk=job.pk, status__in=[JobStatus.FAILED, JobStatus.CANCELLED]
    ).update(
        status=JobStatus.QUEUED, cancel_requested=False, error="", finished_at=None, results_path=""
    )
    if not updated:
        raise JobNotCancellable("Only failed or cancelled jobs can be retried.")
    transaction.on_commit(lambda: enqueue_batch_job(job.pk))
    job.refresh_from_db()
    return job
