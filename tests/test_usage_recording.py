"""Recording: what the middleware writes, the buffered writer, retries, the spool, retention."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from prometheus_client import REGISTRY

from tests.factories import usage_event as event
from tests.support.usage import make_subscription
from usage.middleware import protocol_for_path
from usage.models import DailyUsage, UsageRecord
from usage.recording import UsageBuffer, flush_usage, record_usage
from usage.spool import spool_dir
from usage.tasks import prune_usage_records
from usage.writer import write_events

URLS = pytest.mark.urls("tests.support.usage")


@pytest.fixture
def sync_mode(settings):
    settings.MLAPI_USAGE_MODE = "sync"  # the test default too; explicit for these tests


def predict(client, sub, key=None, body=b'{"n": 3}', model="iris"):
    headers = {"HTTP_X_TEST_SUB": str(sub.pk)}
    if key:
        headers["HTTP_X_TEST_KEY"] = str(key.pk)
    return client.post(
        f"/api/v1/models/{model}/predict", body, content_type="application/json", **headers
    )


@URLS
@pytest.mark.django_db
def test_middleware_records_every_field_of_an_answered_request(sync_mode):
    sub, (key, _) = make_subscription()
    response = predict(Client(), sub, key)
    assert response.status_code == 200
    record = UsageRecord.objects.get(subscription=sub)
    assert (record.key_id, record.model_name, record.model_version) == (key.pk, "iris", "1")
    assert (record.protocol, record.method, record.path) == ("v1", "POST", record.path)
    assert (record.status, record.error_code, record.predictions) == (200, "", 3)
    assert record.request_bytes == len(b'{"n": 3}')
    assert record.response_bytes == len(response.content)
    assert record.latency_ms > 0 and record.plan_name == sub.plan.name


@URLS
@pytest.mark.django_db
def test_jwt_requests_are_recorded_without_a_key(sync_mode):
    sub, _ = make_subscription()
    predict(Client(), sub)
    assert UsageRecord.objects.get(subscription=sub).key_id is None
    assert DailyUsage.objects.get(subscription=sub).key_id == 0


@URLS
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "code"), [(b'{"n": 0}', "validation_error"), (b"{nope", "invalid_json")]
)
def test_a_refused_request_records_its_error_code_and_no_predictions(sync_mode, body, code):
    sub, _ = make_subscription()
    assert predict(Client(), sub, body=body).status_code == 400
    record = UsageRecord.objects.get(subscription=sub)
    assert (record.status, record.error_code, record.predictions) == (400, code, 0)
    assert DailyUsage.objects.get(subscription=sub).errors == 1


@URLS
@pytest.mark.django_db
def test_429s_are_recorded_as_throttled_not_errors(sync_mode):
    sub, _ = make_subscription(rate=0.001, burst=1, quota=2)
    client = Client()
    statuses = [predict(client, sub, body=b'{"n": 1}').status_code for _ in range(3)]
    assert statuses == [200, 429, 429]
    assert list(UsageRecord.objects.filter(status=429).values_list("error_code", flat=True)) == [
        "rate_limited",
        "rate_limited",
    ]
    rollup = DailyUsage.objects.get(subscription=sub)
    assert (rollup.requests, rollup.errors, rollup.throttled, rollup.predictions) == (3, 0, 2, 1)


@pytest.mark.django_db
def test_requests_without_a_principal_are_not_recorded(sync_mode):
    sub, _ = make_subscription()
    client = Client()
    client.get("/healthz")
    client.get("/api/v1/models/iris/predict")
    client.force_login(sub.user)
    client.get("/api/v1/usage")
    assert not UsageRecord.objects.exists()


@pytest.mark.parametrize(
    ("path", "protocol"),
    [
        ("/api/v1/models/iris/predict", "v1"),
        ("/api/v1/models/iris/versions/2/predict", "v1"),
        ("/api/v1/models", "models"),
        ("/api/v1/models/iris", "models"),
        ("/v2/models/iris/infer", "v2"),
        ("/v2/models/iris/versions/1/infer", "v2"),
        ("/v1/models/iris:predict", "kserve-v1"),
        ("/api/v1/jobs", "jobs"),
        ("/api/v1/jobs/5/results", "jobs"),
        ("/api/v1/other", "other"),
    ],
)
def test_protocol_is_derived_from_the_path(path, protocol):
    assert protocol_for_path(path) == protocol


@URLS
@pytest.mark.django_db
def test_metrics_count_requests_by_model_protocol_plan_and_outcome(sync_mode):
    sub, _ = make_subscription(rate=0.001, burst=1)
    labels = {"model": "iris", "protocol": "v1", "plan": sub.plan.name}

    def value(outcome):
        return REGISTRY.get_sample_value(
            "mlapi_predict_requests_total", {**labels, "outcome": outcome}
        )

    client = Client()
    predict(client, sub)
    predict(client, sub)
    predict(client, sub, body=b'{"n": 0}')
    assert (value("ok"), value("rate_limited"), value("validation_error")) == (1.0, 1.0, 1.0)
    assert b'outcome="rate_limited"' in client.get("/metrics").content


@pytest.mark.django_db(transaction=True)
def test_buffered_events_from_many_threads_are_all_written(settings):
    settings.MLAPI_USAGE_MODE = "buffered"
    sub, (key, _) = make_subscription()
    today = datetime.now(UTC).date()

    def worker():
        for _ in range(50):
            record_usage(event(sub, day=today, key=key, n=2))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flush_usage()
    assert UsageRecord.objects.filter(subscription=sub).count() == 400
    rollup = DailyUsage.objects.get(subscription=sub)
    assert (rollup.requests, rollup.predictions) == (400, 800)


@contextlib.contextmanager
def database_locked(seconds: float):
    """Hold the database's write lock from another connection for `seconds` (in a thread)."""
    if connection.vendor == "sqlite":
        other = sqlite3.connect(connection.settings_dict["NAME"], check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
    else:
        import psycopg

        db = connection.settings_dict
        other = psycopg.connect(
            host=db["HOST"] or "127.0.0.1",
            port=db["PORT"] or 5432,
            user=db["USER"],
            dbname=db["NAME"],
        )
        other.execute("LOCK TABLE usage_dailyusage IN ACCESS EXCLUSIVE MODE")
    release = threading.Timer(seconds, other.rollback)
    release.start()
    try:
        yield
    finally:
        release.join()
        other.close()


def short_lock_waits() -> None:
    """Make this connection give up on a lock after 50 ms instead of waiting 30 s."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA busy_timeout = 50")
        else:
            cursor.execute("SET lock_timeout = '50ms'")


@pytest.mark.django_db(transaction=True)
def test_a_write_refused_while_the_database_is_locked_is_retried(caplog):
    sub, _ = make_subscription()
    buffer = UsageBuffer()
    for _ in range(10):
        buffer._events.append(event(sub, day=datetime.now(UTC).date()))
    short_lock_waits()
    with caplog.at_level(logging.WARNING, "mlapi.usage"), database_locked(0.4):
        written = buffer.flush(attempts=8)
    assert written == 10 and buffer.pending() == 0
    assert "try 1" in caplog.text  # it did fail first
    assert UsageRecord.objects.filter(subscription=sub).count() == 10


@pytest.mark.django_db(transaction=True)
def test_events_the_database_refuses_at_exit_are_spooled_and_replayed():
    sub, _ = make_subscription()
    buffer = UsageBuffer()
    for _ in range(7):
        buffer._events.append(event(sub, day=datetime.now(UTC).date(), n=2))
    short_lock_waits()
    with database_locked(2.5):
        buffer.flush_at_exit()
        assert buffer.pending() == 0
        assert len(list(spool_dir().glob("*.jsonl"))) == 1
    time.sleep(0.1)
    UsageBuffer().flush()  # any later flush, in any process, replays the spool
    assert not list(spool_dir().glob("*.jsonl"))
    assert UsageRecord.objects.filter(subscription=sub).count() == 7
    assert DailyUsage.objects.get(subscription=sub).predictions == 14


@pytest.mark.django_db(transaction=True)  # foreign keys are checked at commit
def test_events_of_a_deleted_key_are_kept_without_the_key():
    sub, (key, _) = make_subscription()
    stale = event(sub, day=datetime.now(UTC).date(), key=key)
    key.delete()
    write_events([stale])
    assert UsageRecord.objects.get(subscription=sub).key_id is None


@pytest.mark.django_db
def test_prune_removes_raw_records_past_retention_and_keeps_rollups(settings):
    settings.MLAPI_USAGE_RETENTION_DAYS = 90
    sub, _ = make_subscription()
    now = datetime.now(UTC)
    old, recent = (now - timedelta(days=91)).date(), (now - timedelta(days=89)).date()
    write_events([event(sub, day=old)] * 3 + [event(sub, day=recent)] * 2)
    call_command("prune_usage")
    assert list(UsageRecord.objects.values_list("time__date", flat=True)) == [recent, recent]
    assert {r.day: r.requests for r in DailyUsage.objects.all()} == {old: 3, recent: 2}


@pytest.mark.django_db
def test_prune_task_and_days_option_use_the_same_rule(settings):
    sub, _ = make_subscription()
    write_events([event(sub, day=(datetime.now(UTC) - timedelta(days=10)).date())])
    settings.MLAPI_USAGE_RETENTION_DAYS = 30
    assert prune_usage_records() == 0
    call_command("prune_usage", "--days", "5")
    assert not UsageRecord.objects.exists() and DailyUsage.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_event_the_database_refuses_does_not_block_the_others():
    from dataclasses import replace

    sub, _ = make_subscription()
    good = event(sub, day=datetime.now(UTC).date())
    write_events([good, replace(good, status=999), good])  # 999 breaks the status constraint
    assert UsageRecord.objects.filter(subscription=sub).count() == 2
    assert DailyUsage.objects.get(subscription=sub).requests == 2
