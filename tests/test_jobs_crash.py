"""Crash safety: a worker SIGKILLed mid-job leaves the job to the next worker, every row once.

Worker subprocesses (`celery -A mlapi worker`) on the test database and the configured broker:
with RabbitMQ/Redis the unacknowledged message comes back (acks_late); with the embedded broker
the starting worker re-enqueues the orphaned job (see predictions/jobs/housekeeping.py).
"""

from __future__ import annotations

import csv
import io

import pytest

from predictions.jobs.housekeeping import recover_orphaned_jobs
from predictions.jobs.runner import is_locked
from predictions.jobs.services import job_dir
from predictions.models import BatchJob, JobStatus
from tests import test_jobs_support
from tests.conftest import make_subscriber_key
from tests.test_jobs_support import (
    IRIS_ROWS,
    quota_used,
    results_rows,
    submit_file,
    wait_finished,
    wait_for,
)

worker_process = test_jobs_support.worker_process  # the fixture

usage_written_in_the_request = test_jobs_support.usage_written_in_the_request
job_storage = test_jobs_support.job_storage
job_storage_session = test_jobs_support.job_storage_session
s3_server = test_jobs_support.s3_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROWS = 20_000


def numbered_csv(rows: int) -> bytes:
    """Iris rows whose sepal_length carries the row number (5.10000042), so order is checkable."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["sepal_length", "sepal_width", "petal_length", "petal_width"])
    for i in range(rows):
        values = IRIS_ROWS[i % 3][0]
        writer.writerow([f"{values[0]:.1f}{i:07d}", *values[1:]])
    return out.getvalue().encode()


def test_sigkilled_worker_leaves_the_job_to_the_next_with_every_row_exactly_once(
    client, worker_process
):
    subscription, key = make_subscriber_key()
    first = worker_process(chunk_rows=100)
    response = submit_file(client, key, numbered_csv(ROWS))
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    wait_for(lambda: BatchJob.objects.get(pk=job_id).rows_done >= 500, timeout=90)
    assert is_locked(job_dir(job_id))  # a live worker holds it: recovery leaves it alone
    assert job_id not in recover_orphaned_jobs()
    first.kill()
    killed = BatchJob.objects.get(pk=job_id)
    assert killed.status == JobStatus.RUNNING and killed.rows_done < ROWS
    assert not is_locked(job_dir(job_id))  # the kernel released the dead worker's lock

    worker_process(chunk_rows=100)
    job = wait_finished(job_id, timeout=120)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (job.rows_done, job.rows_failed) == (ROWS, 0)
    rows = results_rows(client, key, job_id)
    assert len(rows) == ROWS
    expected = numbered_csv(ROWS).decode().splitlines()[1:]
    got = [",".join(list(r.values())[:4]) for r in rows]
    assert got == expected  # every row once, in input order
    assert all(r["prediction"] and not r["error"] for r in rows)
    assert quota_used(subscription) == ROWS
