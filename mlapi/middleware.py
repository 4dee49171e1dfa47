"""Project-wide middleware that must run before any view touches the request body."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from mlapi.exceptions import problem_response

UPLOAD_PATHS = ("/api/v1/jobs", "/admin/", "/portal/jobs")


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
            if request.path.startswith(UPLOAD_PATHS)
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
