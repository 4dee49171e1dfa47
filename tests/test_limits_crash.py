"""The lease store under crashes and across nodes, on real PostgreSQL and Redis.

* (d) PostgreSQL crashes (`pg_ctl stop -m immediate`, a private cluster) while a process
  spends a quota: what was delivered never exceeds the counter PostgreSQL recovers.
* (b) gunicorn web workers are SIGKILLed at random moments under load: never one prediction
  over the quota; what the kills strand is bounded.
* (e) two nodes spend a quota that is served from the shared pool: exactly the quota, nothing
  stranded; and the token bucket stays within burst + rate x elapsed across the nodes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import psutil
import psycopg
import pytest

from bench.stores import PrivatePostgres, PrivateRedis, postgres_available, redis_available
from keys.limits import quota_status
from keys.models import QuotaCounter
from tests.factories import ApiKeyFactory, PlanFactory, SubscriptionFactory
from tests.servers import BASE_DIR, GunicornServer
from tests.support.load import predict, spend_quota

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
DRIVER = ["-m", "tests.support.limits_driver"]  # run from BASE_DIR
FRACTION = "0.02"


@pytest.fixture
def private_stores(postgres_url, redis_url):
    if not (postgres_available() and redis_available()):
        pytest.fail("PostgreSQL 15 binaries and redis-server are needed")
    pg = PrivatePostgres().start()
    redis = PrivateRedis().start()
    try:
        yield pg, redis
    finally:
        redis.close()
        pg.close()


def driver(env: dict, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *DRIVER, *args],
        cwd=BASE_DIR, env=env, text=True, stdout=subprocess.PIPE, **popen,
    )  # fmt: skip


class Tally:
    """Counts the `ok <units>` lines of a driver as they arrive."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.delivered = 0
        self.refused_503 = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            with self.lock:
                if line.startswith("ok "):
                    self.delivered += int(line.split()[1])
                elif line.startswith("503"):
                    self.refused_503 += 1


def test_a_postgres_crash_never_lets_more_be_delivered_than_the_recovered_counter(
    private_stores,
):
    pg, redis = private_stores
    quota = 3000
    env = {
        **os.environ,
        "DATABASE_URL": pg.create_database("mlapi"),
        "REDIS_URL": redis.url(),
        "MLAPI_LIMITS_LEASE_FRACTION": FRACTION,
        "MLAPI_DATA_DIR": tempfile.mkdtemp(prefix="mlapi-driver-"),
        "DJANGO_DEBUG": "1",
    }
    sub_id = int(subprocess.run(
        [sys.executable, *DRIVER, "setup", str(quota)],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()[-1])  # fmt: skip
    spender = driver(env, "spend", str(sub_id), "8")
    tally = Tally(spender)
    try:
        _wait(lambda: tally.delivered >= 800, 60)
        pg.crash()
        time.sleep(0.5)  # the pool keeps serving what was leased durably; then 503s
        spender.send_signal(signal.SIGSTOP)  # no more deliveries while we look
        time.sleep(0.3)
        delivered_by_now = tally.delivered
        pg.start()
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            recovered = conn.execute(
                "SELECT used FROM keys_quotacounter WHERE subscription_id = %s", [sub_id]
            ).fetchone()[0]
        assert delivered_by_now <= recovered
        spender.send_signal(signal.SIGCONT)
        spender.wait(120)
        tally.thread.join(10)
    finally:
        if spender.poll() is None:
            spender.kill()
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        final = conn.execute(
            "SELECT used FROM keys_quotacounter WHERE subscription_id = %s", [sub_id]
        ).fetchone()[0]
    lease_max = int(quota * float(FRACTION))
    assert final == quota
    assert quota - lease_max <= tally.delivered <= quota  # at most one lease stranded
    print(
        f"\npostgres crash: {delivered_by_now} delivered at the crash <= {recovered} recovered; "
        f"{tally.delivered} of {quota} in all, {tally.refused_503} 503s during the outage"
    )


def test_sigkilled_web_workers_never_cause_over_admission(redis_url, live_demo_models):
    quota, kills = 3000, 8
    plan = PlanFactory(rate=1e6, burst=10**9, quota=quota, quota_period="month")
    subscription = SubscriptionFactory(plan=plan)
    key = ApiKeyFactory(subscription=subscription).plaintext
    env = {"REDIS_URL": redis_url, "MLAPI_LIMITS_LEASE_FRACTION": FRACTION}
    server = GunicornServer(workers=3, env=env)
    delivered, lock, stop = [0], threading.Lock(), threading.Event()

    def client() -> None:
        import requests

        rng, size = random.Random(), None
        with requests.Session() as session:
            session.headers["X-API-Key"] = key
            while not stop.is_set():
                units = size or rng.randint(1, 3)
                try:
                    status, code, response = predict(session, f"{server.url}{PREDICT}", units)
                except requests.RequestException:
                    continue  # the worker died with this request: nothing delivered
                if status == 200:
                    with lock:
                        delivered[0] += len(response.json()["predictions"])
                elif code == "quota_exceeded":
                    if units == 1:
                        return
                    size = 1

    try:
        server.start()
        threads = [threading.Thread(target=client) for _ in range(12)]
        for thread in threads:
            thread.start()
        for _ in range(kills):
            time.sleep(random.uniform(0.2, 0.6))
            workers = psutil.Process(server.process.pid).children()
            if workers:
                os.kill(random.choice(workers).pid, signal.SIGKILL)
        for thread in threads:
            thread.join(180)
        stop.set()
    finally:
        stop.set()
        server.stop()
    lease_max = int(quota * float(FRACTION))
    held = 16 * (1 + 2 + 3)  # a reservation per request size (MLAPI_LIMITS_RESERVE_MAX)
    assert delivered[0] <= quota
    # Per kill: one lease, the worker's reservations and the request it was answering.
    assert quota - delivered[0] <= kills * (lease_max + held + 3)
    assert QuotaCounter.objects.get(subscription=subscription).used == quota
    print(f"\nSIGKILL x{kills}: {delivered[0]} of {quota} delivered")


PREDICT = "/api/v1/models/iris/predict"


def test_two_nodes_spend_a_pooled_quota_exactly_and_share_one_token_bucket(
    postgres_url, redis_url, live_demo_models
):
    quota = 2400
    plan = PlanFactory(rate=1e6, burst=10**9, quota=quota, quota_period="day")
    subscription = SubscriptionFactory(plan=plan)
    key = ApiKeyFactory(subscription=subscription).plaintext
    slow = SubscriptionFactory(plan=PlanFactory(rate=20.0, burst=10, quota=10**6))
    slow_key = ApiKeyFactory(subscription=slow).plaintext
    env = {"REDIS_URL": redis_url, "MLAPI_LIMITS_LEASE_FRACTION": FRACTION}
    nodes = [GunicornServer(workers=2, env=env) for _ in range(2)]
    answered: list = []
    admitted: list[int] = []
    try:
        for node in nodes:
            node.start()
        urls = [node.url for node in nodes]
        threads = [
            threading.Thread(target=spend_quota, args=(urls, key, i, answered, admitted))
            for i in range(32)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        bucket = _bucket_across(urls, slow_key, seconds=1.5)
    finally:
        for node in nodes:
            node.stop()
    assert not [a for a in answered if not isinstance(a, int)], answered[:3]
    assert sum(admitted) == quota == QuotaCounter.objects.get(subscription=subscription).used
    subscription.refresh_from_db()
    assert quota_status(subscription=subscription).remaining == 0
    admitted_fast, elapsed = bucket
    assert 10 <= admitted_fast <= 10 + 20.0 * elapsed


def _bucket_across(urls: list[str], key: str, *, seconds: float) -> tuple[int, float]:
    import requests

    admitted, lock = [0], threading.Lock()
    began = time.monotonic()

    def run(url: str) -> None:
        with requests.Session() as session:
            session.headers["X-API-Key"] = key
            while time.monotonic() - began < seconds:
                status, code, _ = predict(session, f"{url}{PREDICT}", 1)
                assert status == 200 or code == "rate_limited"
                if status == 200:
                    with lock:
                        admitted[0] += 1

    threads = [threading.Thread(target=run, args=(urls[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return admitted[0], time.monotonic() - began


def _wait(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)
