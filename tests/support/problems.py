"""One check for every error response the contract (section 4) shapes."""

from __future__ import annotations

from typing import Any

PROTOCOL_PREFIXES = ("/v2", "/v1/models/")
TRACE_MARKERS = ("Traceback", 'File "', "OperationalError", "psycopg", "redis.exceptions")


def _header(response: Any, name: str) -> str:
    return response.headers.get(name, "")  # case-insensitive in Django and in requests


def _path(response: Any) -> str:
    request = getattr(response, "request", None)
    if request is not None and hasattr(request, "path_url"):  # requests.Response
        return request.path_url
    wsgi = getattr(response, "wsgi_request", None)  # Django test client
    return wsgi.path if wsgi is not None else ""


def assert_problem(
    response: Any,
    status: int,
    code: str | None = None,
    field: str | None = None,
    *,
    protocol: bool | None = None,
) -> dict:
    """Assert `response` is a contract error: problem+json under /api/ (type, title, status,
    detail, code), `{"error", "code"}` on the protocol routes; the status, code and (for
    validation) a field path; WWW-Authenticate on 401; no trace. Works with Django's test
    client and with `requests`. Returns the body."""
    text = response.content.decode(errors="replace")
    assert response.status_code == status, f"{response.status_code}: {text[:2000]}"
    assert not any(marker in text for marker in TRACE_MARKERS), text[:2000]
    content_type = _header(response, "Content-Type")
    body = response.json()
    if protocol is None:
        protocol = _path(response).startswith(PROTOCOL_PREFIXES)
    if protocol:
        assert content_type.startswith("application/json"), content_type
        assert isinstance(body.get("error"), str) and body["error"], body
        assert "type" not in body, body  # the protocol's shape, not a problem document
    else:
        assert content_type.startswith("application/problem+json"), content_type
        assert body["status"] == status, body
        for member in ("type", "title", "detail", "code"):
            assert member in body, body
    if code is not None:
        assert body.get("code") == code, body
    if field is not None:
        assert field in [e["field"] for e in body.get("errors", [])], body
    if status == 401:
        assert _header(response, "WWW-Authenticate"), "401 without WWW-Authenticate"
    return body
