"""Portal batch jobs: upload with a model picker, live status JSON, cancel, results download."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from keys.limits import quota_status
from predictions.jobs import runner
from predictions.models import BatchJob, JobStatus
from tests.support import jobs
from tests.support.jobs import IRIS_ROWS, iris_csv

pytestmark = pytest.mark.django_db

job_storage = jobs.job_storage  # local files, or S3 under make test-jobs-s3
job_storage_session = jobs.job_storage_session
s3_server = jobs.s3_server


@pytest.fixture(autouse=True)
def _usage_written_in_the_request(settings, job_storage):
    """Record usage in the request's own transaction: the buffered writer's thread would
    wait on the test transaction's SQLite write lock."""
    settings.MLAPI_USAGE_MODE = "sync"


@pytest.fixture
def owner(client, make_subscriber, demo_models):
    """A logged-in subscriber on a generous plan, with the demo models registered."""
    subscription = make_subscriber()
    client.force_login(subscription.user)
    return subscription


def upload(content: bytes, name: str = "flowers.csv", model: str = "iris") -> dict:
    return {"model": model, "file": SimpleUploadedFile(name, content, content_type="text/csv")}


def used(subscription) -> int:
    return quota_status(subscription=subscription).used


def test_the_model_picker_offers_only_models_the_plan_covers(client, make_subscriber, demo_models):
    narrow = make_subscriber(plan="narrow", all_models=False, model_names=["iris"])
    client.force_login(narrow.user)
    form = client.get("/portal/jobs/").context["form"]
    assert [value for value, _ in form.fields["model"].choices] == ["iris"]


def test_an_upload_creates_a_queued_job_charged_to_the_quota(client, owner):
    response = client.post("/portal/jobs/", upload(iris_csv(12)))
    assert response.status_code == 302 and response["Location"] == "/portal/jobs/"
    job = BatchJob.objects.get(subscription=owner)
    assert (job.status, job.rows_total, job.original_filename) == ("queued", 12, "flowers.csv")
    assert used(owner) == 12
    page = client.get("/portal/jobs/")
    html = page.content.decode()
    assert "is queued" in html and "flowers.csv" in html
    assert f'data-job-url="/portal/jobs/{job.pk}/status"' in html
    assert f'<progress id="progress-{job.pk}" max="12" value="0"' in html


@pytest.mark.parametrize(
    ("data", "field", "code"),
    [
        ({"model": "iris"}, "file", "required"),
        (upload(b""), "file", "empty"),
        (upload(iris_csv(2), model="no-such-model"), "model", "invalid_choice"),
        (upload(b"\x89PNG....", name="picture.png"), "__all__", "unsupported_media_type"),
        (upload(b"colour,size\nred,3\n"), "file", "validation_error"),
        (upload(b"sepal_length\n"), "file", "validation_error"),
    ],
)
def test_bad_uploads_are_400_with_the_error_and_charge_nothing(client, owner, data, field, code):
    response = client.post("/portal/jobs/", data)
    assert response.status_code == 400
    codes = [e.code for e in response.context["form"].errors.as_data()[field]]
    assert code in codes
    assert not BatchJob.objects.exists()
    assert used(owner) == 0


def test_more_rows_than_the_plan_allows_is_refused_whole(client, make_subscriber, demo_models):
    small = make_subscriber(plan="small", max_job_rows=5)
    client.force_login(small.user)
    response = client.post("/portal/jobs/", upload(iris_csv(6)))
    assert response.status_code == 400
    assert "allows 5" in response.context["form"].errors["file"][0]
    assert not BatchJob.objects.exists()


def test_a_job_that_does_not_fit_the_quota_is_refused_with_quota_exceeded(
    client, make_subscriber, demo_models
):
    tight = make_subscriber(plan="tight", quota=10, quota_period="day")
    client.force_login(tight.user)
    response = client.post("/portal/jobs/", upload(iris_csv(11)))
    assert response.status_code == 400
    codes = [e.code for e in response.context["form"].errors.as_data()["__all__"]]
    assert codes == ["quota_exceeded"]
    assert used(tight) == 0


def test_status_json_is_the_api_shape_and_only_for_the_owner(client, owner, make_subscriber):
    client.post("/portal/jobs/", upload(iris_csv(3)))
    job = BatchJob.objects.get()
    body = client.get(f"/portal/jobs/{job.pk}/status").json()
    assert body["id"] == str(job.pk) and body["status"] == "queued"
    assert (body["rows_total"], body["rows_done"], body["rows_failed"]) == (3, 0, 0)
    client.force_login(make_subscriber().user)
    for url in (f"/portal/jobs/{job.pk}/status", f"/portal/jobs/{job.pk}/results.csv"):
        assert client.get(url).status_code == 404
    assert client.post(f"/portal/jobs/{job.pk}/cancel/").status_code == 404
    job.refresh_from_db()
    assert job.status == "queued"


def test_status_polling_is_neither_metered_nor_recorded_as_usage(
    client, make_subscriber, demo_models
):
    from usage.selectors import daily_usage

    small = make_subscriber(plan="tiny-burst", rate=0.01, burst=2)
    client.force_login(small.user)
    client.post("/portal/jobs/", upload(iris_csv(3)))
    job = BatchJob.objects.get()
    for _ in range(30):  # far more than the plan's burst of 2
        assert client.get(f"/portal/jobs/{job.pk}/status").status_code == 200
    today = timezone.now().date()
    day = daily_usage(subscription=small, start=today, end=today)[0]
    assert (day["requests"], day["throttled"]) == (1, 0)  # the upload only


def test_cancelling_a_queued_job_refunds_its_rows(client, owner):
    client.post("/portal/jobs/", upload(iris_csv(8)))
    job = BatchJob.objects.get()
    assert used(owner) == 8
    response = client.post(f"/portal/jobs/{job.pk}/cancel/")
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and used(owner) == 0
    again = client.post(f"/portal/jobs/{job.pk}/cancel/", follow=True)
    assert again.status_code == 200


def test_cancel_takes_only_a_post(client, owner):
    client.post("/portal/jobs/", upload(iris_csv(2)))
    job = BatchJob.objects.get()
    assert client.get(f"/portal/jobs/{job.pk}/cancel/").status_code == 405


def test_cancelling_a_finished_job_says_why(client, owner):
    client.post("/portal/jobs/", upload(iris_csv(3)))
    job = BatchJob.objects.get()
    runner.run_batch_job(job_id=str(job.pk))
    page = client.post(f"/portal/jobs/{job.pk}/cancel/", follow=True).content.decode()
    assert "already succeeded" in page


def test_results_download_after_the_job_ran(client, owner):
    client.post("/portal/jobs/", upload(iris_csv(6)))
    job = BatchJob.objects.get()
    assert client.get(f"/portal/jobs/{job.pk}/results.csv").status_code == 404
    runner.run_batch_job(job_id=str(job.pk))
    status = client.get(f"/portal/jobs/{job.pk}/status").json()
    assert status["status"] == "succeeded" and status["rows_done"] == 6
    response = client.get(f"/portal/jobs/{job.pk}/results.csv")
    assert response.status_code == 200
    assert 'filename="flowers-predictions.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["prediction"] for r in rows] == [IRIS_ROWS[i % 3][1] for i in range(6)]
    listing = client.get("/portal/jobs/").content.decode()
    assert f'href="/portal/jobs/{job.pk}/results.csv"' in listing


def test_job_pages_need_a_login(client):
    for url in ("/portal/jobs/", "/portal/jobs/00000000-0000-0000-0000-000000000000/status"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/portal/login/")


@pytest.mark.parametrize("status", ["pending", "suspended"])
def test_an_inactive_subscription_cannot_start_jobs(client, make_subscriber, demo_models, status):
    inactive = make_subscriber(status=status)
    client.force_login(inactive.user)
    page = client.get("/portal/jobs/")
    assert "new jobs cannot start" in page.content.decode()
    response = client.post("/portal/jobs/", upload(iris_csv(3)))
    assert response.status_code == 403
    assert not BatchJob.objects.exists() and used(inactive) == 0


def test_a_portal_upload_counts_its_rows_as_predictions_in_usage(client, owner):
    from usage.selectors import daily_usage

    client.post("/portal/jobs/", upload(iris_csv(9)))
    today = timezone.now().date()
    day = daily_usage(subscription=owner, start=today, end=today)[0]
    assert (day["requests"], day["predictions"], day["quota_used"]) == (1, 9, 9)


def test_a_status_poll_costs_four_queries_at_most(client, owner, django_assert_max_num_queries):
    client.post("/portal/jobs/", upload(iris_csv(3)))
    job = BatchJob.objects.get()
    with django_assert_max_num_queries(4):  # session, user, subscription + plan, job + model
        assert client.get(f"/portal/jobs/{job.pk}/status").status_code == 200


def test_the_jobs_page_shows_throughput_and_an_eta_while_a_job_runs(client, owner):
    from datetime import timedelta

    client.post("/portal/jobs/", upload(iris_csv(30)))
    job = BatchJob.objects.get()
    BatchJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, rows_done=10, started_at=timezone.now() - timedelta(seconds=5)
    )
    status = client.get(f"/portal/jobs/{job.pk}/status").json()
    assert 1.5 < status["rows_per_second"] <= 2.0  # 10 rows in about 5 s
    assert 9 < status["eta_seconds"] <= 10.5  # 20 rows to go at that pace
    assert 'data-field="speed"' in client.get("/portal/jobs/").content.decode()
    BatchJob.objects.filter(pk=job.pk).update(rows_done=0)  # the 10 rows above were made up
    runner.run_batch_job(job_id=str(job.pk))
    done = client.get(f"/portal/jobs/{job.pk}/status").json()
    assert done["status"] == "succeeded" and done["eta_seconds"] == 0.0
    assert done["rows_per_second"] > 0 and done["workers"] == 0
