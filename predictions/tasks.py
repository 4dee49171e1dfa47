"""Celery tasks of the predictions app (autodiscovered): thin wrappers that take ids.

The work lives in `predictions.jobs` (runner.py: chunk leases shared by every worker;
housekeeping.py: expiry and recovery, scheduled by the one `beat` of a deployment). Nothing
imports this module back: services publish the job task by its name.
"""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_init, worker_ready
from django.core.exceptions import ImproperlyConfigured

from predictions import storage
from predictions.jobs import housekeeping, runner


@shared_task(name="predictions.run_batch_job", acks_late=True, reject_on_worker_lost=True)
def run_batch_job(job_id: str) -> None:
    """Work on one batch job, beside any other worker on it, until nothing is left to claim."""
    runner.run_batch_job(job_id=job_id)


@shared_task(name="predictions.expire_batch_jobs")
def expire_batch_jobs() -> int:
    """Delete finished jobs past MLAPI_JOB_RETENTION_DAYS, with their objects."""
    return housekeeping.expire_batch_jobs()


@shared_task(name="predictions.recover_orphaned_jobs")
def recover_orphaned_jobs() -> int:
    """Publish again the running jobs nobody works on (their worker died with its message)."""
    return len(housekeeping.recover_orphaned_jobs())


@worker_init.connect
def check_storage_on_start(sender=None, **kwargs) -> None:
    """A worker refuses to start on a bucket that does not exist (a clear error, not N failures).

    SystemExit, because Celery logs and swallows a receiver's ordinary exceptions.
    """
    try:
        storage.check_object_storage()
    except ImproperlyConfigured as exc:
        raise SystemExit(f"mlapi worker not started: {exc}") from exc


@worker_ready.connect
def recover_on_worker_start(sender=None, **kwargs) -> None:
    """A starting worker picks up the running jobs a killed worker left behind."""
    housekeeping.recover_orphaned_jobs(include_stale_queued=False)
