"""Faults on a live gunicorn (service run): Redis, the database or the broker goes away.

Each store is made unreachable for one server only, never for the shared services: Redis is a
redis-server of this test's own on a spare port; the database is reached through a TCP relay
this test can cut (every open connection dropped, new ones refused) and restore; the broker
URL points at a closed port. Expected: 503 `service_unavailable` problems (never a 500 or a
trace), /readyz names the component, nothing half-created, and recovery without a restart.
(SIGTERM under load is tests/test_usage_live.py's, not repeated here.)
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable

import pytest
import requests

from keys.models import QuotaCounter
from predictions.models import BatchJob
from tests.factories import ApiKeyFactory, PlanFactory, SubscriptionFactory
from tests.servers import GunicornServer, database_url, free_port

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

IRIS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
TRACE_MARKERS = ("Traceback", 'File "', "OperationalError", "psycopg", "redis.exceptions")


def subscriber_key() -> tuple:
    plan = PlanFactory(rate=100_000.0, burst=100_000, quota=1_000_000)
    subscription = SubscriptionFactory(plan=plan)
    return subscription, ApiKeyFactory(subscription=subscription).plaintext


def predict(url: str, key: str) -> requests.Response:
    return requests.post(
        f"{url}/api/v1/models/iris/predict", json=IRIS, headers={"X-API-Key": key}, timeout=30
    )


def assert_unavailable(response: requests.Response) -> None:
    """A 503 problem with the contract's code, and nothing of the server's insides."""
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "service_unavailable"
    assert not any(marker in response.text for marker in TRACE_MARKERS), response.text


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


class RedisProcess:
    """A redis-server of this test's own (no persistence) that can be stopped and restarted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed")
        self.process = subprocess.Popen(
            [binary, *("--port", str(self.port), "--bind", "127.0.0.1"), "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        assert wait_for(self._answers, 10), "own redis-server did not start"

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class Relay:
    """A TCP relay to PostgreSQL: `cut()` drops every connection and refuses new ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()

    def open(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self.listener is not None:
            with contextlib.suppress(OSError):  # wakes the accept() blocked on it
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            self.listener = None
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.sockets = []


def test_redis_outage_fails_closed_with_503_names_the_cache_and_recovers_by_itself(
    redis_url, live_demo_models
):
    subscription, key = subscriber_key()
    redis = RedisProcess()
    redis.start()
    server = GunicornServer(env={"REDIS_URL": f"redis://127.0.0.1:{redis.port}/0"})
    try:
        server.start()
        assert predict(server.url, key).status_code == 200
        used = QuotaCounter.objects.get(subscription=subscription).used
        redis.stop()
        for _ in range(6):  # every worker, not only the first to notice
            assert_unavailable(predict(server.url, key))
        ready = requests.get(f"{server.url}/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["components"]["cache"]["status"] == "unavailable"
        assert ready.json()["components"]["database"]["status"] == "ok"
        assert QuotaCounter.objects.get(subscription=subscription).used == used  # none spent
        redis.start()
        assert wait_for(lambda: predict(server.url, key).status_code == 200)
        assert all(predict(server.url, key).status_code == 200 for _ in range(6))
        assert requests.get(f"{server.url}/readyz", timeout=30).status_code == 200
    finally:
        server.stop()
        redis.stop()
    assert "Traceback" not in server.log_text()


def test_database_outage_answers_503_problems_never_500_and_recovers_by_itself(
    postgres_url, live_demo_models
):
    _, key = subscriber_key()
    url = database_url()
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0])
    relay = Relay((host, port))
    relay.open()
    via_relay = url.replace(f":{port}/", f":{relay.port}/")
    server = GunicornServer(env={"DATABASE_URL": via_relay})
    try:
        server.start()
        assert predict(server.url, key).status_code == 200
        relay.cut()
        for _ in range(6):
            assert_unavailable(predict(server.url, key))
            assert_unavailable(requests.get(f"{server.url}/api/v1/plans", timeout=30))
        ready = requests.get(f"{server.url}/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["components"]["database"]["status"] == "unavailable"
        # A portal page behind a session: the session store is the database.
        portal = requests.get(f"{server.url}/portal/", cookies={"sessionid": "x" * 32}, timeout=30)
        assert portal.status_code == 503
        assert not any(marker in portal.text for marker in TRACE_MARKERS)
        relay.open()
        assert wait_for(lambda: predict(server.url, key).status_code == 200)
        assert all(predict(server.url, key).status_code == 200 for _ in range(6))
        assert requests.get(f"{server.url}/readyz", timeout=30).status_code == 200
    finally:
        server.stop()
        relay.cut()


def test_broker_outage_refuses_job_submission_with_503_and_creates_nothing(live_demo_models):
    subscription, key = subscriber_key()
    closed = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    with GunicornServer(env={"CELERY_BROKER_URL": closed}) as server:
        response = requests.post(
            f"{server.url}/api/v1/jobs",
            json={"model": "iris", "instances": [[5.1, 3.5, 1.4, 0.2]] * 5},
            headers={"X-API-Key": key},
            timeout=30,
        )
        assert_unavailable(response)
        assert not BatchJob.objects.filter(subscription=subscription).exists()
        counter = QuotaCounter.objects.filter(subscription=subscription).first()
        assert counter is None or counter.used == 0  # the 5 rows were refunded or never taken
        ready = requests.get(f"{server.url}/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["components"]["broker"]["status"] == "unavailable"
