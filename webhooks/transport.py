"""One webhook POST: pinned to a checked address, 10 s in all, no redirects, a short excerpt.

Plain `http.client`, because the guard needs to choose the address the socket connects to
(`urlguard.resolve_public` checks every address the name resolves to, then we connect to one
of those, never resolving again) while TLS still verifies the certificate for the host name.
The timeout bounds the whole attempt: a watchdog shuts the socket down at the deadline, so a
receiver that trickles bytes forever cannot hold a worker. Redirects are answers, not
instructions: a 3xx is a failed attempt like any non-2xx.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from webhooks.urlguard import BlockedURL, check_url, resolve_public

EXCERPT_BYTES = 500
USER_AGENT = "mlapi-webhooks/1"


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one attempt got: a status (None if no answer), how long, and why it failed."""

    status: int | None
    duration_ms: int
    error: str = ""
    excerpt: str = ""
    permanent: bool = False  # retrying cannot help (the URL is not allowed)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _connection(scheme: str, host: str, port: int, address: tuple, timeout: float):
    def create_connection(_addr, timeout=timeout, source_address=None):
        return socket.create_connection(address[:2], timeout, source_address)

    if scheme == "https":
        conn = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn._create_connection = create_connection  # connect to the checked address only
    return conn


def _abort(conn) -> None:
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _describe(exc: BaseException, timed_out: bool, timeout: float) -> str:
    if timed_out or isinstance(exc, TimeoutError | socket.timeout):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the receiver"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return f"TLS error: {exc}"[:300]
    if isinstance(exc, http.client.HTTPException):
        return f"invalid HTTP answer: {type(exc).__name__}"
    return f"{type(exc).__name__}: {exc}"[:300]


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> AttemptResult:
    """POST `body` to `url` once; never raises for anything the receiver or network does."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        scheme, host, port = check_url(url)
        infos = resolve_public(host, port)
    except BlockedURL as exc:
        return AttemptResult(None, took(), str(exc), permanent=True)
    except ConnectionError as exc:
        return AttemptResult(None, took(), str(exc))
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    all_headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **headers,
    }
    conn = _connection(scheme, host, port, infos[0][4], timeout)
    deadline = threading.Event()

    def expire() -> None:
        deadline.set()
        _abort(conn)

    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("POST", target, body=body, headers=all_headers)
        response = conn.getresponse()
        excerpt = response.read(EXCERPT_BYTES).decode("utf-8", "replace")
        status = response.status
    except Exception as exc:  # noqa: BLE001 (every network failure is a failed attempt)
        return AttemptResult(None, took(), _describe(exc, deadline.is_set(), timeout))
    finally:
        watchdog.cancel()
        conn.close()
    if deadline.is_set():
        return AttemptResult(None, took(), f"timed out after {timeout:g} s")
    error = ""
    if 300 <= status < 400:
        error = f"redirect ({status}) not followed"
    elif not 200 <= status < 300:
        error = f"answered {status}"
    return AttemptResult(status, took(), error, excerpt)
