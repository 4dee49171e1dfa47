"""One place that turns every error into the contract's body (CONTRACT.md section 4).

`/api/...` answers RFC 9457 `application/problem+json`; the inference protocol routes (`/v2/...`,
`/v1/models/...`) answer the protocol's `{"error": "...", "code": "..."}`. Domain code raises a
`DomainError` subclass, the HTTP layer raises DRF exceptions, and both come through here. Nothing
a client sends ever produces a stack trace in a response.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any

import orjson
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions as drf

from mlapi.protocols import PROTOCOL_PREFIXES, is_protocol_path  # noqa: F401 - re-exported
from mlapi.request_id import current_request_id

logger = logging.getLogger("mlapi")

QUOTA_PROBLEM_TYPE = "https://iana.org/assignments/http-problem-types#quota-exceeded"


class DomainError(Exception):
    """Base of every error that domain code raises on purpose; subclasses set status and code."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"
    problem_type: str = "about:blank"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.detail)


class ServiceUnavailable(DomainError):
    """A store the request needs (database, cache, broker) cannot be reached right now."""

    status = 503
    code = "service_unavailable"
    title = "Service unavailable"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


# The generic refusals every app raises (each app's own errors subclass these).


class InvalidRequest(DomainError):
    """A request that is well-formed but not acceptable (400 validation_error)."""

    status = 400
    code = "validation_error"
    title = "Validation failed"


class Conflict(DomainError):
    """The object's state forbids it: the last owner, a job already finished (409 conflict)."""

    status = 409
    code = "conflict"
    title = "Conflict"


class NotFound(DomainError):
    """An unknown object, or one of another organization (404 not_found)."""

    status = 404
    code = "not_found"
    title = "Not found"


class Forbidden(DomainError):
    """The caller may not do this: role, plan or key restrictions (403 permission_denied)."""

    status = 403
    code = "permission_denied"
    title = "Permission denied"


def invalid(field: str, message: str) -> InvalidRequest:
    """A 400 naming the field at fault."""
    return InvalidRequest(message, errors=[{"field": field, "message": message}])


STATUS_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    413: "Payload too large",
    414: "URI too long",
    415: "Unsupported media type",
    429: "Too many requests",
    431: "Request header fields too large",
    500: "Internal server error",
    503: "Service unavailable",
    504: "Gateway timeout",
}

DRF_CODES = {
    drf.ParseError: "invalid_json",
    drf.ValidationError: "validation_error",
    drf.NotAuthenticated: "not_authenticated",
    drf.AuthenticationFailed: "invalid_credentials",
    drf.PermissionDenied: "permission_denied",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "rate_limited",
}


def problem_response(
    *,
    path: str,
    status: int,
    code: str,
    detail: str,
    title: str | None = None,
    problem_type: str = "about:blank",
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> HttpResponse:
    """Build the error response for `path` in the body format that route family uses."""
    if is_protocol_path(path):
        body: dict[str, Any] = {"error": detail, "code": code}
        if errors:
            body["errors"] = errors
        content_type = "application/json"
    else:
        body = {
            "type": problem_type,
            "title": title or STATUS_TITLES.get(status, "Error"),
            "status": status,
            "detail": detail,
            "code": code,
        }
        if errors is not None:
            body["errors"] = errors
        body.update(extra or {})
        content_type = "application/problem+json"
    request_id = current_request_id.get()
    if request_id:  # quoted to support: the same id is in the logs and the usage record
        body["request_id"] = request_id
    response = HttpResponse(orjson.dumps(body), status=status, content_type=content_type)
    response.error_code = code  # read by usage recording
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def flatten_errors(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """Turn DRF's nested error detail into `[{"field": "instances[3].x", "message": ...}]`."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            if key == "non_field_errors":
                name = prefix
            elif prefix:
                name = f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}.{key}"
            else:
                name = str(key)
            out += flatten_errors(value, name)
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [{"field": prefix, "message": str(item)} for item in detail]
        out = []
        for index, item in enumerate(detail):
            out += flatten_errors(item, f"{prefix}[{index}]")
        return out
    return [{"field": prefix, "message": str(detail)}]


CONTRACT_CODES = frozenset(DRF_CODES.values()) | {
    "key_revoked",
    "key_expired",
    "token_expired",
    "subscription_inactive",
    "quota_exceeded",
    "payload_too_large",
    "model_unavailable",
    "service_unavailable",
    "prediction_timeout",
}


def _drf_code(exc: drf.APIException) -> str:
    """The contract code: the exception's own when it is one of ours, else its class's."""
    codes = exc.get_codes()
    if isinstance(codes, str) and codes in CONTRACT_CODES:
        return codes
    for cls in type(exc).__mro__:
        if cls in DRF_CODES:
            return DRF_CODES[cls]
    return "error"


def _response_for_drf(exc: drf.APIException, path: str) -> HttpResponse:
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
    errors = None
    if isinstance(exc, drf.ValidationError):
        errors = flatten_errors(exc.detail)
        detail = "; ".join(
            f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors[:5]
        )
    else:
        detail = str(exc.detail)
    return problem_response(
        path=path,
        status=exc.status_code,
        code=_drf_code(exc),
        detail=detail or STATUS_TITLES.get(exc.status_code, "Error"),
        errors=errors,
        headers=headers,
    )


def unavailable_store(exc: BaseException) -> str | None:
    """Which store `exc` says is unreachable ("database", "cache", "broker"), else None.

    Any code path may touch a store (sessions, the login limits in the cache, job submission on
    the broker); an outage there is a 503, never a 500, wherever it surfaces.
    """
    if isinstance(exc, (OperationalError, InterfaceError, DatabaseError)):
        return "database"
    redis_exceptions = sys.modules.get("redis.exceptions")
    if redis_exceptions is not None and isinstance(
        exc, (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError)
    ):
        return "cache"
    kombu_exceptions = sys.modules.get("kombu.exceptions")
    if kombu_exceptions is not None and isinstance(exc, kombu_exceptions.OperationalError):
        return "broker"
    return None


def response_for_exception(exc: BaseException, path: str) -> HttpResponse:
    """Map any exception to a contract error response; unexpected ones become a bare 500."""
    if isinstance(exc, DomainError):
        return problem_response(
            path=path,
            status=exc.status,
            code=exc.code,
            title=exc.title,
            detail=exc.detail,
            problem_type=exc.problem_type,
            errors=exc.errors,
            headers=exc.headers,
            extra=exc.extra,
        )
    if isinstance(exc, drf.APIException):
        return _response_for_drf(exc, path)
    if isinstance(exc, Http404):
        return problem_response(path=path, status=404, code="not_found", detail="Not found.")
    if isinstance(exc, DjangoPermissionDenied):
        return problem_response(
            path=path, status=403, code="permission_denied", detail="Permission denied."
        )
    if isinstance(exc, RequestDataTooBig):
        return problem_response(
            path=path, status=413, code="payload_too_large", detail="Request body is too large."
        )
    store = unavailable_store(exc)
    if store is not None:
        logger.warning("%s unavailable: %s", store, exc.__class__.__name__)
        return problem_response(
            path=path,
            status=503,
            code="service_unavailable",
            detail=f"The {store} is unavailable; try again shortly.",
            headers={"Retry-After": "1"},
        )
    logger.exception("unhandled error on %s", path)
    return problem_response(
        path=path, status=500, code="internal_error", detail="Internal server error."
    )


@dataclass(frozen=True, slots=True)
class ErrorSummary:
    """An error as a non-HTTP transport (gRPC) reports it: the section 4 status, code, detail."""

    status: int
    code: str
    detail: str
    headers: dict[str, str]


def summarize_exception(exc: BaseException) -> ErrorSummary:
    """The contract's status, code and message for any exception, as `response_for_exception`."""
    if isinstance(exc, (DomainError, drf.APIException)):
        response = response_for_exception(exc, "/v2")  # the protocol body: {"error", "code"}
        body = orjson.loads(response.content)
        headers = {k: v for k, v in response.items() if k not in ("Content-Type",)}
        return ErrorSummary(response.status_code, body["code"], body["error"], headers)
    if isinstance(exc, (OperationalError, InterfaceError, DatabaseError)):
        logger.warning("database unavailable: %s", exc.__class__.__name__)
        return ErrorSummary(
            503, "service_unavailable", "The database is unavailable; try again shortly.", {}
        )
    logger.error("unhandled error", exc_info=exc)
    return ErrorSummary(500, "internal_error", "Internal server error.", {})


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse:
    """DRF's EXCEPTION_HANDLER: every API error goes through `response_for_exception`."""
    request = context.get("request")
    path = request.path if request is not None else ""
    return response_for_exception(exc, path)


def ratelimited_view(request: HttpRequest, exception: Exception) -> HttpResponse:
    """django-ratelimit's RATELIMIT_VIEW: a 429 problem for API paths, a page for the portal."""
    if request.path.startswith("/api/"):
        return problem_response(
            path=request.path,
            status=429,
            code="rate_limited",
            detail="Too many attempts from this client; try again later.",
            headers={"Retry-After": "900"},
        )
    from django.shortcuts import render

    response = render(request, "429.html", status=429)
    response["Retry-After"] = "900"
    return response


def not_found_view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: JSON errors on API and protocol paths, Django's page elsewhere."""
    if request.path.startswith("/api/") or is_protocol_path(request.path):
        return problem_response(
            path=request.path, status=404, code="not_found", detail="Not found."
        )
    from django.views.defaults import page_not_found

    return page_not_found(request, exception or Http404())


UNAVAILABLE_PAGE = (
    "<!doctype html><html lang=en><title>Service unavailable</title><h1>Service unavailable"
    "</h1><p>The service is briefly unavailable. Please try again in a moment.</p></html>"
)


def store_outage_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """503 for an unreachable store: the contract's JSON on API paths, else a static page
    that needs nothing (no template, no user), so rendering it cannot fail the same way."""
    if request.path.startswith("/api/") or is_protocol_path(request.path):
        return response_for_exception(exc, request.path)
    logger.warning("%s unavailable: %s", unavailable_store(exc), exc.__class__.__name__)
    return HttpResponse(UNAVAILABLE_PAGE, status=503, headers={"Retry-After": "1"})


def server_error_view(request: HttpRequest) -> HttpResponse:
    """handler500: never a trace; JSON on API paths; 503 when a store is unreachable."""
    exc = sys.exc_info()[1]
    if exc is not None and unavailable_store(exc) is not None:
        return store_outage_response(request, exc)  # an outage, not a bug
    if request.path.startswith("/api/") or is_protocol_path(request.path):
        return problem_response(
            path=request.path, status=500, code="internal_error", detail="Internal server error."
        )
    from django.views.defaults import server_error

    return server_error(request)
