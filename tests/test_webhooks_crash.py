"""A worker SIGKILLed in the middle of a delivery loses no event.

Worker subprocesses (`celery -A mlapi worker`) on the test database and broker. The receiver
holds the first attempt open; the worker is killed while it waits. The attempt's lease expires,
the sweep (a beat task; run here by the test) re-enqueues the delivery, and a second worker
delivers it with the same webhook-id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings

from tests.servers import database_url
from tests.support.jobs import BASE_DIR, wait_for
from tests.support.webhook_helpers import org_with_owner, verified
from tests.support.webhook_receiver import Receiver
from webhooks import dispatch, services
from webhooks.models import Delivery

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
QUEUE = f"mlapi-webhooks-crash-{uuid.uuid4().hex[:12]}"
TIMING = {"MLAPI_WEBHOOK_TIMEOUT_S": "5", "MLAPI_WEBHOOK_LEASE_S": "6"}


@pytest.fixture
def crash_settings(settings):
    settings.MLAPI_WEBHOOK_ALLOW_HTTP = settings.MLAPI_WEBHOOK_ALLOW_PRIVATE = True
    settings.MLAPI_WEBHOOK_QUEUE = QUEUE
    settings.MLAPI_WEBHOOK_TIMEOUT_S, settings.MLAPI_WEBHOOK_LEASE_S = 5.0, 6.0
    return settings


@pytest.fixture
def start_worker(tmp_path):
    started: list[subprocess.Popen] = []
    log = (tmp_path / "worker.log").open("ab")

    def start() -> subprocess.Popen:
        env = dict(os.environ) | TIMING
        env.update(
            DATABASE_URL=database_url(),
            MLAPI_DATA_DIR=str(settings.DATA_DIR),
            MLAPI_TESTING="1",
            CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
            MLAPI_USAGE_RECORDING="0",
            MLAPI_WEBHOOK_QUEUE=QUEUE,
            MLAPI_WEBHOOK_ALLOW_HTTP="1",
            MLAPI_WEBHOOK_ALLOW_PRIVATE="1",
        )
        command = [
            sys.executable, "-m", "celery", "-A", "mlapi", "worker", "--pool", "solo",
            "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel", "INFO",
            "--queues", QUEUE,
        ]  # fmt: skip
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=log)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    log.close()


def test_a_worker_killed_mid_delivery_loses_no_event(crash_settings, start_worker):
    subscription, _, _ = org_with_owner()
    with Receiver(["hang", "ok"]) as receiver:
        endpoint, secret = services.create_webhook_endpoint(
            organization=subscription.organization, url=receiver.url, events=["key.revoked"]
        )
        first = start_worker()
        services.send_test_ping(endpoint=endpoint)
        assert receiver.got_request.wait(60), "the first worker never attempted the delivery"
        first.send_signal(signal.SIGKILL)  # mid-delivery: the receiver still holds the request
        first.wait(timeout=10)
        delivery = Delivery.objects.get(endpoint=endpoint)
        assert delivery.status == "pending" and delivery.attempts == 1
        assert delivery.lease_until is not None  # held by the dead worker

        start_worker()
        wait_for(lambda: Delivery.objects.due().filter(pk=delivery.pk).exists(), timeout=20)
        dispatch.sweep()  # what beat runs every 15 s
        received = receiver.wait_for(2, timeout=60)
        delivered = wait_for(
            lambda: Delivery.objects.filter(pk=delivery.pk, status="succeeded").first(), 30
        )
    assert delivered.attempts == 2
    assert received[0].headers["webhook-id"] == received[1].headers["webhook-id"]
    assert verified(secret, received[1])["type"] == "ping"
    time.sleep(0.2)
