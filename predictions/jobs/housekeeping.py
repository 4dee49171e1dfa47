"""Periodic job housekeeping: expire old job files, and re-enqueue jobs whose worker died.

Why recovery exists besides `acks_late` + `reject_on_worker_lost`: with Redis or RabbitMQ the
broker redelivers the message of a worker that died, but kombu's embedded transports
(SQLAlchemy, filesystem) keep unacknowledged messages only in the worker's memory, so a
SIGKILL loses them. A job that is `running` while nobody holds its lock was orphaned; it is
enqueued again and resumes from its last committed chunk (see runner.py).
"""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from predictions.jobs.runner import is_locked
from predictions.jobs.services import enqueue_batch_job, job_dir, jobs_root
from predictions.models import BatchJob, JobStatus

logger = logging.getLogger("mlapi.jobs")

EMBEDDED_TRANSPORTS = ("sqla+", "sqlalchemy+", "filesystem:")


def broker_is_embedded() -> bool:
    """Whether unacknowledged messages die with the worker (embedded kombu transports)."""
    return settings.CELERY_BROKER_URL.startswith(EMBEDDED_TRANSPORTS)


def recover_orphaned_jobs(*, include_queued: bool = False) -> list[str]:
    """Re-enqueue running jobs that no live process holds; queued ones too when asked.

    `include_queued` is for a worker starting on an embedded broker, where a message fetched
    by a worker that was then killed is gone. A duplicate message is harmless: a run takes the
    job's lock or leaves, and does nothing for a finished job.
    """
    statuses = [JobStatus.RUNNING] + ([JobStatus.QUEUED] if include_queued else [])
    recovered = []
    for job_id in BatchJob.objects.filter(status__in=statuses).values_list("pk", flat=True):
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
