"""`make run`'s supervisor (python -m mlapi.serve): children come back, signals stop everything.

The real entry point runs against this test's database and a private embedded broker in a temp
dir; the test SIGKILLs the Celery worker (what the OOM killer does) and the gunicorn master,
and the API keeps answering (a job submitted after the worker's death is run by its successor).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.conftest import REQUIRE_SERVICES
from tests.factories import ApiKeyFactory, PlanFactory, SubscriptionFactory
from tests.servers import BASE_DIR, database_url, free_port
from tests.support.stores import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

IRIS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


class Supervisor:
    """`python -m mlapi.serve [roles]` in its own session, its output in a log file."""

    def __init__(self, tmp: Path, *roles: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"serve-{self.port}.log"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "mlapi.settings",
            "MLAPI_TESTING": "1",
            "DJANGO_DEBUG": "0",
            "DATABASE_URL": database_url(),
            "MLAPI_DATA_DIR": str(settings.DATA_DIR),
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="mlapi-test-metrics-"),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "1",
            "CELERY_BROKER_URL": f"embedded+sqlite:///{tmp / 'broker.sqlite3'}",
            "MLAPI_JOB_QUEUE": "",
            "MLAPI_WORKER_QUEUES": "",
            **(env or {}),
        }
        self.command = [sys.executable, "-m", "mlapi.serve", *roles]
        self.process: subprocess.Popen | None = None

    def start(self) -> Supervisor:
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command, cwd=BASE_DIR, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        return self

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pids(self, role: str) -> list[int]:
        """Pids of the role's children, in start order (from the supervisor's log lines)."""
        return [int(p) for p in re.findall(rf"started {role} \(pid (\d+)\)", self.text())]

    def answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        return self.process.returncode


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0) until reaped; its state says it is gone.
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split(")")[-1].split()[0] == "Z"


def predict(url: str, key: str) -> int:
    try:
        return requests.post(
            f"{url}/api/v1/models/iris/predict", json=IRIS, headers={"X-API-Key": key}, timeout=10
        ).status_code
    except requests.RequestException:
        return 0


def test_killed_worker_and_web_master_are_restarted_and_the_api_keeps_answering(
    live_demo_models, tmp_path
):
    subscription = SubscriptionFactory(plan=PlanFactory(rate=100_000.0, burst=100_000))
    key = ApiKeyFactory(subscription=subscription).plaintext
    server = Supervisor(tmp_path).start()
    try:
        assert wait_for(server.answers, 60), server.text()
        assert wait_for(lambda: "ready." in server.text(), 60), server.text()  # celery is up
        assert predict(server.url, key) == 200
        (worker,) = server.pids("worker")

        os.kill(worker, signal.SIGKILL)
        assert all(predict(server.url, key) == 200 for _ in range(5))  # web unaffected
        assert wait_for(lambda: len(server.pids("worker")) == 2, 30), server.text()
        assert re.search(rf"worker \(pid {worker}\) was killed by SIGKILL", server.text())
        job = requests.post(
            f"{server.url}/api/v1/jobs",
            json={"model": "iris", "instances": IRIS["instances"] * 3},
            headers={"X-API-Key": key},
            timeout=10,
        )
        assert job.status_code == 202, job.text

        def job_done() -> bool:
            status = requests.get(
                job.headers["Location"], headers={"X-API-Key": key}, timeout=10
            ).json()["status"]
            return status == "succeeded"

        assert wait_for(job_done, 90), server.text()  # the successor worker consumes it

        (web,) = server.pids("web")
        os.kill(web, signal.SIGKILL)
        assert wait_for(lambda: len(server.pids("web")) == 2, 30), server.text()
        assert wait_for(lambda: predict(server.url, key) == 200, 60), server.text()
        assert wait_for(lambda: gone(web), 10)
        children = server.pids("web") + server.pids("worker")
    finally:
        code = server.stop()
    assert code == 0, server.text()
    assert "SIGTERM received; stopping" in server.text()
    assert all(gone(pid) for pid in children), server.text()
    assert not server.answers()


def test_a_role_that_keeps_crashing_is_reported_as_crash_looping_and_retried_with_backoff(
    tmp_path,
):
    script = (
        "import sys; from mlapi import serve\n"
        "serve.ROLES['boom'] = serve.Role('boom', lambda: [sys.executable, '-c', "
        "'raise SystemExit(3)'])\n"
        "sys.exit(serve.main(['boom']))\n"
    )
    log = tmp_path / "boom.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=BASE_DIR,
            env={**os.environ, "MLAPI_SUPERVISOR_MIN_UPTIME_S": "5"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        started = time.monotonic()
        try:
            assert wait_for(lambda: "crash-looping" in log.read_text(), 30), log.read_text()
        finally:
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=30)
    text = log.read_text()
    assert code == 0, text
    assert "boom (pid" in text and "exited with 3" in text
    assert "restarting in 1 s" in text and "restarting in 2 s" in text  # backoff doubles
    assert "ERROR: boom is crash-looping: 3 crashes in a row" in text
    assert time.monotonic() - started >= 3  # 1 s + 2 s of backoff before the third start
    assert "SIGINT received; stopping" in text


def test_two_nodes_workers_on_one_broker_both_stay_up(live_demo_models, tmp_path):
    """Celery's default node name (celery@host) clashes on RabbitMQ; each worker has its own."""
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("amqp"):
        if REQUIRE_SERVICES:
            pytest.fail("CELERY_BROKER_URL is not RabbitMQ")
        pytest.skip("the node-name clash happens on RabbitMQ (CELERY_BROKER_URL amqp://)")
    queue = f"mlapi-test-nodes-{os.getpid()}"  # consumes nothing another suite publishes
    env = {"CELERY_BROKER_URL": broker, "MLAPI_WORKER_QUEUES": queue}
    nodes = [Supervisor(tmp_path, "worker", env=env) for _ in range(2)]
    try:
        for node in nodes:
            node.start()
        assert wait_for(lambda: all("ready." in n.text() for n in nodes), 60)
        time.sleep(3)  # a clash kills the second worker right after it is ready
        names = {name for n in nodes for name in re.findall(r"(worker-\d+@\S+) ready", n.text())}
        assert len(names) == 2, names
        for node in nodes:
            assert len(node.pids("worker")) == 1, node.text()
            assert "RESOURCE_LOCKED" not in node.text()
    finally:
        codes = [node.stop() for node in nodes]
    assert codes == [0, 0]


def infer_status(address: str, key: str) -> str:
    """One iris ModelInfer on a new connection (so the kernel picks a copy afresh)."""
    import grpc
    from tritonclient.grpc import service_pb2_grpc

    from tests.support.grpc_calls import call, iris_request

    # A local subchannel pool: gRPC would otherwise reuse another channel's connection, maybe
    # to the copy just killed (a client with an open connection sees that once, then redials).
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(address, options=options) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        _, code, details, *_ = call(stub, iris_request(), key, timeout=10)
    return code.name if code == grpc.StatusCode.OK else f"{code.name}: {details}"


def infer_answers(address: str, key: str) -> bool:
    return infer_status(address, key) == "OK"


def test_grpc_copies_share_one_port_and_a_killed_copy_is_replaced(live_demo_models, tmp_path):
    plan = PlanFactory(rate=1000.0, burst=1000, quota=100_000)
    key = ApiKeyFactory(subscription=SubscriptionFactory(plan=plan)).plaintext
    grpc_port = free_port()
    address = f"127.0.0.1:{grpc_port}"
    env = {"MLAPI_GRPC_PROCESSES": "2", "MLAPI_GRPC_PORT": str(grpc_port)}
    supervisor = Supervisor(tmp_path, "grpc", env=env).start()
    try:
        assert wait_for(lambda: len(supervisor.pids("grpc")) == 2, 30), supervisor.text()
        assert wait_for(lambda: infer_answers(address, key), 60), supervisor.text()
        first, second = supervisor.pids("grpc")
        assert wait_for(lambda: supervisor.text().count("mlapi gRPC data plane on") == 2, 60)
        assert all(infer_answers(address, key) for _ in range(10))
        assert not gone(first) and not gone(second)  # both bound the port, neither crashed
        assert len(supervisor.pids("grpc")) == 2, supervisor.text()
        os.kill(first, signal.SIGKILL)
        assert wait_for(lambda: gone(first), 10)
        # The survivor answers at once. A new connection can still be reset (UNAVAILABLE, which
        # gRPC clients retry): one the kernel had handed to the dying copy, or, on a loaded
        # machine, one that meets the replacement while it joins the port (seen in CI).
        assert wait_for(lambda: infer_answers(address, key), 10)
        assert wait_for(lambda: len(supervisor.pids("grpc")) == 3, 30), supervisor.text()
        assert f"grpc (pid {first}) was killed by SIGKILL" in supervisor.text()
        assert wait_for(lambda: supervisor.text().count("mlapi gRPC data plane on") == 3, 60)
        statuses = [infer_status(address, key) for _ in range(10)]  # the replacement is up
        assert statuses == ["OK"] * 10, statuses
        assert len(supervisor.pids("grpc")) == 3 and not gone(second), supervisor.text()
    finally:
        assert supervisor.stop() == 0


def test_grpc_copies_refuse_to_join_whatever_holds_their_port(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {"MLAPI_GRPC_PROCESSES": "2", "MLAPI_GRPC_PORT": str(taken.getsockname()[1])}
        supervisor = Supervisor(tmp_path, "grpc", env=env).start()
        assert supervisor.process.wait(timeout=60) == 1
        supervisor.stop()
    assert "already in use" in supervisor.text()
    assert "started grpc" not in supervisor.text()
