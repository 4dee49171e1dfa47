"""gunicorn workers whose own refusals (before Django sees the request) are JSON, not HTML.

gunicorn answers an over-long request line (414), over-large or too many headers (431) and an
unparsable request (400) itself, with an HTML page. The path may not even be known then, so the
body carries both contract shapes at once: the problem members (`type`, `title`, `status`,
`detail`, `code`) and the protocol's `error`. Everything else is gunicorn's own handling.
"""

from __future__ import annotations

import contextlib

import orjson
from gunicorn import util
from gunicorn.http import errors
from gunicorn.http.body import LengthReader
from gunicorn.workers.gthread import ThreadWorker as GunicornThreadWorker
from gunicorn.workers.sync import SyncWorker as GunicornSyncWorker

REFUSALS: list[tuple[type[Exception], int, str, str]] = [
    (errors.LimitRequestLine, 414, "URI too long", "uri_too_long"),
    (errors.LimitRequestHeaders, 431, "Request header fields too large", "headers_too_large"),
    (errors.InvalidRequestLine, 400, "Bad request", "bad_request"),
    (errors.InvalidRequestMethod, 400, "Bad request", "bad_request"),
    (errors.InvalidHTTPVersion, 400, "Bad request", "bad_request"),
    (errors.InvalidHeader, 400, "Bad request", "bad_request"),
    (errors.InvalidHeaderName, 400, "Bad request", "bad_request"),
]
DETAILS = {
    414: "The request line (method and URL) is too long.",
    431: "The request's header fields are too large or too many.",
    400: "The request could not be parsed as HTTP.",
}


def refusal_response(status: int, title: str, code: str) -> bytes:
    """A complete HTTP/1.1 response for one of gunicorn's own refusals."""
    detail = DETAILS[status]
    body = orjson.dumps(
        {"type": "about:blank", "title": title, "status": status, "detail": detail,
         "code": code, "error": detail}
    )  # fmt: skip
    head = (
        f"HTTP/1.1 {status} {title}\r\nConnection: close\r\n"
        f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class ContractErrorsMixin:
    """Overrides `handle_error` for the client errors in REFUSALS; the rest is gunicorn's."""

    def handle_error(self, req, client, addr, exc):
        app_errors = (errors.InvalidResponseHeader, errors.InvalidResponseHeaderName)
        for cls, status, title, code in [] if isinstance(exc, app_errors) else REFUSALS:
            if isinstance(exc, cls):
                self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
                try:
                    util.write_nonblock(client, refusal_response(status, title, code))
                except Exception:  # noqa: BLE001 - the client may be gone; as gunicorn does
                    self.log.debug("Failed to send error message.")
                return
        super().handle_error(req, client, addr, exc)


def request_fully_read(req) -> bool:
    """Whether every byte of the request's body has left the kernel's receive buffer."""
    reader = getattr(getattr(req, "body", None), "reader", None)
    return isinstance(reader, LengthReader) and reader.length == 0


class SyncWorker(ContractErrorsMixin, GunicornSyncWorker):
    """gunicorn's sync worker (what `make run` uses) with JSON refusals and a prompt close.

    After each response gunicorn's sync worker half-closes the connection and then waits, up
    to 2 s, for the client to close its side (`util.close_graceful`): unread request bytes
    in the kernel's buffer would otherwise make `close()` send a RST that can cut the
    response short. The worker can serve nobody during that wait, one loopback round trip
    plus the client's reaction per request. When the whole body was read, there is nothing
    to reset on, so the connection is closed at once; otherwise (a refusal before the body
    was read) gunicorn's graceful close runs as before.
    """

    def handle_request(self, listener, req, client, addr):
        super().handle_request(listener, req, client, addr)
        if request_fully_read(req):
            close_promptly(client)  # gunicorn's close_graceful then finds it closed


def close_promptly(client) -> None:
    """Close after taking whatever the client already sent beyond the request (one syscall
    when there is none), so nothing unread is left to turn the close into a reset."""
    with contextlib.suppress(OSError):
        client.setblocking(False)
        while client.recv(65536):
            pass
    client.close()


class ThreadWorker(ContractErrorsMixin, GunicornThreadWorker):
    """gunicorn's gthread worker with JSON refusals."""
