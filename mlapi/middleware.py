"""Project-wide middleware: body size limit, store outages as 503s, the lean data-plane chain."""

import re
from collections.abc import Callable

from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from mlapi.exceptions import (
    STATUS_TITLES,
    problem_response,
    store_outage_response,
    unavailable_store,
)
from mlapi.protocols import CONTRACT_ERROR_PREFIXES, UPLOAD_PREFIXES, is_lean_path

ARTIFACT_UPLOAD = re.compile(r"^/api/v1/models/[-\w]+/versions$")  # operator version upload


class BodySizeLimitMiddleware:
    """Refuse bodies over the limit from their Content-Length, before a byte is read.

    Bodies without a Content-Length (chunked) are capped later by Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE, which raises RequestDataTooBig -> 413 in the handler.
    File uploads (jobs, admin model upload) stream to disk and get the larger upload limit.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = (
            settings.MLAPI_MAX_UPLOAD_BYTES
            if request.path.startswith(UPLOAD_PREFIXES) or ARTIFACT_UPLOAD.match(request.path)
            else settings.MLAPI_MAX_REQUEST_BYTES
        )
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0 or length > limit:
            return problem_response(
                path=request.path,
                status=413 if length > limit else 400,
                code="payload_too_large" if length > limit else "invalid_request",
                detail=(
                    f"Request body of {length} bytes exceeds the limit of {limit} bytes."
                    if length > limit
                    else "Content-Length is not a valid number."
                ),
            )
        return self.get_response(request)


JSON_TYPES = ("application/json", "application/problem+json")
STATUS_CODES = {
    400: "bad_request",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


class ErrorShapeMiddleware:
    """Errors that Django itself answers under /api/, /v2 and /v1/models/ (a wrong method on a
    plain view, DEBUG's technical 404 page, a suspicious request's 400, a CSRF 403) get the
    contract's shape instead of HTML: problem+json under /api/, `{"error", "code"}` on the
    protocol routes. Outermost, so every inner layer's answer passes through it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not request.path.startswith(CONTRACT_ERROR_PREFIXES)
            or response.get("Content-Type", "").startswith(JSON_TYPES)
            or getattr(response, "streaming", False)
        ):
            return response
        status = response.status_code
        shaped = problem_response(
            path=request.path,
            status=status,
            code=STATUS_CODES.get(status, "error"),
            detail=_detail(status, request),
            headers={name: response[name] for name in KEPT_HEADERS if name in response},
        )
        for cookie in response.cookies.values():  # e.g. a CSRF cookie set on the way out
            shaped.cookies[cookie.key] = cookie
        return shaped


def _detail(status: int, request: HttpRequest) -> str:
    if status == 405:
        return f"Method {request.method!r} is not allowed on {request.path}."
    return STATUS_TITLES.get(status, "Error") + "."


class StoreOutageMiddleware:
    """A view that hits an unreachable store (database, cache, broker) answers 503, not 500.

    DRF views already map such errors in `mlapi.exceptions`; this covers the portal, the admin
    and plain Django views, and keeps the log to one line (Django would log a traceback).
    Errors raised inside other middleware (e.g. saving a session) reach handler500, which
    answers the same 503.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if unavailable_store(exception) is None:
            return None
        return store_outage_response(request, exception)


# Data-plane routes (API key or JWT, never a browser session): mlapi.protocols.LEAN_PREFIXES.
# Management endpoints, jobs, the portal and the admin keep the full MIDDLEWARE list.
LEAN_MIDDLEWARE = (
    "django.middleware.security.SecurityMiddleware",  # nosniff, referrer policy, HSTS, SSL redirect
    "django.middleware.common.CommonMiddleware",  # APPEND_SLASH, DISALLOWED_USER_AGENTS
)


class _LeanHandler(BaseHandler):
    """Django's request handler with its own, shorter middleware list (sync only)."""

    def __init__(self, middleware: tuple[str, ...]) -> None:
        super().__init__()
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response)
        for path in reversed(middleware):
            instance = import_string(path)(handler)
            if hasattr(instance, "process_view"):
                self._view_middleware.insert(0, instance.process_view)
            if hasattr(instance, "process_template_response"):
                self._template_response_middleware.append(instance.process_template_response)
            if hasattr(instance, "process_exception"):
                self._exception_middleware.append(instance.process_exception)
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler


class LeanDataPlaneMiddleware:
    """Send data-plane paths through `LEAN_MIDDLEWARE` instead of the rest of MIDDLEWARE.

    Sessions, CSRF, Django's auth and messages, clickjacking, CSP and WhiteNoise do nothing for
    a JSON API authenticated by `X-API-Key` or a bearer JWT, and cost about a millisecond per
    request (py-spy, docs/performance.md). Placed after the body size limit and usage
    recording, which every request keeps; URL resolution and the view are Django's own.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.lean = _LeanHandler(LEAN_MIDDLEWARE)._middleware_chain

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_lean_path(request.path_info):
            return self.lean(request)
        return self.get_response(request)
