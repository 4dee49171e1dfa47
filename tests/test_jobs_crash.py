"""Crash safety: workers SIGKILLed mid-job leave the job to the others, every row exactly once.

Worker subprocesses (`celery -A mlapi worker`) on the test database, the configured broker and
the test's object storage, with 2-second chunk leases. A killed worker's chunk lease runs out and
another worker (already on the job, or started later and sent the job again by recovery: the
embedded broker loses the dead worker's message, RabbitMQ/Redis redeliver it) takes it over.
"""

from __future__ import annotations

import pytest

from predictions.jobs.housekeeping import recover_orphaned_jobs
from predictions.jobs.leases import has_live_lease
from predictions.models import BatchJob, JobChunk, JobStatus
from tests.conftest import make_subscriber_key
from tests.support import jobs
from tests.support.jobs import (
    assert_every_row_once_in_order,
    numbered_csv,
    quota_used,
    submit_file,
    wait_finished,
    wait_for,
)

worker_process = jobs.worker_process  # the fixture

usage_written_in_the_request = jobs.usage_written_in_the_request
job_storage = jobs.job_storage
job_storage_session = jobs.job_storage_session
s3_server = jobs.s3_server

# Generous timeouts: on a loaded shared box (load 30 on 2 cores) 200 chunks through S3 are slow.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(600)]

ROWS = 20_000


@pytest.fixture(autouse=True)
def small_chunks(settings):
    """Chunks are cut at submission (in this process): 100 rows, so a job has many."""
    settings.MLAPI_JOB_CHUNK_ROWS = 100


def test_sigkilled_worker_leaves_the_job_to_the_next_with_every_row_exactly_once(
    client, worker_process
):
    subscription, key = make_subscriber_key()
    first = worker_process()
    response = submit_file(client, key, numbered_csv(ROWS))
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    wait_for(lambda: BatchJob.objects.get(pk=job_id).rows_done >= 500, timeout=90)
    assert has_live_lease(job_id)  # a live worker is on it: recovery leaves it alone
    assert job_id not in recover_orphaned_jobs()
    first.kill()
    killed = BatchJob.objects.get(pk=job_id)
    assert killed.status == JobStatus.RUNNING and killed.rows_done < ROWS

    worker_process()
    job = wait_finished(job_id, timeout=400)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (job.rows_done, job.rows_failed) == (ROWS, 0)
    assert_every_row_once_in_order(client, key, job_id, ROWS)
    assert quota_used(subscription) == ROWS


def test_two_workers_share_a_job_and_one_sigkilled_mid_chunk_costs_no_row(client, worker_process):
    subscription, key = make_subscriber_key()
    victim, survivor = worker_process(), worker_process()
    for worker in (victim, survivor):  # on a loaded machine one alone could do the whole job
        worker.wait_ready()
    response = submit_file(client, key, numbered_csv(ROWS))
    job_id = response.json()["id"]

    def both_working():
        owners = set(JobChunk.objects.filter(job_id=job_id).values_list("lease_owner", flat=True))
        return {victim.owner, survivor.owner} <= owners

    wait_for(both_working, timeout=90)  # the chunks are spread over both workers
    held = lambda: JobChunk.objects.filter(  # noqa: E731
        job_id=job_id, done=False, lease_owner=victim.owner
    ).first()
    chunk = wait_for(held, timeout=30)  # the victim is inside a chunk right now
    victim.kill()
    assert BatchJob.objects.get(pk=job_id).rows_done < ROWS

    job = wait_finished(job_id, timeout=400)
    assert job.status == JobStatus.SUCCEEDED, job.error + survivor.log_text()
    assert (job.rows_done, job.rows_failed) == (ROWS, 0)
    assert JobChunk.objects.get(pk=chunk.pk).done  # committed once, by whoever finished it
    assert_every_row_once_in_order(client, key, job_id, ROWS)
    assert quota_used(subscription) == ROWS
