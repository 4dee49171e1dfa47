"""A real S3-speaking server for the tests, and a TCP proxy in front of it that can fail.

`MotoServer` runs moto's standalone server (`moto_server`, a separate process speaking the S3
REST protocol) on a free port. `FaultyProxy` forwards TCP to it and can refuse every connection
(`down()`: the store is unreachable), or hold the requests that contain a marker (`stall(b"...")`:
an upload that never completes), so faults are real network faults, not mocks.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.servers import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class MotoServer:
    """`moto_server` on 127.0.0.1:<free port>, stopped on exit."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        moto = shutil.which("moto_server", path=str(Path(sys.executable).parent))
        command = [moto, "-H", "127.0.0.1", "-p", str(self.port)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ)
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("moto_server did not start")

    def client(self, endpoint: str | None = None):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def storage_env(endpoint: str, url: str) -> dict[str, str]:
    """The environment a process needs to keep its objects in `url` at `endpoint`."""
    return {
        **CREDENTIALS,
        "MLAPI_OBJECT_STORAGE": url,
        "AWS_S3_ENDPOINT_URL": endpoint,
        "MLAPI_OBJECT_STORAGE_CONNECT_TIMEOUT_S": "1",
        "MLAPI_OBJECT_STORAGE_READ_TIMEOUT_S": "5",
    }


class FaultyProxy:
    """TCP proxy 127.0.0.1:<port> → target port, with switchable faults."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._refusing = False
        self._stall_marker: bytes | None = None
        self.stalled: list[bytes] = []  # the first bytes of each held request
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut the open ones: the store is unreachable."""
        self._refusing = True
        with self._lock:
            for sock in list(self._sockets):
                _reset(sock)
            self._sockets.clear()

    def up(self) -> None:
        self._refusing, self._stall_marker = False, None

    def stall(self, marker: bytes) -> None:
        """Hold (never forward) any request whose bytes contain `marker`."""
        self._stall_marker = marker

    def close(self) -> None:
        self._running = False
        self.down()
        self._listener.close()

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        held = False
        try:
            while self._running:
                readable, _, _ = select.select([client, upstream], [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        marker = self._stall_marker
                        if marker is not None and marker in data and not held:
                            held = True
                            self.stalled.append(data[:300])
                        if not held:
                            upstream.sendall(data)
                    else:
                        client.sendall(data)
        except OSError:
            return
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._sockets.difference_update((client, upstream))


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a dead peer or a firewall would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        sock.close()
