"""Helpers and fixtures for the batch-job tests: uploads, polling, storage, real Celery workers.

Workers are real: `celery_worker` runs Celery's own test worker in a thread, consuming from
the configured broker (the embedded SQLite one by default, RabbitMQ/Redis when
CELERY_BROKER_URL says so); `worker_process` starts `celery worker` as a subprocess on the
same test database, for the tests that kill it.

Storage: local files by default; with MLAPI_TEST_OBJECT_STORAGE=s3 every job test keeps its
objects (inputs, parts, results and the demo models' artifacts) in a real S3-speaking server
(moto's, started once per session on a free port), in-process and in worker subprocesses.
"""

from __future__ import annotations

import contextlib
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
from tests.support.objectstore import CREDENTIALS, MotoServer, storage_env

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_ROWS = [  # (values, species) from the Iris data set
    ([5.1, 3.5, 1.4, 0.2], "setosa"),
    ([7.0, 3.2, 4.7, 1.4], "versicolor"),
    ([6.3, 3.3, 6.0, 2.5], "virginica"),
]
JOBS_URL = "/api/v1/jobs"
BASE_DIR = Path(__file__).resolve().parents[2]


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


TEST_STORAGE = os.environ.get("MLAPI_TEST_OBJECT_STORAGE", "local")
TEST_BUCKET = "mlapi-test"
# The environment worker subprocesses get for the storage the current test uses.
_storage_env: dict[str, str] = {}


def use_object_storage(settings, endpoint: str, url: str) -> dict[str, str]:
    """Point this process (STORAGES) at `url` on `endpoint`; return the subprocess env."""
    from mlapi.objectstore import objects_storage

    env = storage_env(endpoint, url)
    os.environ.update(CREDENTIALS)
    settings.STORAGES = {
        **settings.STORAGES,
        "objects": objects_storage(url, settings.DATA_DIR, env),
    }
    _storage_env.clear()
    _storage_env.update(env)
    return env


def copy_artifacts_to_bucket(server: MotoServer, bucket: str, prefix: str = "") -> None:
    """The session's demo-model artifacts (trained once, on local disk) into the bucket."""
    client = server.client()
    for path in (Path(settings.DATA_DIR) / "models").glob("*"):
        key = f"{prefix}/models/{path.name}".lstrip("/")
        client.upload_file(str(path), bucket, key)


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server, one per session (started on first use)."""
    server = MotoServer()
    os.environ.update(CREDENTIALS)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def job_storage_session(request, demo_model_rows):
    """None for local files; the moto server with the test bucket in S3 mode."""
    if TEST_STORAGE != "s3":
        yield None
        return
    server = request.getfixturevalue("s3_server")
    server.client().create_bucket(Bucket=TEST_BUCKET)
    copy_artifacts_to_bucket(server, TEST_BUCKET, "suite")
    yield server


@pytest.fixture
def job_storage(settings, job_storage_session):
    """The job tests' object storage for this test: "local" or "s3" (see the module doc)."""
    if job_storage_session is None:
        _storage_env.clear()
        yield "local"
        return
    use_object_storage(settings, job_storage_session.endpoint, f"s3://{TEST_BUCKET}/suite")
    yield "s3"
    _storage_env.clear()


def job_folders() -> set[str]:
    """The job folders in object storage (one per stored job)."""
    from predictions import storage

    return set(storage.list_folders("jobs"))


@pytest.fixture(autouse=True)
def usage_written_in_the_request(settings, job_storage):
    """Assigned as autouse in each job test module: usage recorded in the request's own
    transaction (the buffered writer's thread would wait on the test transaction's SQLite
    write lock), job tasks published to this session's queue, objects in the test storage."""
    settings.MLAPI_USAGE_MODE = "sync"
    settings.MLAPI_JOB_QUEUE = JOB_QUEUE


def purge_queues(app, queues: list[str]) -> None:
    """Drop what earlier modules left in this session's queues. Their tests are over and their
    rows are gone, and a solo worker that works through hundreds of stale tasks (countdown
    retries among them) runs the new module's tasks late (services CI: webhooks not delivered
    within 30 s)."""
    for queue in queues:
        with app.connection_for_write() as conn, contextlib.suppress(*conn.channel_errors):
            conn.default_channel.queue_purge(queue)  # a queue never declared: nothing to drop


@contextlib.contextmanager
def running_worker(django_db_blocker, queues: list[str]):
    """A real Celery worker (Celery's test worker, in a thread) consuming `queues`."""
    from celery.contrib.testing.worker import start_worker

    from mlapi.celery import app

    purge_queues(app, queues)
    with (
        django_db_blocker.unblock(),
        start_worker(
            app,
            pool="solo",
            perform_ping_check=False,
            loglevel="WARNING",
            shutdown_timeout=30,
            queues=queues,
        ) as worker,
    ):
        yield worker


@pytest.fixture(scope="module")
def celery_worker_module(django_db_setup, django_db_blocker):
    """One real Celery worker per test module, on the job queue."""
    with running_worker(django_db_blocker, [JOB_QUEUE]) as worker:
        yield worker


@pytest.fixture
def celery_worker(celery_worker_module, live_demo_models, settings):
    """The module's worker, with the demo models committed for it to load, and jobs published
    to the queue it consumes (whichever module the test is in)."""
    settings.MLAPI_JOB_QUEUE = JOB_QUEUE
    return celery_worker_module


class WorkerProcess:
    """`celery -A mlapi worker` in a subprocess on the test database and broker."""

    def __init__(self, log: Path, lease_s: float = 2.0, name: str = "w") -> None:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=database_url(),
            MLAPI_DATA_DIR=str(settings.DATA_DIR),
            MLAPI_TESTING="1",
            CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
            MLAPI_JOB_LEASE_S=str(lease_s),
            MLAPI_USAGE_RECORDING="0",
            MLAPI_JOB_QUEUE=JOB_QUEUE,
            **_storage_env,
        )
        command = [
            sys.executable, "-m", "celery", "-A", "mlapi", "worker", "--pool", "solo",
            "--hostname", f"{name}-{uuid.uuid4().hex[:6]}@%h",
            "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel", "INFO",
            "--queues", JOB_QUEUE,
        ]  # fmt: skip
        self.log_path = log
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    @property
    def owner(self) -> str:
        """How this worker names itself on the chunk leases it takes."""
        import socket

        return f"{socket.gethostname()}:{self.process.pid}"

    def wait_ready(self, timeout: float = 90) -> None:
        """Until Celery says this worker consumes (its "<name> ready." line)."""
        self.log.flush()
        wait_for(lambda: " ready." in self.log_path.read_text(errors="replace"), timeout=timeout)

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

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
    """Start worker subprocesses with `start()`; all are stopped at the end. (Chunks are cut
    at submission: set MLAPI_JOB_CHUNK_ROWS in this process.)"""
    started: list[WorkerProcess] = []

    def start(lease_s: float = 2.0) -> WorkerProcess:
        name = f"w{len(started)}"
        worker = WorkerProcess(tmp_path / f"{name}.log", lease_s=lease_s, name=name)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def numbered_csv(rows: int) -> bytes:
    """Iris rows whose sepal_length carries the row number (5.10000042), so order is checkable."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["sepal_length", "sepal_width", "petal_length", "petal_width"])
    for i in range(rows):
        values = IRIS_ROWS[i % 3][0]
        writer.writerow([f"{values[0]:.1f}{i:07d}", *values[1:]])
    return out.getvalue().encode()


def assert_every_row_once_in_order(client, key, job_id, rows: int) -> None:
    results = results_rows(client, key, job_id)
    assert len(results) == rows
    expected = numbered_csv(rows).decode().splitlines()[1:]
    got = [",".join(list(r.values())[:4]) for r in results]
    assert got == expected  # every row once, in input order
    assert all(r["prediction"] and not r["error"] for r in results)
