"""What an operator reads from a worker: real work, not the 15-second housekeeping."""

from __future__ import annotations

import re

import pytest

from tests.support import jobs
from tests.support.jobs import JOB_QUEUE, wait_for

worker_process = jobs.worker_process  # the fixture
job_storage = jobs.job_storage
job_storage_session = jobs.job_storage_session

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_the_worker_log_shows_real_tasks_and_not_the_heartbeat_or_the_sweep(worker_process):
    from mlapi.celery import app

    worker = worker_process()
    for task in ("mlapi.worker_heartbeat", "webhooks.sweep", "usage.tasks.prune_usage_records"):
        app.send_task(task, queue=JOB_QUEUE)  # one solo worker: run in this order
    pruned = re.compile(r"Task usage\.tasks\.prune_usage_records\[[-0-9a-f]+\] succeeded")
    wait_for(lambda: pruned.search(worker.log_text()), timeout=60)  # real work: logged
    log = worker.log_text()
    assert "Task mlapi.worker_heartbeat[" not in log  # (the start banner lists every task)
    assert "Task webhooks.sweep[" not in log
