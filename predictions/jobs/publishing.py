"""Publishing a job's task to the broker (by name: nothing here imports the tasks module).

Fan-out is self-sizing: a submission publishes one message; every run that leases a chunk while
others are still unclaimed publishes one more (runner.py). Idle workers thus join a job one after
another until every worker is on it or no chunk is left, and a job on W workers costs about W+1
messages however many chunks it has (the last one finds nothing to claim and ends at once).
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.utils import timezone

from mlapi.exceptions import ServiceUnavailable
from predictions.models import BatchJob

logger = logging.getLogger("mlapi.jobs")

RUN_TASK = "predictions.run_batch_job"
# Kept short: a submission waits for the broker at most about a second before answering 503.
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.25}


class BrokerUnavailable(ServiceUnavailable):
    """The task could not be published: the broker is down or refuses connections."""


def enqueue_batch_job(job_id: uuid.UUID | str) -> None:
    """Publish the job's task once; raise BrokerUnavailable (503) when it cannot.

    A connection of its own (not the pooled producer) so that a broker that went away is
    noticed at once and a broker that came back is used at once.
    """
    from mlapi.celery import app

    BatchJob.objects.filter(pk=job_id).update(published_at=timezone.now())
    try:
        with app.connection_for_write() as connection:
            app.send_task(
                RUN_TASK,
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


def invite_another_worker(job_id) -> None:
    """One more copy of the job's task, for an idle worker to join; best effort."""
    try:
        enqueue_batch_job(job_id)
    except BrokerUnavailable:
        logger.info("job %s: no helper published (broker unavailable)", job_id)
