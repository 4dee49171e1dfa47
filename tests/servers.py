"""Live servers for tests: the same commands `make run` uses (gunicorn; gRPC), on a free port.

`GunicornServer(env={...}).start()` runs `python -m gunicorn mlapi.wsgi:application` with
mlapi/gunicorn_conf.py against this test process's database and data dir, waits for
/healthz, and `stop()` sends SIGTERM (gunicorn's graceful shutdown) and waits. Server output
goes to a log file, so a failing test can show it (`server.log_text()`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import requests
from django.conf import settings
from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port nothing listens on right now (bound to 0 and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The URL of the test database this process uses, for a server subprocess."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class ServerProcess:
    """A server the test started as a child process (`self.process`, output in `self.log`):
    a context manager whose `stop()` sends SIGTERM (graceful) and kills it if it hangs."""

    process: subprocess.Popen | None
    log: IO[bytes]

    def start(self) -> ServerProcess:
        raise NotImplementedError

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (graceful: in-flight requests finish, usage is flushed); kill if it hangs."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log_text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-20000:]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self.log.close()


class GunicornServer(ServerProcess):
    """One gunicorn master (sync workers by default) serving mlapi on 127.0.0.1:<free port>."""

    def __init__(
        self,
        *,
        env: dict[str, str] | None = None,
        workers: int = 2,
        extra_args: list[str] | None = None,
        app: str = "mlapi.wsgi:application",
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "mlapi.settings",
            "MLAPI_TESTING": "1",
            "DJANGO_DEBUG": "0",
            "DATABASE_URL": database_url(),
            "MLAPI_DATA_DIR": str(settings.DATA_DIR),
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="mlapi-test-metrics-"),
            **(env or {}),
        }
        self.command = [
            sys.executable, "-m", "gunicorn", app,
            "-c", str(BASE_DIR / "mlapi" / "gunicorn_conf.py"),
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(workers),
            *(extra_args or []),
        ]  # fmt: skip
        self.log = tempfile.NamedTemporaryFile(prefix="mlapi-gunicorn-", suffix=".log")  # noqa: SIM115
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> GunicornServer:
        self.process = subprocess.Popen(
            self.command, cwd=BASE_DIR, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited during start-up:\n{self.log_text()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"gunicorn did not come up:\n{self.log_text()}")


class GrpcServer(ServerProcess):
    """The gRPC data plane (`python -m predictions.grpc`, the `grpc` role) on a free port.

    Same database and data dir as this test process; `start()` waits until the standard health
    service answers SERVING; `stop()` sends SIGTERM (graceful: in-flight calls finish, buffered
    usage is flushed) and returns the exit code. gRPC channels are made only after the fork.
    """

    def __init__(self, *, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "mlapi.settings",
            "MLAPI_TESTING": "1",
            "DJANGO_DEBUG": "0",
            "DATABASE_URL": database_url(),
            "MLAPI_DATA_DIR": str(settings.DATA_DIR),
            "HOST": "127.0.0.1",
            "MLAPI_GRPC_PORT": str(self.port),
            **(env or {}),
        }
        self.command = [sys.executable, "-m", "predictions.grpc"]
        self.log = tempfile.NamedTemporaryFile(prefix="mlapi-grpc-", suffix=".log")  # noqa: SIM115
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0, *, root_certificates: bytes | None = None) -> GrpcServer:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        self.process = subprocess.Popen(
            self.command, cwd=BASE_DIR, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the gRPC server exited during start-up:\n{self.log_text()}")
            if root_certificates is None:
                channel = grpc.insecure_channel(self.address)
            else:
                credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
                channel = grpc.secure_channel(self.address, credentials)
            try:
                stub = health_pb2_grpc.HealthStub(channel)
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return self
            except grpc.RpcError:
                time.sleep(0.1)
            finally:
                channel.close()
        self.stop()
        raise AssertionError(f"the gRPC server did not come up:\n{self.log_text()}")
