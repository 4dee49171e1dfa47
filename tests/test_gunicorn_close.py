"""The sync worker closes a connection as soon as its response is written.

gunicorn's own sync worker lingers after each response until the client closes its side (up to
2 s), serving nobody meanwhile: one client that keeps its socket open stalls every other caller
of that worker. mlapi's worker closes at once when the request was read in full, and keeps the
graceful close for a request refused before its body was read (413), so that refusal still
reaches the client instead of a connection reset.
"""

from __future__ import annotations

import socket
import time

import pytest
import requests

from tests.servers import GunicornServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
LINGER_S = 2.0  # gunicorn's close_graceful timeout


@pytest.fixture(scope="module")
def one_worker(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), GunicornServer(workers=1) as server:
        yield server


def raw_request(port: int, request: bytes) -> tuple[socket.socket, bytes]:
    """Send `request`, read the response up to the server's close; the socket stays open."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(request)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return sock, b"".join(chunks)


def test_a_client_that_keeps_its_socket_open_does_not_stall_the_next_caller(one_worker):
    port = int(one_worker.url.rsplit(":", 1)[1])
    held, response = raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    try:
        assert response.startswith(b"HTTP/1.1 200")  # the server closed: we read to EOF
        started = time.monotonic()
        answer = requests.get(f"{one_worker.url}/healthz", timeout=10)
        waited = time.monotonic() - started
    finally:
        held.close()
    assert answer.status_code == 200
    # gunicorn's linger would hold the only worker on `held` for LINGER_S first
    assert waited < LINGER_S * 0.9, waited


def test_a_body_refused_unread_still_gets_its_answer(one_worker):
    port = int(one_worker.url.rsplit(":", 1)[1])
    body = b"x" * (64 * 1024)
    head = (
        b"POST /api/v1/models/iris/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 99999999\r\n\r\n"
    )
    held, response = raw_request(port, head + body)
    held.close()
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b"payload_too_large" in response
