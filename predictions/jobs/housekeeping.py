"""Periodic job housekeeping (run by `beat`, once per deployment): expiry and recovery.

Recovery. A job's progress lives in its chunk leases (leases.py), not in any worker, so a dead
worker costs nothing but its lease: a worker still on the job takes the chunk over when the lease
runs out. What can be lost is the *message*: kombu's embedded transports (SQLAlchemy, filesystem)
keep unacknowledged messages only in the worker's memory, so a SIGKILL drops them, and a web
process can die between commit and publish. So a job is published again when
- it is running, nobody holds a live lease on it (no chunk, no finishing step), and its task was
  last published more than a lease period ago (every minute from beat, and when a worker starts);
- it is queued and its message was published an hour ago or more (REQUEUE_QUEUED_AFTER_S).
A duplicate message is harmless: a run that finds nothing to claim does nothing.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from predictions import storage
from predictions.jobs import leases
from predictions.jobs.publishing import enqueue_batch_job
from predictions.jobs.runner import job_prefix
from predictions.models import BatchJob, JobStatus

logger = logging.getLogger("mlapi.jobs")

# A queued job whose message was published this long ago and never picked up is assumed lost
# (a web process that died between commit and publish, a purged queue) and published again.
# The same rule as Redis's visibility timeout; a duplicate message is a no-op.
REQUEUE_QUEUED_AFTER_S = 3600


def _published_before(job: BatchJob, seconds: float) -> bool:
    cutoff = timezone.now() - timedelta(seconds=seconds)
    return job.published_at is None or job.published_at < cutoff


def _orphaned(job: BatchJob, include_stale_queued: bool) -> bool:
    if job.status == JobStatus.QUEUED:
        return include_stale_queued and _published_before(job, REQUEUE_QUEUED_AFTER_S)
    if leases.has_live_lease(job.pk):
        return False
    return _published_before(job, settings.MLAPI_JOB_LEASE_S)


def recover_orphaned_jobs(*, include_stale_queued: bool = True) -> list[str]:
    """Publish again the running jobs nobody works on, and long-stale queued jobs."""
    recovered = []
    for job in BatchJob.objects.unfinished().only("pk", "status", "published_at"):
        if not _orphaned(job, include_stale_queued):
            continue
        try:
            enqueue_batch_job(job.pk)  # one message: the run invites the other workers
        except Exception:  # noqa: BLE001 - try again on the next round
            logger.warning("could not re-enqueue job %s", job.pk)
            continue
        recovered.append(str(job.pk))
    if recovered:
        logger.info("re-enqueued %d orphaned job(s): %s", len(recovered), ", ".join(recovered))
    return recovered


def expire_batch_jobs(*, days: int | None = None) -> int:
    """Delete finished jobs older than the retention period, with their objects; return count."""
    days = settings.MLAPI_JOB_RETENTION_DAYS if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    expired = list(BatchJob.objects.expired(cutoff).values_list("pk", flat=True))
    for job_id in expired:
        storage.delete_prefix(job_prefix(job_id))
    BatchJob.objects.filter(pk__in=expired).delete()
    _delete_abandoned_uploads(cutoff)
    return len(expired)


def _delete_abandoned_uploads(cutoff) -> None:
    """A folder without a job, older than the cutoff: a submission that died mid-way."""
    known = {str(pk) for pk in BatchJob.objects.values_list("pk", flat=True)}
    for name in storage.list_folders("jobs"):
        if name in known:
            continue
        first = f"jobs/{name}/input/000000.csv"
        with contextlib.suppress(Exception):
            objects = storage.objects()
            if not objects.exists(first):
                first = first.replace(".csv", ".jsonl")
            if not objects.exists(first) or objects.get_modified_time(first) < cutoff:
                storage.delete_prefix(f"jobs/{name}")
