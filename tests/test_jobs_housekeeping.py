"""Job housekeeping: retention (periodic task + management command), recovery, admin actions."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from predictions import storage
from predictions.jobs import housekeeping, leases
from predictions.models import BatchJob, JobChunk, JobStatus
from tests.conftest import make_subscriber_key
from tests.support import jobs
from tests.support.jobs import iris_csv, job_folders, submit_file

usage_written_in_the_request = jobs.usage_written_in_the_request
job_storage = jobs.job_storage
job_storage_session = jobs.job_storage_session
s3_server = jobs.s3_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def make_job(client, demo_models, django_capture_on_commit_callbacks):
    """Submit a small job (published to the broker; no worker here) and set its fields."""
    _, key = make_subscriber_key()

    def make(**fields) -> BatchJob:
        with django_capture_on_commit_callbacks(execute=True):
            job_id = submit_file(client, key, iris_csv(3)).json()["id"]
        BatchJob.objects.filter(pk=job_id).update(**fields)
        return BatchJob.objects.get(pk=job_id)

    return make


def test_finished_jobs_past_retention_are_deleted_with_their_files(make_job, settings):
    old = timezone.now() - timedelta(days=settings.MLAPI_JOB_RETENTION_DAYS + 1)
    expired = make_job(status=JobStatus.SUCCEEDED, rows_done=3, created_at=old)
    recent = make_job(status=JobStatus.SUCCEEDED, rows_done=3)
    old_but_running = make_job(status=JobStatus.RUNNING, created_at=old)
    assert str(expired.pk) in job_folders()
    out = io.StringIO()
    call_command("expire_jobs", stdout=out)
    assert "expired 1 job" in out.getvalue()
    assert not BatchJob.objects.filter(pk=expired.pk).exists()
    assert str(expired.pk) not in job_folders()
    assert {j.pk for j in BatchJob.objects.all()} == {recent.pk, old_but_running.pk}
    assert str(recent.pk) in job_folders()


def test_retention_is_also_a_periodic_task(make_job, settings):
    from predictions.tasks import expire_batch_jobs

    old = timezone.now() - timedelta(days=settings.MLAPI_JOB_RETENTION_DAYS + 1)
    make_job(status=JobStatus.FAILED, created_at=old)
    assert expire_batch_jobs() == 1
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"predictions.expire_batch_jobs", "predictions.recover_orphaned_jobs"} <= scheduled


def long_ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def test_a_running_job_with_a_live_lease_is_left_alone_and_an_abandoned_one_is_republished(
    make_job, settings
):
    job = make_job(status=JobStatus.RUNNING, published_at=long_ago(settings.MLAPI_JOB_LEASE_S + 1))
    chunk = leases.claim_chunk(job_id=job.pk, owner="worker-a:1")
    assert chunk is not None and leases.has_live_lease(job.pk)
    assert str(job.pk) not in housekeeping.recover_orphaned_jobs()
    JobChunk.objects.filter(pk=chunk.pk).update(lease_expires_at=long_ago(1))  # worker died
    assert str(job.pk) in housekeeping.recover_orphaned_jobs()
    assert str(job.pk) not in housekeeping.recover_orphaned_jobs()  # just published: wait


def test_a_job_being_finished_is_not_republished(make_job, settings):
    job = make_job(status=JobStatus.RUNNING, published_at=long_ago(settings.MLAPI_JOB_LEASE_S + 1))
    assert leases.claim_finalization(job_id=job.pk)
    assert str(job.pk) not in housekeeping.recover_orphaned_jobs()
    assert not leases.claim_finalization(job_id=job.pk)  # one finisher at a time


def test_a_queued_job_is_republished_only_when_its_message_is_an_hour_old(make_job):
    job = make_job()
    assert str(job.pk) not in housekeeping.recover_orphaned_jobs()
    BatchJob.objects.filter(pk=job.pk).update(
        published_at=long_ago(housekeeping.REQUEUE_QUEUED_AFTER_S + 60)
    )
    assert str(job.pk) not in housekeeping.recover_orphaned_jobs(include_stale_queued=False)
    assert str(job.pk) in housekeeping.recover_orphaned_jobs()
    assert str(job.pk) not in housekeeping.recover_orphaned_jobs()  # published_at was renewed


def test_a_chunk_lease_goes_to_one_worker_and_an_expired_one_to_the_next(make_job):
    job = make_job(status=JobStatus.RUNNING)
    first = leases.claim_chunk(job_id=job.pk, owner="a:1")
    assert first is not None and first.attempts == 1
    assert leases.claim_chunk(job_id=job.pk, owner="b:2") is None  # one chunk, leased
    JobChunk.objects.filter(pk=first.pk).update(lease_expires_at=long_ago(1))
    second = leases.claim_chunk(job_id=job.pk, owner="b:2")
    assert second.pk == first.pk and second.attempts == 2
    assert leases.commit_chunk(chunk=second, part="p2", rows_failed=0) is leases.Commit.COMMITTED
    late = leases.commit_chunk(chunk=first, part="p1", rows_failed=0)  # the first lived on
    assert late is leases.Commit.DUPLICATE
    job.refresh_from_db()
    assert job.rows_done == 3 and JobChunk.objects.get(pk=first.pk).part == "p2"


def test_no_chunk_commits_once_a_job_is_cancelled(make_job):
    job = make_job(status=JobStatus.RUNNING)
    chunk = leases.claim_chunk(job_id=job.pk, owner="a:1")
    BatchJob.objects.filter(pk=job.pk).update(cancel_requested=True)
    assert leases.commit_chunk(chunk=chunk, part="p", rows_failed=0) is leases.Commit.STOPPED
    assert BatchJob.objects.get(pk=job.pk).rows_done == 0
    assert not JobChunk.objects.get(pk=chunk.pk).done


def test_an_abandoned_upload_folder_is_expired_with_the_jobs(make_job, settings):
    storage.put_bytes("jobs/abandoned-upload/input/000000.csv", b"a,b\n")
    housekeeping.expire_batch_jobs(days=-1)  # everything is past a negative retention
    assert "abandoned-upload" not in job_folders()


def test_admin_lists_jobs_and_cancels_them(admin_client, make_job):
    job = make_job()
    listing = admin_client.get("/admin/predictions/batchjob/")
    assert listing.status_code == 200
    assert str(job.pk) in listing.content.decode() and "0/3 (0%)" in listing.content.decode()
    response = admin_client.post(
        "/admin/predictions/batchjob/",
        {"action": "cancel_jobs", "_selected_action": [str(job.pk)]},
    )
    assert response.status_code == 302
    assert BatchJob.objects.get(pk=job.pk).status == JobStatus.CANCELLED


def test_admin_retry_requeues_failed_jobs_only(admin_client, make_job):
    failed = make_job(status=JobStatus.FAILED, error="boom")
    done = make_job(status=JobStatus.SUCCEEDED, rows_done=3)
    admin_client.post(
        "/admin/predictions/batchjob/",
        {"action": "retry_jobs", "_selected_action": [str(failed.pk), str(done.pk)]},
    )
    failed.refresh_from_db()
    assert failed.status == JobStatus.QUEUED and failed.error == ""
    assert BatchJob.objects.get(pk=done.pk).status == JobStatus.SUCCEEDED


def test_beat_is_a_role_of_its_own_and_no_worker_runs_it(tmp_path):
    """One scheduler per deployment: `python -m mlapi.serve beat`; workers never embed it."""
    import os
    import subprocess
    import sys
    import time

    from mlapi import serve

    # `make run` runs them all (with the gRPC server); beat is its own role.
    assert {"web", "worker", "beat"} <= {name for name, role in serve.ROLES.items() if role.default}
    worker = serve._worker_command()
    assert "worker" in worker and "--beat" not in worker and "-B" not in worker
    env = {**os.environ, "MLAPI_DATA_DIR": str(tmp_path), "DJANGO_DEBUG": "1"}
    for name in ("MLAPI_OBJECT_STORAGE", "DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL"):
        env.pop(name, None)  # its own embedded broker: what it schedules reaches nobody else
    beat = subprocess.Popen(
        [sys.executable, "-m", "mlapi.serve", "beat"],
        cwd=serve.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    scheduled = lambda: any(p.name.startswith("celerybeat-schedule") for p in tmp_path.iterdir())  # noqa: E731
    try:
        deadline = time.monotonic() + 60
        while not scheduled() and beat.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert beat.poll() is None
    finally:
        beat.terminate()
        output = beat.communicate(timeout=20)[0].decode()
    assert "celery beat" in output and scheduled(), output
