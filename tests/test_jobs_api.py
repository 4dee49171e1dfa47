"""Batch-job API without a worker: submission, upfront validation, quota, isolation, cancel.

Every bad-input class gets its status and code, and leaves nothing behind: no job row, no
file, no quota used. (Execution by a real worker is in test_jobs_worker.py.)
"""

from __future__ import annotations

import pytest

from predictions.models import BatchJob, JobStatus
from tests.conftest import make_subscriber_key
from tests.support import jobs
from tests.support.jobs import (
    IRIS,
    JOBS_URL,
    iris_csv,
    job_folders,
    quota_used,
    submit_file,
    submit_instances,
    upload,
)
from tests.support.problems import assert_problem

usage_written_in_the_request = jobs.usage_written_in_the_request
job_storage = jobs.job_storage
job_storage_session = jobs.job_storage_session
s3_server = jobs.s3_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscriber(db):
    """(subscription, api key) on a plan with room for 100,000 job rows."""
    return make_subscriber_key()


def job_dirs() -> set[str]:
    return job_folders()


def test_csv_submission_answers_202_with_location_and_charges_its_rows(
    client, demo_models, subscriber
):
    subscription, key = subscriber
    response = submit_file(client, key, iris_csv(7))
    assert response.status_code == 202, response.content
    body = response.json()
    assert {"id", "status", "model", "version", "rows_total", "created_at"} <= set(body)
    assert body["status"] == "queued" and body["model"] == "iris" and body["version"] == "1"
    assert body["rows_total"] == 7
    assert response["Location"].endswith(f"{JOBS_URL}/{body['id']}")
    assert quota_used(subscription) == 7
    job = BatchJob.objects.get(pk=body["id"])
    assert job.input_format == "csv" and job.subscription_id == subscription.pk


def test_inline_instances_become_a_json_lines_job(client, demo_models, subscriber):
    _, key = subscriber
    instances = [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]
    response = submit_instances(client, key, [*instances, [6.3, 3.3, 6.0, 2.5], "oops"])
    assert response.status_code == 202, response.content
    job = BatchJob.objects.get(pk=response.json()["id"])
    assert job.input_format == "jsonl" and job.rows_total == 3


def test_jsonl_upload_is_accepted_and_columns_are_case_of_the_schema(
    client, demo_models, subscriber
):
    _, key = subscriber
    lines = b'{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}\n'
    response = submit_file(client, key, lines * 3 + b"\n[1,2]\n", name="rows.jsonl")
    assert response.status_code == 202, response.content
    assert response.json()["rows_total"] == 4  # the blank line is not a row


def test_csv_columns_may_come_in_any_order_with_a_bom(client, demo_models, subscriber):
    _, key = subscriber
    content = "\ufeff" + "petal_width,petal_length,sepal_width,sepal_length\n0.2,1.4,3.5,5.1\n"
    response = submit_file(client, key, content.encode())
    assert response.status_code == 202, response.content


BAD_FILES = {
    "empty": (b"", "rows.csv", "empty"),
    "whitespace_only": (b"\n\n  \n", "rows.csv", "empty"),
    "header_only": (iris_csv(0), "rows.csv", "no data rows"),
    "semicolon_delimiter": (
        b"sepal_length;sepal_width;petal_length;petal_width\n5.1;3.5;1.4;0.2\n",
        "rows.csv",
        "comma-separated",
    ),
    "missing_column": (b"sepal_length,sepal_width,petal_length\n1,2,3\n", "rows.csv", "missing"),
    "unknown_column": (
        iris_csv(2, header=[*["sepal_length", "sepal_width"], "petal_length", "colour"]),
        "rows.csv",
        "unknown",
    ),
    "duplicate_column": (
        b"sepal_length,sepal_length,sepal_width,petal_length,petal_width\n1,1,2,3,4\n",
        "rows.csv",
        "duplicate",
    ),
    "not_utf8": (iris_csv(3) + "5.1,3.5,1.4,0.2\xe9\n".encode("latin-1"), "rows.csv", "UTF-8"),
    "binary_garbage": (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        "rows.csv",
        "binary",
    ),
    "jsonl_not_objects": (b"[1, 2, 3, 4]\n", "rows.jsonl", "JSON object"),
    "jsonl_not_json": (b"sepal_length,sepal_width\n", "rows.jsonl", "JSON object"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_are_refused_whole_with_400_and_leave_nothing_behind(
    client, demo_models, subscriber, case
):
    subscription, key = subscriber
    content, name, message = BAD_FILES[case]
    before = job_dirs()
    body = assert_problem(submit_file(client, key, content, name=name), 400, "validation_error")
    assert message in body["detail"]
    assert body["errors"][0]["field"] == "file"
    assert not BatchJob.objects.exists()
    assert quota_used(subscription) == 0
    assert job_dirs() == before


def test_file_types_other_than_csv_and_jsonl_are_415(client, demo_models, subscriber):
    _, key = subscriber
    response = submit_file(client, key, b"PK\x03\x04 not a sheet", name="rows.xlsx")
    assert_problem(response, 415, "unsupported_media_type")
    assert not BatchJob.objects.exists()


def test_more_rows_than_the_plan_allows_is_refused_whole(client, demo_models):
    subscription, key = make_subscriber_key(plan_name="small-jobs", max_job_rows=5)
    body = assert_problem(submit_file(client, key, iris_csv(6)), 400, "validation_error")
    assert "5" in body["detail"]
    assert quota_used(subscription) == 0
    assert submit_file(client, key, iris_csv(5)).status_code == 202


def test_upload_over_the_size_limit_is_413(client, demo_models, subscriber, settings):
    subscription, key = subscriber
    settings.MLAPI_MAX_UPLOAD_BYTES = 1000
    response = submit_file(client, key, iris_csv(100))
    assert_problem(response, 413, "payload_too_large")
    assert not BatchJob.objects.exists() and quota_used(subscription) == 0


def test_stored_upload_is_capped_while_copying_even_without_a_length(settings):
    """A chunked request has no Content-Length: reading the upload enforces the limit itself."""
    from mlapi.exceptions import PayloadTooLarge
    from predictions import storage
    from predictions.jobs.parsing import store_upload

    content = iris_csv(200)
    settings.MLAPI_MAX_UPLOAD_BYTES = len(content) - 1
    unsized = upload(content)
    unsized.size = None
    try:
        with pytest.raises(PayloadTooLarge):
            store_upload(upload=unsized, features=IRIS, prefix="jobs/capped", chunk_rows=50)
    finally:
        storage.delete_prefix("jobs/capped")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "iris"}, "file"),
        ({"model": "iris", "instances": []}, "instances"),
        ({"model": "iris", "instances": "5.1,3.5"}, "instances"),
        ({"instances": [[5.1, 3.5, 1.4, 0.2]]}, "model"),
    ],
)
def test_json_submissions_without_usable_instances_are_400(
    client, demo_models, subscriber, body, field
):
    _, key = subscriber
    response = client.post(JOBS_URL, body, content_type="application/json", HTTP_X_API_KEY=key)
    problem = assert_problem(response, 400, "validation_error")
    assert problem["errors"][0]["field"].startswith(field)


def test_unparsable_json_body_is_400_invalid_json(client, demo_models, subscriber):
    _, key = subscriber
    response = client.post(JOBS_URL, b"{nope", content_type="application/json", HTTP_X_API_KEY=key)
    assert_problem(response, 400, "invalid_json")


def test_unknown_model_is_404(client, demo_models, subscriber):
    _, key = subscriber
    assert_problem(submit_file(client, key, iris_csv(2), model="no-such-model"), 404, "not_found")


def test_model_outside_the_plan_is_403(client, demo_models):
    subscription, key = make_subscriber_key(
        plan_name="house-only", all_models=False, model_names=["house-price"]
    )
    assert_problem(submit_file(client, key, iris_csv(2)), 403, "permission_denied")
    assert quota_used(subscription) == 0


def test_job_that_does_not_fit_the_quota_is_refused_whole(client, demo_models):
    subscription, key = make_subscriber_key(plan_name="tiny-quota", quota=10)
    assert submit_file(client, key, iris_csv(6)).status_code == 202
    response = submit_file(client, key, iris_csv(5))
    body = assert_problem(response, 429, "quota_exceeded")
    assert "Retry-After" in response
    assert body["type"].endswith("#quota-exceeded")
    assert quota_used(subscription) == 6
    assert BatchJob.objects.count() == 1


def test_unauthenticated_requests_are_401(client, demo_models):
    assert_problem(client.get(JOBS_URL), 401, "not_authenticated")


def test_subscribers_see_only_their_own_jobs(client, demo_models, subscriber):
    _, key = subscriber
    _, other_key = make_subscriber_key()
    mine = submit_file(client, key, iris_csv(2)).json()["id"]
    theirs = submit_file(client, other_key, iris_csv(2)).json()["id"]
    listing = client.get(JOBS_URL, HTTP_X_API_KEY=key).json()
    assert listing["count"] == 1 and [j["id"] for j in listing["results"]] == [mine]
    assert {"next", "previous"} <= set(listing)
    for suffix in ("", "/results"):
        assert_problem(
            client.get(f"{JOBS_URL}/{theirs}{suffix}", HTTP_X_API_KEY=key), 404, "not_found"
        )
    assert_problem(client.post(f"{JOBS_URL}/{theirs}/cancel", HTTP_X_API_KEY=key), 404, "not_found")
    assert BatchJob.objects.get(pk=theirs).status == JobStatus.QUEUED


def test_job_detail_reports_progress_fields(client, demo_models, subscriber):
    _, key = subscriber
    job_id = submit_file(client, key, iris_csv(4)).json()["id"]
    body = client.get(f"{JOBS_URL}/{job_id}", HTTP_X_API_KEY=key).json()
    assert body["status"] == "queued"
    assert (body["rows_total"], body["rows_done"], body["rows_failed"]) == (4, 0, 0)
    assert "results_url" not in body and "error" not in body


def test_results_of_an_unfinished_job_are_409(client, demo_models, subscriber):
    _, key = subscriber
    job_id = submit_file(client, key, iris_csv(4)).json()["id"]
    assert_problem(client.get(f"{JOBS_URL}/{job_id}/results", HTTP_X_API_KEY=key), 409, "conflict")


def test_unknown_job_id_is_404(client, demo_models, subscriber):
    _, key = subscriber
    missing = "00000000-0000-4000-8000-000000000000"
    assert_problem(client.get(f"{JOBS_URL}/{missing}", HTTP_X_API_KEY=key), 404, "not_found")
    assert_problem(client.get(f"{JOBS_URL}/not-a-uuid", HTTP_X_API_KEY=key), 404, "not_found")


def test_cancelling_a_queued_job_refunds_all_its_rows_exactly_once(client, demo_models, subscriber):
    subscription, key = subscriber
    job_id = submit_file(client, key, iris_csv(9)).json()["id"]
    assert quota_used(subscription) == 9
    response = client.post(f"{JOBS_URL}/{job_id}/cancel", HTTP_X_API_KEY=key)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert quota_used(subscription) == 0
    again = client.post(f"{JOBS_URL}/{job_id}/cancel", HTTP_X_API_KEY=key)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    submit_file(client, key, iris_csv(3))
    assert quota_used(subscription) == 3  # the second cancel refunded nothing


def test_cancelling_a_finished_job_is_409(client, demo_models, subscriber):
    _, key = subscriber
    job_id = submit_file(client, key, iris_csv(2)).json()["id"]
    BatchJob.objects.filter(pk=job_id).update(status=JobStatus.SUCCEEDED, rows_done=2)
    assert_problem(client.post(f"{JOBS_URL}/{job_id}/cancel", HTTP_X_API_KEY=key), 409, "conflict")


@pytest.mark.django_db(transaction=True)
def test_broker_down_makes_submission_503_with_no_job_and_no_quota_used(client, live_demo_models):
    from mlapi.celery import app

    subscription, key = make_subscriber_key()
    before = job_dirs()
    app.conf.broker_write_url = "amqp://guest:guest@127.0.0.1:1//"  # nothing listens there
    try:
        response = submit_file(client, key, iris_csv(5))
    finally:
        app.conf.changes.pop("broker_write_url")
    assert_problem(response, 503, "service_unavailable")
    assert not BatchJob.objects.exists()
    assert quota_used(subscription) == 0
    assert job_dirs() == before


def test_job_detail_adds_throughput_eta_and_workers_to_the_contract_fields(
    client, demo_models, subscriber
):
    from datetime import timedelta

    from django.utils import timezone

    from predictions.jobs import leases

    _, key = subscriber
    job_id = submit_file(client, key, iris_csv(40)).json()["id"]
    queued = client.get(f"{JOBS_URL}/{job_id}", HTTP_X_API_KEY=key).json()
    assert (queued["rows_per_second"], queued["eta_seconds"], queued["workers"]) == (None, None, 0)
    BatchJob.objects.filter(pk=job_id).update(
        status=JobStatus.RUNNING, rows_done=30, started_at=timezone.now() - timedelta(seconds=3)
    )
    leases.claim_chunk(job_id=job_id, owner="host:1")
    body = client.get(f"{JOBS_URL}/{job_id}", HTTP_X_API_KEY=key).json()
    assert 9 < body["rows_per_second"] <= 10 and 1 <= body["eta_seconds"] <= 1.2
    assert body["workers"] == 1 and body["chunks_total"] == 1
