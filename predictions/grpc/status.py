"""CONTRACT section 8's status mapping: section 4 errors as gRPC status codes and metadata."""

from __future__ import annotations

import grpc

from mlapi.exceptions import ErrorSummary, summarize_exception

STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
# Reply headers that travel as gRPC metadata (lower-case, as HTTP/2 requires).
METADATA_HEADERS = frozenset(
    {
        "ratelimit-policy",
        "ratelimit",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "retry-after",
        "deprecation",
        "sunset",
        "www-authenticate",
    }
)


class CallRefused(Exception):
    """An RPC ends with this error status (raised inside a handler, caught by its wrapper)."""

    def __init__(self, summary: ErrorSummary) -> None:
        super().__init__(summary.detail)
        self.summary = summary


def summarize(exc: BaseException) -> ErrorSummary:
    return exc.summary if isinstance(exc, CallRefused) else summarize_exception(exc)


def grpc_code(status: int) -> grpc.StatusCode:
    return STATUS_CODES.get(status, grpc.StatusCode.INTERNAL)


def as_metadata(headers: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The headers a gRPC client should see, as metadata pairs."""
    pairs = ((name.lower(), str(value)) for name, value in headers.items())
    return tuple((name, value) for name, value in pairs if name in METADATA_HEADERS)
