"""Object storage faults, on a real S3 server (moto's) behind a TCP proxy that can fail.

Always S3, whatever MLAPI_TEST_OBJECT_STORAGE says: unreachable at upload (503, nothing
charged), a blip during a run (the chunk retries, the job succeeds), unreachable at download
(503), a worker SIGKILLed mid-upload of a part, a bucket that does not exist at start-up, model
artifacts (SHA-256 checked) and large results (multipart upload).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

from predictions import storage
from predictions.models import BatchJob, JobStatus
from tests.conftest import make_subscriber_key
from tests.support import jobs
from tests.support.jobs import (
    JOBS_URL,
    assert_every_row_once_in_order,
    copy_artifacts_to_bucket,
    iris_csv,
    job_folders,
    numbered_csv,
    quota_used,
    submit_file,
    use_object_storage,
    wait_finished,
    wait_for,
)
from tests.support.objectstore import FaultyProxy, storage_env
from tests.support.problems import assert_problem

usage_written_in_the_request = jobs.usage_written_in_the_request
job_storage = jobs.job_storage
job_storage_session = jobs.job_storage_session
s3_server = jobs.s3_server
worker_process = jobs.worker_process

BASE_DIR = jobs.BASE_DIR


@pytest.fixture
def proxied_s3(settings, s3_server, demo_model_rows, job_storage):
    """A fresh bucket (with the demo artifacts) reached through a FaultyProxy, for this test."""
    bucket = f"faults-{uuid.uuid4().hex[:10]}"
    s3_server.client().create_bucket(Bucket=bucket)
    copy_artifacts_to_bucket(s3_server, bucket, "p")
    proxy = FaultyProxy(s3_server.port)
    use_object_storage(settings, proxy.endpoint, f"s3://{bucket}/p")
    yield proxy
    proxy.close()


@pytest.mark.django_db
def test_storage_unreachable_at_upload_is_503_and_charges_nothing(client, demo_models, proxied_s3):
    from predictions.inference import get_predictor

    subscription, key = make_subscriber_key()
    get_predictor("iris")  # a web node that has its model loaded; only the upload needs the store
    proxied_s3.down()
    started = time.monotonic()
    response = submit_file(client, key, iris_csv(50))
    assert_problem(response, 503, "service_unavailable")
    assert response["Retry-After"] and time.monotonic() - started < 15
    assert not BatchJob.objects.exists() and quota_used(subscription) == 0
    proxied_s3.up()
    assert job_folders() == set()  # nothing half-stored either
    assert submit_file(client, key, iris_csv(50)).status_code == 202  # back: accepted


@pytest.mark.django_db
def test_a_process_that_has_not_loaded_its_model_says_the_store_is_away(
    client, demo_models, proxied_s3
):
    """A web process started (or whose cache was dropped) during the outage: not ready, and
    predictions answer 503 service_unavailable (a store away), never a 500; back afterwards."""
    from predictions.inference import clear_cache

    _, key = make_subscriber_key()
    clear_cache()
    proxied_s3.down()
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503 and ready.json() == {"ready": False}
    assert client.get("/readyz").json()["components"]["models"]["status"] == "unavailable"
    body = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    response = client.post(
        "/api/v1/models/iris/predict", body, content_type="application/json", HTTP_X_API_KEY=key
    )
    assert_problem(response, 503, "service_unavailable")
    assert response["Retry-After"]
    proxied_s3.up()
    assert client.get("/v2/health/ready").json() == {"ready": True}
    response = client.post(
        "/api/v1/models/iris/predict", body, content_type="application/json", HTTP_X_API_KEY=key
    )
    assert response.status_code == 200, response.content


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_storage_blip_during_a_run_is_retried_and_the_job_succeeds(
    client, live_demo_models, proxied_s3, worker_process, settings
):
    settings.MLAPI_JOB_CHUNK_ROWS = 100
    rows = 10_000
    subscription, key = make_subscriber_key()
    worker = worker_process()
    job_id = submit_file(client, key, numbered_csv(rows)).json()["id"]
    wait_for(lambda: BatchJob.objects.get(pk=job_id).rows_done >= 300, timeout=90)
    proxied_s3.down()
    time.sleep(2.5)  # longer than one request's retries: the runner's backoff has to carry it
    assert BatchJob.objects.get(pk=job_id).status == JobStatus.RUNNING
    proxied_s3.up()
    job = wait_finished(job_id, timeout=400)
    assert job.status == JobStatus.SUCCEEDED, job.error + worker.log_text()
    assert "object storage unavailable" in worker.log_text()
    assert_every_row_once_in_order(client, key, job_id, rows)
    assert quota_used(subscription) == rows


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_worker_sigkilled_mid_upload_of_a_part_costs_no_row(
    client, live_demo_models, proxied_s3, worker_process, settings
):
    settings.MLAPI_JOB_CHUNK_ROWS = 500
    rows = 5_000
    _, key = make_subscriber_key()
    proxied_s3.stall(b"/parts/")  # the first part upload never reaches the store
    victim = worker_process()
    job_id = submit_file(client, key, numbered_csv(rows)).json()["id"]
    wait_for(lambda: proxied_s3.stalled, timeout=90)
    assert b"PUT" in proxied_s3.stalled[0]
    victim.kill()  # mid-upload: the part's request is half-sent
    proxied_s3.up()
    worker_process()
    job = wait_finished(job_id, timeout=400)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert_every_row_once_in_order(client, key, job_id, rows)


@pytest.mark.django_db(transaction=True)
def test_storage_unreachable_at_download_is_503(client, live_demo_models, proxied_s3):
    from predictions.jobs import runner

    _, key = make_subscriber_key()
    job_id = submit_file(client, key, iris_csv(20)).json()["id"]
    runner.run_batch_job(job_id=job_id)
    assert BatchJob.objects.get(pk=job_id).status == JobStatus.SUCCEEDED
    proxied_s3.down()
    assert_problem(
        client.get(f"{JOBS_URL}/{job_id}/results", HTTP_X_API_KEY=key), 503, "service_unavailable"
    )
    proxied_s3.up()
    response = client.get(f"{JOBS_URL}/{job_id}/results", HTTP_X_API_KEY=key)
    assert response.status_code == 200
    assert len(b"".join(response.streaming_content).decode().splitlines()) == 21


def test_a_bucket_that_does_not_exist_stops_start_up_with_a_clear_error(s3_server, tmp_path):
    env = {
        **os.environ,
        **storage_env(s3_server.endpoint, "s3://no-such-bucket/x"),
        "MLAPI_DATA_DIR": str(tmp_path),
        "DJANGO_DEBUG": "1",
    }
    check = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode != 0
    assert "bucket 'no-such-bucket' does not exist" in check.stderr
    worker = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "mlapi", "worker", "--pool", "solo"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode != 0
    assert "bucket 'no-such-bucket' does not exist" in worker.stdout + worker.stderr


@pytest.mark.django_db
def test_model_artifacts_live_in_the_bucket_and_a_tampered_one_is_refused(
    proxied_s3, s3_server, settings
):
    from sklearn.linear_model import LinearRegression

    from predictions.errors import ModelUnavailable
    from predictions.inference import clear_cache, get_predictor
    from predictions.registry import register_model_version

    estimator = LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 2.0, 4.0])
    version = register_model_version(name="doubler", estimator=estimator, sample=[[1.0]])
    assert storage.read_bytes(version.artifact)  # in the bucket, not on this disk
    assert not (settings.DATA_DIR / version.artifact).exists()
    clear_cache()
    assert get_predictor("doubler").predict([[3.0]]).predictions[0] == pytest.approx(6.0)
    storage.put_bytes(version.onnx_artifact or version.artifact, b"tampered")
    clear_cache()
    with pytest.raises(ModelUnavailable):
        get_predictor("doubler")


@pytest.mark.django_db
def test_large_results_are_a_multipart_upload_read_back_as_a_stream(proxied_s3, s3_server):
    block = os.urandom(1 << 20)
    with storage.open_write("big/results.csv") as out:
        for _ in range(2 * storage.PART_BYTES // len(block) + 1):  # 2 full parts and a tail
            out.write(block)
    bucket = storage.objects().bucket_name
    head = s3_server.client().head_object(Bucket=bucket, Key="p/big/results.csv")
    assert head["ContentLength"] == (2 * storage.PART_BYTES + len(block))
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    total = sum(len(b) for b in storage.iter_read(storage.open_read("big/results.csv")))
    assert total == head["ContentLength"]
