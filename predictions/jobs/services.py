"""Batch-job workflows: submit (store + check + charge + publish), cancel, retry, results.

Quota: a job consumes `rows_total` units at submission, in the same database transaction that
creates it (and its chunks); refunds are refunds.py's. The input is cut into chunk objects in
object storage before anything is charged, so a store that is down answers 503 with nothing
charged, and a refused file leaves nothing behind.

Layering (nothing imports upwards): tasks → housekeeping → services → runner → leases,
publishing, parsing, scoring, refunds, storage. The task is published by name
(publishing.py), so nothing imports the tasks module.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import BinaryIO

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from keys import events as key_events
from keys import limits
from keys.principal import Principal
from mlapi.exceptions import Conflict
from predictions import storage
from predictions.errors import NotPermitted
from predictions.inference import get_predictor
from predictions.jobs import leases, parsing
from predictions.jobs.publishing import BrokerUnavailable, enqueue_batch_job
from predictions.jobs.refunds import refund_unprocessed_rows
from predictions.jobs.runner import job_prefix
from predictions.models import BatchJob, JobStatus, ModelVersion

logger = logging.getLogger("mlapi.jobs")


class JobNotCancellable(Conflict):
    """Cancel (or retry) asked of a job in a state that does not allow it."""


class ResultsNotReady(Conflict):
    """Results asked of a job that has not produced any yet."""


def _store_input(
    *, prefix: str, features: list[str], upload: UploadedFile | None, instances: list | None
) -> parsing.StoredInput:
    chunk_rows = settings.MLAPI_JOB_CHUNK_ROWS
    if upload is not None:
        return parsing.store_upload(
            upload=upload, features=features, prefix=prefix, chunk_rows=chunk_rows
        )
    if not isinstance(instances, list) or not instances:
        raise parsing.InvalidJobInput("Give a non-empty list of instances.", field="instances")
    return parsing.store_instances(
        instances=instances, features=features, prefix=prefix, chunk_rows=chunk_rows
    )


def submit_batch_job(
    *,
    principal: Principal,
    model_name: str,
    version: str | None = None,
    upload: UploadedFile | None = None,
    instances: list | None = None,
) -> BatchJob:
    """Check the input as a whole, charge its rows to the quota, create the job and enqueue it.

    Raises ModelNotFound (404), NotPermitted (403), InvalidJobInput (400), PayloadTooLarge
    (413), UnsupportedFileType (415), QuotaExceeded (429) or ServiceUnavailable (503: broker
    or object storage); on any of them nothing is left behind: no job, no object, no quota.
    """
    if not principal.plan.covers(model_name):
        raise NotPermitted(f"Your plan does not include the model {model_name!r}.")
    predictor = get_predictor(model_name, version)
    model_version = ModelVersion.objects.get(
        model__name=predictor.model_name, version=predictor.version
    )
    features = [feature["name"] for feature in predictor.schema]
    job_id = uuid.uuid4()
    prefix = job_prefix(job_id)
    try:
        stored = _store_input(prefix=prefix, features=features, upload=upload, instances=instances)
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
        with contextlib.suppress(storage.StorageUnavailable):
            storage.delete_prefix(prefix)
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
                input_path=f"{job_prefix(job_id)}/input/",
                input_format=stored.input_format,
                original_filename=filename[:255],
                rows_total=stored.rows,
                columns=stored.columns,
                chunks_total=len(stored.chunks),
                quota_period_start=period_start,
            )
            leases.create_chunks(job=job, chunks=stored.chunks)
            transaction.on_commit(lambda: enqueue_batch_job(job_id), robust=False)
    except BrokerUnavailable:
        # The row committed before the publish failed: take it back with its quota.
        BatchJob.objects.filter(pk=job_id).delete()
        limits.refund(principal=principal, units=stored.rows, period_start=period_start)
        raise
    return job


def open_results(*, job: BatchJob) -> BinaryIO:
    """The job's results CSV as a stream, opened now: ResultsNotReady (409), or 503."""
    if not job.results_path:
        raise ResultsNotReady(f"The job is {job.status}; its results are not ready.")
    try:
        return storage.open_read(job.results_path)
    except storage.ObjectMissing as exc:
        raise ResultsNotReady("The job's results have expired or are missing.") from exc


results_file = open_results  # the name callers used when results were a local Path


def cancel_batch_job(*, job: BatchJob) -> BatchJob:
    """Ask a job to stop: a queued job is cancelled now, a running one as soon as its workers
    see it (before their next chunk; a chunk in flight is not committed), refunding the rest."""
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
