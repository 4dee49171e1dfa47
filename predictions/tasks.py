"""Celery tasks of the predictions app (autodiscovered): thin wrappers that take ids.

The work lives in `predictions.jobs`; see runner.py for crash safety and housekeeping.py for
why a worker starting on the embedded broker re-enqueues orphaned jobs.
"""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready

from predictions.jobs import housekeeping, runner


@shared_task(name="predictions.run_batch_job", acks_late=True, reject_on_worker_lost=True)
def run_batch_job(job_id: str) -> None:
    """Run or resume one batch job."""
    runner.run_batch_job(job_id=job_id)


@shared_task(name="predictions.expire_batch_jobs")
def expire_batch_jobs() -> int:
    """Delete finished jobs past MLAPI_JOB_RETENTION_DAYS, with their files."""
    return housekeeping.expire_batch_jobs()


@shared_task(name="predictions.recover_orphaned_jobs")
def recover_orphaned_jobs() -> int:
    """Re-enqueue running jobs whose worker died (nobody holds their lock)."""
    return len(housekeeping.recover_orphaned_jobs())


@worker_ready.connect
def recover_on_worker_start(sender=None, **kwargs) -> None:
    """A starting worker picks up the running jobs a killed worker left behind."""
    housekeeping.recover_orphaned_jobs(include_stale_queued=False)
