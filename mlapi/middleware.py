"""Project-wide middleware: the body size limit, and the lean chain for data-plane routes."""

import re
from collections.abc import Callable

from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from mlapi.exceptions import problem_response

UPLOAD_PATHS = ("/api/v1/jobs", "/admin/", "/portal/jobs")
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
            if request.path.startswith(UPLOAD_PATHS) or ARTIFACT_UPLOAD.match(request.path)
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


# Data-plane routes (API key or JWT, never a browser session): /api/v1/models..., Open Inference
# Protocol V2 and the KServe V1 alias. Management endpoints, jobs, the portal and the admin keep
# the full MIDDLEWARE list.
LEAN_PATH_PREFIXES = ("/api/v1/models", "/v2", "/v1/models/")
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
        if request.path_info.startswith(LEAN_PATH_PREFIXES):
            return self.lean(request)
        return self.get_response(request)
