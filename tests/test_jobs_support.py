"""Helpers and fixtures for the batch-job tests: uploads, polling, and real Celery workers.

Workers are real: `celery_worker` runs Celery's own test worker in a thread, consuming from
the configured broker (the embedded SQLite one by default, RabbitMQ/Redis when
CELERY_BROKER_URL says so); `worker_process` starts `celery worker` as a subprocess on the
same test database, for the tests that kill it.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.servers import database_url

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_ROWS = [  # (values, species) from the Iris data set
    ([5.1, 3.5, 1.4, 0.2], "setosa"),
    ([7.0, 3.2, 4.7, 1.4], "versicolor"),
    ([6.3, 3.3, 6.0, 2.5], "virginica"),
]
JOBS_URL = "/api/v1/jobs"
BASE_DIR = Path(__file__).resolve().parent.parent


def iris_csv(rows: int, *, header: list[str] | None = None, extra: str = "") -> bytes:
    """A CSV of `rows` Iris rows cycling through IRIS_ROWS, plus optional raw extra lines."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header or IRIS)
    for i in range(rows):
        writer.writerow(IRIS_ROWS[i % 3][0])
    return out.getvalue().encode() + extra.encode()


def upload(content: bytes, name: str = "rows.csv", content_type: str = "text/csv"):
    return SimpleUploadedFile(name, content, content_type=content_type)


def submit_file(client, key: str, content: bytes, *, model: str = "iris", name: str = "rows.csv"):
    return client.post(
        JOBS_URL, {"model": model, "file": upload(content, name)}, HTTP_X_API_KEY=key
    )


def submit_instances(client, key: str, instances: list, *, model: str = "iris"):
    return client.post(
        JOBS_URL,
        {"model": model, "instances": instances},
        content_type="application/json",
        HTTP_X_API_KEY=key,
    )


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.02):
    """Poll until `predicate()` is truthy; return its value (fail the test on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s")


def wait_finished(job_id, timeout: float = 60.0):
    from predictions.models import BatchJob

    def finished():
        job = BatchJob.objects.get(pk=job_id)
        return job if job.is_finished else None

    return wait_for(finished, timeout)


def results_rows(client, key: str, job_id) -> list[dict]:
    response = client.get(f"{JOBS_URL}/{job_id}/results", HTTP_X_API_KEY=key)
    assert response.status_code == 200, response.content
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def quota_used(subscription) -> int:
    from keys.limits import quota_status

    subscription.refresh_from_db()
    return quota_status(subscription=subscription).used


# This session's own job queue: a shared RabbitMQ/Redis may have other suites' workers on
# the default queue, and they would take (and drop) this session's job messages.
JOB_QUEUE = f"mlapi-jobs-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def usage_written_in_the_request(settings):
    """Assigned as autouse in each job test module: usage recorded in the request's own
    transaction (the buffered writer's thread would wait on the test transaction's SQLite
    write lock), and job tasks published to this session's queue."""
    settings.MLAPI_USAGE_MODE = "sync"
    settings.MLAPI_JOB_QUEUE = JOB_QUEUE


@pytest.fixture(scope="module")
def celery_worker_module(django_db_setup, django_db_blocker):
    """One real Celery worker per test module (Celery's test worker, in a thread)."""
    from celery.contrib.testing.worker import start_worker

    from mlapi.celery import app

    with (
        django_db_blocker.unblock(),
        start_worker(
            app,
            pool="solo",
            perform_ping_check=False,
            loglevel="WARNING",
            shutdown_timeout=30,
            queues=[JOB_QUEUE],
        ) as worker,
    ):
        yield worker


@pytest.fixture
def celery_worker(celery_worker_module, live_demo_models, settings):
    """The module's worker, with the demo models committed for it to load, and jobs published
    to the queue it consumes (whichever module the test is in)."""
    settings.MLAPI_JOB_QUEUE = JOB_QUEUE
    return celery_worker_module


class WorkerProcess:
    """`celery -A mlapi worker` in a subprocess on the test database and broker."""

    def __init__(self, chunk_rows: int, log: Path) -> None:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=database_url(),
            MLAPI_DATA_DIR=str(settings.DATA_DIR),
            MLAPI_TESTING="1",
            CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
            MLAPI_JOB_CHUNK_ROWS=str(chunk_rows),
            MLAPI_USAGE_RECORDING="0",
            MLAPI_JOB_QUEUE=JOB_QUEUE,
        )
        command = [
            sys.executable, "-m", "celery", "-A", "mlapi", "worker", "--pool", "solo",
            "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel", "INFO",
            "--queues", JOB_QUEUE,
        ]  # fmt: skip
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no acknowledgement, nothing flushed."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """At the end of a test nothing is left to finish: no graceful shutdown to wait for."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture
def worker_process(live_demo_models, tmp_path):
    """Start worker subprocesses with `start(chunk_rows)`; all are stopped at the end."""
    started: list[WorkerProcess] = []

    def start(chunk_rows: int = 5000) -> WorkerProcess:
        worker = WorkerProcess(chunk_rows, tmp_path / "worker.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
