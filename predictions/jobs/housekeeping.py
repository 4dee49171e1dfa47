"""Periodic job housekeeping: expire old job files, and re-enqueue jobs whose worker died.

Why recovery exists besides `acks_late` + `reject_on_worker_lost`: with Redis or RabbitMQ the
broker redelivers the message of a worker that died, but kombu's embedded transports
(SQLAlchemy, filesystem) keep unacknowledged messages only in the worker's memory, so a
SIGKILL loses them. A job that is `running` while nobody holds its lock was orphaned; it is
enqueued again (when a worker starts, and every minute from beat) and resumes from its last
committed chunk (see runner.py). With prefetch 1 and acks_late a worker holds no message
besides the one it runs, so queued jobs are not lost that way; they are re-published only
when their message is an hour old (see REQUEUE_QUEUED_AFTER_S).
"""

from __future__ import annotations

import logging
import shutil
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from predictions.jobs.runner import is_locked
from predictions.jobs.services import ENQUEUED_MARKER, enqueue_batch_job, job_dir, jobs_root
from predictions.models import BatchJob, JobStatus

logger = logging.getLogger("mlapi.jobs")

# A queued job whose message was published this long ago and never picked up is assumed lost
# (a web process that died between commit and publish, a purged queue) and published again.
# The same rule as Redis's visibility timeout; a duplicate message is a no-op.
REQUEUE_QUEUED_AFTER_S = 3600


def _enqueued_long_ago(job_id, now: float) -> bool:
    marker = job_dir(job_id) / ENQUEUED_MARKER
    try:
        return now - marker.stat().st_mtime > REQUEUE_QUEUED_AFTER_S
    except FileNotFoundError:
        return True


def recover_orphaned_jobs(*, include_stale_queued: bool = True) -> list[str]:
    """Re-enqueue running jobs that no live process holds, and long-stale queued jobs.

    A running job whose lock is free lost its worker (with an embedded broker its message
    died with it). A run takes the job's lock or leaves, and does nothing for a finished job,
    so a duplicate message never runs a job twice.
    """
    now = time.time()
    recovered = []
    candidates = BatchJob.objects.unfinished().values_list("pk", "status")
    for job_id, status in candidates:
        if status == JobStatus.QUEUED and not (
            include_stale_queued and _enqueued_long_ago(job_id, now)
        ):
            continue
        if is_locked(job_dir(job_id)):
            continue
        try:
            enqueue_batch_job(job_id)
        except Exception:  # noqa: BLE001 - try again on the next round
            logger.warning("could not re-enqueue job %s", job_id)
            continue
        recovered.append(str(job_id))
    if recovered:
        logger.info("re-enqueued %d orphaned job(s): %s", len(recovered), ", ".join(recovered))
    return recovered


def expire_batch_jobs(*, days: int | None = None) -> int:
    """Delete finished jobs older than the retention period, with their files; return count."""
    days = settings.MLAPI_JOB_RETENTION_DAYS if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    expired = list(BatchJob.objects.expired(cutoff).values_list("pk", flat=True))
    for job_id in expired:
        shutil.rmtree(job_dir(job_id), ignore_errors=True)
    BatchJob.objects.filter(pk__in=expired).delete()
    known = {str(pk) for pk in BatchJob.objects.values_list("pk", flat=True)}
    root = jobs_root()
    if root.exists():
        for directory in root.iterdir():
            # A directory without a job: a submission that died before cleaning up.
            stale = directory.stat().st_mtime < cutoff.timestamp()
            if directory.name not in known and stale:
                shutil.rmtree(directory, ignore_errors=True)
    return len(expired)
