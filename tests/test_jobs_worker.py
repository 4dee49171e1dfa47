"""Batch jobs executed by a real Celery worker consuming from the real broker.

The embedded SQLite broker on the defaults; RabbitMQ or Redis when CELERY_BROKER_URL is set
(the service run of .ci/run). Results, per-row errors, progress, cancel and refunds.
"""

from __future__ import annotations

import pytest

from predictions.models import BatchJob, JobChunk, JobStatus
from tests.conftest import make_subscriber_key
from tests.support import jobs
from tests.support.jobs import (
    IRIS,
    IRIS_ROWS,
    JOBS_URL,
    iris_csv,
    quota_used,
    results_rows,
    submit_file,
    submit_instances,
    wait_finished,
    wait_for,
)

celery_worker = jobs.celery_worker  # fixtures
celery_worker_module = jobs.celery_worker_module

usage_written_in_the_request = jobs.usage_written_in_the_request
job_storage = jobs.job_storage
job_storage_session = jobs.job_storage_session
s3_server = jobs.s3_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_csv_job_predicts_every_row_in_order_and_links_its_results(client, celery_worker):
    subscription, key = make_subscriber_key()
    response = submit_file(client, key, iris_csv(30))
    assert response.status_code == 202, response.content
    job = wait_finished(response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (job.rows_total, job.rows_done, job.rows_failed) == (30, 30, 0)
    body = client.get(response["Location"], HTTP_X_API_KEY=key).json()
    assert body["status"] == "succeeded"
    assert body["results_url"].endswith(f"{JOBS_URL}/{job.pk}/results")
    rows = results_rows(client, key, job.pk)
    assert list(rows[0]) == [*IRIS, "prediction", "error"]
    assert [r["prediction"] for r in rows] == [IRIS_ROWS[i % 3][1] for i in range(30)]
    assert all(r["error"] == "" for r in rows)
    assert quota_used(subscription) == 30


def test_bad_csv_rows_fail_alone_with_their_message_in_the_error_column(client, celery_worker):
    _, key = make_subscriber_key()
    extra = "5.1,3.5,1.4\nabc,3.5,1.4,0.2\n5.1,3.5,,0.2\n99,3.5,1.4,0.2\nnan,1,1,1\n"
    job_id = submit_file(client, key, iris_csv(3, extra=extra)).json()["id"]
    job = wait_finished(job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (job.rows_done, job.rows_failed) == (8, 5)
    rows = results_rows(client, key, job_id)
    assert [r["prediction"] for r in rows[:3]] == ["setosa", "versicolor", "virginica"]
    errors = [r["error"] for r in rows[3:]]
    assert "3 values, expected 4" in errors[0]
    assert "sepal_length" in errors[1] and "number" in errors[1]
    assert "petal_length" in errors[2]
    assert "between" in errors[3]
    assert "finite" in errors[4]
    assert all(r["prediction"] == "" for r in rows[3:])
    assert [r["sepal_length"] for r in rows[3:]] == ["5.1", "abc", "5.1", "99", "nan"]


def test_jsonl_lines_that_are_not_objects_fail_alone(client, celery_worker):
    _, key = make_subscriber_key()
    good = b'{"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5}\n'
    content = (
        good + b"[1, 2, 3, 4]\n" + b"{not json\n" + b'{"sepal_length": 1, "colour": 2}\n' + good
    )
    job_id = submit_file(client, key, content, name="rows.jsonl").json()["id"]
    job = wait_finished(job_id)
    assert (job.status, job.rows_done, job.rows_failed) == (JobStatus.SUCCEEDED, 5, 3)
    rows = results_rows(client, key, job_id)
    assert [r["prediction"] for r in rows] == ["virginica", "", "", "", "virginica"]
    assert "not a JSON object" in rows[1]["error"]
    assert "not valid JSON" in rows[2]["error"]
    assert "colour" in rows[3]["error"] and "unknown feature" in rows[3]["error"]


def test_inline_instances_job_scores_objects_and_arrays(client, celery_worker):
    _, key = make_subscriber_key()
    instances = [dict(zip(IRIS, IRIS_ROWS[0][0], strict=True)), IRIS_ROWS[2][0], [1, 2]]
    job_id = submit_instances(client, key, instances).json()["id"]
    job = wait_finished(job_id)
    rows = results_rows(client, key, job_id)
    assert [r["prediction"] for r in rows] == ["setosa", "virginica", ""]
    assert job.rows_failed == 1 and rows[2]["error"]


def test_house_price_job_with_categorical_features(client, celery_worker):
    _, key = make_subscriber_key()
    content = b"property_type,old_new,duration\nD,N,F\nF,Y,L\nX,N,F\n"
    job_id = submit_file(client, key, content, model="house-price").json()["id"]
    job = wait_finished(job_id)
    rows = results_rows(client, key, job_id)
    assert float(rows[0]["prediction"]) > float(rows[1]["prediction"]) > 0
    assert "unknown category" in rows[2]["error"] and job.rows_failed == 1


def test_progress_is_committed_chunk_by_chunk_and_only_the_results_are_kept(
    client, celery_worker, settings
):
    from predictions import storage

    settings.MLAPI_JOB_CHUNK_ROWS = 7
    _, key = make_subscriber_key()
    job_id = submit_file(client, key, iris_csv(50)).json()["id"]
    job = wait_finished(job_id)
    chunks = list(JobChunk.objects.filter(job_id=job_id).order_by("index"))
    assert [c.start_row for c in chunks] == list(range(0, 50, 7)) and job.chunks_total == 8
    assert all(c.done and c.committed_at and c.part for c in chunks)
    assert sum(c.rows for c in chunks) == 50
    assert len(results_rows(client, key, job_id)) == 50

    def dropped() -> bool:  # after success the results are the only copy (deleted just after)
        try:
            storage.read_bytes(f"jobs/{job_id}/input/000000.csv")
        except storage.ObjectMissing:
            return not storage.list_folders(f"jobs/{job_id}/parts")
        return False

    wait_for(dropped, timeout=30)


def test_cancel_stops_a_running_job_at_the_next_chunk_and_refunds_the_rest(
    client, celery_worker, settings
):
    settings.MLAPI_JOB_CHUNK_ROWS = 50
    subscription, key = make_subscriber_key()
    job_id = submit_file(client, key, iris_csv(60_000)).json()["id"]
    wait_for(lambda: BatchJob.objects.get(pk=job_id).rows_done > 0, timeout=60)
    response = client.post(f"{JOBS_URL}/{job_id}/cancel", HTTP_X_API_KEY=key)
    assert response.status_code == 200, response.content
    job = wait_finished(job_id)
    assert job.status == JobStatus.CANCELLED
    assert 0 < job.rows_done < job.rows_total and job.quota_refunded
    assert quota_used(subscription) == job.rows_done
    rows = results_rows(client, key, job_id)  # the rows scored before it stopped
    assert len(rows) == job.rows_done


def test_a_job_whose_model_cannot_load_fails_and_refunds_its_rows(client, celery_worker):
    from django.db import transaction

    from predictions.inference import clear_cache
    from predictions.models import ModelVersion

    subscription, key = make_subscriber_key()
    with transaction.atomic():  # the task is published when this commits, model broken
        job_id = submit_file(client, key, iris_csv(10)).json()["id"]
        ModelVersion.objects.filter(model__name="iris").update(
            sha256="0" * 64, onnx_sha256="0" * 64
        )
        clear_cache()
    job = wait_finished(job_id)
    assert job.status == JobStatus.FAILED and "cannot be loaded" in job.error
    body = client.get(f"{JOBS_URL}/{job_id}", HTTP_X_API_KEY=key).json()
    assert body["status"] == "failed" and body["error"] and "results_url" not in body
    assert quota_used(subscription) == 0 and job.quota_refunded


def test_retry_runs_a_failed_job_again_once_its_model_loads(client, celery_worker):
    from django.db import transaction

    from predictions.inference import clear_cache
    from predictions.jobs.services import retry_batch_job
    from predictions.models import ModelVersion

    _, key = make_subscriber_key()
    good = ModelVersion.objects.filter(model__name="iris").values("sha256", "onnx_sha256").get()
    with transaction.atomic():
        job_id = submit_file(client, key, iris_csv(12)).json()["id"]
        ModelVersion.objects.filter(model__name="iris").update(
            sha256="0" * 64, onnx_sha256="0" * 64
        )
        clear_cache()
    assert wait_finished(job_id).status == JobStatus.FAILED
    ModelVersion.objects.filter(model__name="iris").update(**good)
    clear_cache()
    retry_batch_job(job=BatchJob.objects.get(pk=job_id))
    job = wait_finished(job_id)
    assert job.status == JobStatus.SUCCEEDED and job.error == ""
    assert len(results_rows(client, key, job_id)) == 12


def test_fast_path_refuses_exactly_what_validation_refuses(client, celery_worker):
    """Numeric cells that parse (NaN, infinity, out of range) are checked per row too."""
    _, key = make_subscriber_key()
    extra = "99,3.5,1.4,0.2\nnan,3.5,1.4,0.2\n5.1,inf,1.4,0.2\n 6.3 ,3.3,6.0,2.5\n"
    job_id = submit_file(client, key, iris_csv(3, extra=extra)).json()["id"]
    job = wait_finished(job_id)
    rows = results_rows(client, key, job_id)
    assert [r["prediction"] for r in rows] == [
        "setosa", "versicolor", "virginica", "", "", "", "virginica",
    ]  # fmt: skip
    assert "between" in rows[3]["error"] and "finite" in rows[4]["error"]
    assert "sepal_width" in rows[5]["error"] and job.rows_failed == 3
