"""Job housekeeping: retention (periodic task + management command), recovery, admin actions."""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from predictions.jobs import housekeeping
from predictions.jobs.runner import job_lock
from predictions.jobs.services import ENQUEUED_MARKER, job_dir
from predictions.models import BatchJob, JobStatus
from tests import test_jobs_support
from tests.conftest import make_subscriber_key
from tests.test_jobs_support import iris_csv, submit_file

usage_written_in_the_request = test_jobs_support.usage_written_in_the_request
job_storage = test_jobs_support.job_storage
job_storage_session = test_jobs_support.job_storage_session
s3_server = test_jobs_support.s3_server

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
    assert job_dir(expired.pk).exists()
    out = io.StringIO()
    call_command("expire_jobs", stdout=out)
    assert "expired 1 job" in out.getvalue()
    assert not BatchJob.objects.filter(pk=expired.pk).exists()
    assert not job_dir(expired.pk).exists()
    assert {j.pk for j in BatchJob.objects.all()} == {recent.pk, old_but_running.pk}
    assert job_dir(recent.pk).exists()


def test_retention_is_also_a_periodic_task(make_job, settings):
    from predictions.tasks import expire_batch_jobs

    old = timezone.now() - timedelta(days=settings.MLAPI_JOB_RETENTION_DAYS + 1)
    make_job(status=JobStatus.FAILED, created_at=old)
    assert expire_batch_jobs() == 1
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"predictions.expire_batch_jobs", "predictions.recover_orphaned_jobs"} <= scheduled


def test_a_running_job_nobody_holds_is_re_enqueued_and_a_held_one_is_not(make_job):
    job = make_job(status=JobStatus.RUNNING)
    with job_lock(job_dir(job.pk)) as acquired:
        assert acquired
        assert str(job.pk) not in housekeeping.recover_orphaned_jobs()
    assert str(job.pk) in housekeeping.recover_orphaned_jobs()


def test_a_queued_job_is_republished_only_when_its_message_is_an_hour_old(make_job):
    job = make_job()
    assert str(job.pk) not in housekeeping.recover_orphaned_jobs()
    an_hour_ago = time.time() - housekeeping.REQUEUE_QUEUED_AFTER_S - 60
    os.utime(job_dir(job.pk) / ENQUEUED_MARKER, (an_hour_ago, an_hour_ago))
    assert str(job.pk) not in housekeeping.recover_orphaned_jobs(include_stale_queued=False)
    assert str(job.pk) in housekeeping.recover_orphaned_jobs()
    assert str(job.pk) not in housekeeping.recover_orphaned_jobs()  # the marker was renewed


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
