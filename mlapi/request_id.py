"""Request ids: `X-Request-ID` accepted when well-formed, else generated; echoed on every reply.

The id is kept in a context variable for the request's duration, so problem bodies
(`mlapi.exceptions.problem_response`), log lines (`RequestIdLogFilter`) and usage records
carry it without passing it around. A client's id is accepted when it is 1-128 characters of
`A-Z a-z 0-9 . _ : -` (enough for UUIDs, W3C trace ids and most proxies' ids); anything else
is replaced by a fresh one rather than refused, so a proxy's odd id never fails a request.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
VALID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
current_request_id: ContextVar[str] = ContextVar("mlapi_request_id", default="")


def accepted_or_new(value: str | None) -> str:
    """The client's id when well-formed, else a new random one (32 hex digits)."""
    if value and VALID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Outermost middleware: sets `request.request_id` and the context variable, echoes it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = accepted_or_new(request.META.get("HTTP_X_REQUEST_ID"))
        request.request_id = request_id
        token = current_request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response[HEADER] = request_id
        return response


class RequestIdLogFilter(logging.Filter):
    """Adds `record.request_id` (the current request's, or "-") to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get() or "-"
        return True
