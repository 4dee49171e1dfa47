"""Exactness across processes: 3 gunicorn workers (4 threads each) share one subscription.

The per-process caches (keys, predictors) and the atomic statements in the shared database
(and Redis, when configured) are what keep the limits exact across processes; this test
drives 32 client threads at a real multi-process server on a free port.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.utils import timezone

from keys.keycache import TTL as KEY_CACHE_TTL
from keys.models import ApiKey, QuotaCounter
from tests.factories import ApiKeyFactory, PlanFactory, SubscriptionFactory
from tests.servers import database_url, free_port
from tests.support.load import THREADS, hammer, quota_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
BASE_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture
def gunicorn_url(live_demo_models):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "MLAPI_DATA_DIR": str(settings.DATA_DIR),
        "DJANGO_DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "mlapi.settings",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "mlapi.wsgi:application",
            "-c",
            str(BASE_DIR / "mlapi" / "gunicorn_conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "3",
            "--worker-class",
            "gthread",
            "--threads",
            "4",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            pytest.fail("gunicorn did not start")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_several_processes_admit_exactly_the_quota_and_see_revocation_within_a_second(
    gunicorn_url,
):
    quota = 300
    plan = PlanFactory(rate=100_000.0, burst=100_000, quota=quota, quota_period="week")
    subscription = SubscriptionFactory(plan=plan)
    key = ApiKeyFactory(subscription=subscription)
    admitted = hammer(f"{gunicorn_url}/api/v1/models/iris/predict", key.plaintext, quota_worker)
    assert sum(admitted) == quota
    assert QuotaCounter.objects.get(subscription=subscription).used == quota
    # Every worker has the key cached now; revoke it elsewhere (this process, the database).
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    time.sleep(KEY_CACHE_TTL + 0.1)
    with requests.Session() as session:
        codes = {
            session.get(
                f"{gunicorn_url}/api/v1/models", headers={"X-API-Key": key.plaintext}, timeout=10
            ).json()["code"]
            for _ in range(24)
        }
    assert codes == {"key_revoked"}
    print(
        f"\nprocesses: 3 gunicorn workers x 4 threads, {THREADS} client threads, "
        f"{len(admitted)} requests admitted, {sum(admitted)} predictions, quota {quota}"
    )
