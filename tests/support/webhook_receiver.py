"""A real local HTTP receiver for webhook tests: records every request, answers as scripted.

`Receiver(script=[...])` answers request n with `script[n]` (the last entry repeats):
`"ok"` 200, an int that status, `"redirect"` 302 to `redirect_to`, `"reset"` a TCP RST,
`"hang"` nothing until the test ends, `"trickle"` a status line then a byte every 0.2 s
forever, `"big"` 200 with a 100 kB body.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


class Receiver:
    """Context manager: `with Receiver(script=["ok"]) as r: r.url ... r.requests`."""

    def __init__(self, script=("ok",), redirect_to: str = "http://127.0.0.1:9/") -> None:
        self.script = list(script)
        self.redirect_to = redirect_to
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.got_request = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def _handler_class(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    n = len(receiver.requests)
                    receiver.requests.append(Received(self.path, dict(self.headers), body))
                    action = receiver.script[min(n, len(receiver.script) - 1)]
                receiver.got_request.set()
                receiver.answer(self, action)

        return Handler

    def answer(self, handler: BaseHTTPRequestHandler, action) -> None:
        if action == "reset":
            linger = struct.pack("ii", 1, 0)
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            handler.connection.close()
            handler.close_connection = True
            return
        if action == "hang":
            self.stopping.wait(60)
            return
        if action == "trickle":
            handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
            while not self.stopping.wait(0.2):
                try:
                    handler.wfile.write(b"X")
                    handler.wfile.flush()
                except OSError:
                    return
            return
        status = 200 if action in ("ok", "big") else (302 if action == "redirect" else int(action))
        body = b"x" * 100_000 if action == "big" else b"received"
        handler.send_response(status)
        if action == "redirect":
            handler.send_header("Location", self.redirect_to)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(
        self, count: int, timeout: float = 30.0, *, slow_after: float | None = None
    ) -> list[Received]:
        """The first `count` requests, once they have arrived (fails the test on timeout).

        Past `slow_after` seconds the process's thread stacks are taken once: a warning when the
        requests still arrive, part of the failure when they do not (what the worker was doing).
        """
        started = time.monotonic()
        stacks = ""
        while time.monotonic() - started < timeout:
            with self.lock:
                if len(self.requests) >= count:
                    if stacks:
                        warnings.warn(
                            f"{count} webhook requests took {time.monotonic() - started:.1f}s;"
                            f" threads after {slow_after}s:\n{stacks}",
                            stacklevel=2,
                        )
                    return list(self.requests)
            if slow_after is not None and not stacks and time.monotonic() - started > slow_after:
                stacks = thread_stacks()
            time.sleep(0.02)
        raise AssertionError(
            f"{len(self.requests)} of {count} webhook requests within {timeout}s;"
            f" threads:\n{stacks or thread_stacks()}"
        )


def thread_stacks(frames: int = 12) -> str:
    """Every thread's innermost `frames` frames, by thread name."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    parts = []
    for ident, frame in sys._current_frames().items():
        stack = "".join(traceback.format_stack(frame)[-frames:])
        parts.append(f"--- {names.get(ident, ident)}\n{stack}")
    return "\n".join(parts)
