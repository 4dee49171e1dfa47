"""Every error under /api/, /v2 and /v1/models/ has the contract's shape (CONTRACT section 4).

Unmatched paths, wrong methods (DRF views and plain Django views alike), DEBUG's technical 404
page, and the requests gunicorn refuses before Django sees them (an over-long URL, an
over-large header): problem+json under /api/, `{"error", "code"}` on the protocol routes.
"""

from __future__ import annotations

import socket

import pytest
import requests

from tests.servers import GunicornServer
from tests.support.problems import assert_problem

UNMATCHED = ["/api/nope", "/api/v1/nope/deeper", "/api/v1/me/", "/v2/nope", "/v1/models/x"]
WRONG_METHODS = [
    ("put", "/api/v1/plans"),
    ("delete", "/api/v1/auth/token"),
    ("post", "/v2/health/live"),
    ("delete", "/v2/health/ready"),
    ("patch", "/v2"),
]


@pytest.mark.parametrize("path", UNMATCHED)
@pytest.mark.parametrize("debug", [False, True])
def test_unmatched_paths_answer_404_in_the_routes_shape_even_in_debug(
    client, settings, db, path, debug
):
    settings.DEBUG = debug  # DEBUG's technical 404 page is HTML; it never shows here
    assert_problem(client.get(path), 404, "not_found")


@pytest.mark.parametrize(("method", "path"), WRONG_METHODS)
def test_wrong_methods_answer_405_with_allow_in_the_routes_shape(client, db, method, path):
    response = getattr(client, method)(path)
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["Allow"]


def raw_request(url: str, request: bytes) -> tuple[int, dict, bytes]:
    """Send raw bytes (requests would refuse some of these) and parse the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.fixture(scope="module")
def live(django_db_modify_db_settings, django_db_blocker):
    with django_db_blocker.unblock(), GunicornServer(workers=1) as server:
        yield server


@pytest.mark.slow
@pytest.mark.parametrize("prefix", ["/api/v1/models/", "/v2/models/", "/v1/models/"])
def test_over_long_urls_and_headers_are_refused_as_json_before_routing(live, prefix):
    long_url = f"GET {prefix}{'a' * 6000} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    big_header = (
        f"GET {prefix}iris HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {'b' * 9000}\r\n\r\n".encode()
    )
    for request, status, code in ((long_url, 414, "uri_too_long"),
                                  (big_header, 431, "headers_too_large")):  # fmt: skip
        got, headers, body = raw_request(live.url, request)
        assert got == status, body
        assert headers["Content-Type"] == "application/problem+json"
        parsed = requests.models.complexjson.loads(body)
        assert parsed["status"] == status and parsed["code"] == code
        assert parsed["error"] == parsed["detail"]  # readable as either contract shape
