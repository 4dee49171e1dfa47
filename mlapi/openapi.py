"""OpenAPI post-processing: every operation documents the errors it can answer (CONTRACT 4).

Views may declare their own error responses (predictions.serializers.problems); this hook adds
the ones a view left out, derived from what the operation takes, so that the document matches
what `mlapi.exceptions` really sends: `application/problem+json` under /api/, the protocol's
`{"error", "code"}` JSON under /v2/ and /v1/models/.
"""

from __future__ import annotations

from typing import Any

from mlapi.exceptions import STATUS_TITLES, is_protocol_path

FIELD_ERROR = {
    "type": "object",
    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
    "required": ["field", "message"],
}
SCHEMAS = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details, as every /api/ error is answered.",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "errors": {"type": "array", "items": FIELD_ERROR},
            "request_id": {"type": "string", "description": "The reply's X-Request-ID."},
        },
        "required": ["type", "title", "status", "detail", "code"],
    },
    "ProtocolError": {
        "type": "object",
        "description": "The Open Inference Protocol's error body (/v2/..., /v1/models/...).",
        "properties": {
            "error": {"type": "string"},
            "code": {"type": "string"},
            "errors": {"type": "array", "items": FIELD_ERROR},
            "request_id": {"type": "string", "description": "The reply's X-Request-ID."},
        },
        "required": ["error"],
    },
}
PUBLIC_AUTH_PATHS = ("/api/v1/auth/token", "/api/v1/auth/logout")  # answer 401 on bad tokens


def error_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses `mlapi.exceptions` can answer for this operation."""
    # A store the request needs may be down, on any route; the server refuses over-long
    # request lines (414) and header sections (431) before routing.
    statuses = {414, 431, 503}
    secured = any(requirement for requirement in operation.get("security", [{}]))
    takes_body = "requestBody" in operation
    params = operation.get("parameters", [])
    if secured or path.startswith(PUBLIC_AUTH_PATHS):
        statuses |= {401, 429}
    if secured:
        statuses |= {403}
    if takes_body or any(p.get("in") == "query" for p in params) or secured:
        statuses.add(400)
    if takes_body:
        statuses |= {413, 415}
    if any(p.get("in") == "path" or p.get("name") == "page" for p in params):
        statuses.add(404)  # an unknown object, or a page past the last one
    if path.startswith("/api/v1/auth/signup"):
        statuses.add(429)
    if method == "post" and path.endswith(("/predict", "/infer", ":predict")):
        statuses.add(504)
    return statuses


def add_error_responses(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """drf-spectacular POSTPROCESSING_HOOK: add the undocumented error responses."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in SCHEMAS.items():
        schemas.setdefault(name, schema)
    for path, operations in result.get("paths", {}).items():
        protocol = is_protocol_path(path)
        media = "application/json" if protocol else "application/problem+json"
        ref = {"$ref": f"#/components/schemas/{'ProtocolError' if protocol else 'Problem'}"}
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                if param.get("in") == "query" and param.get("name") in ("page", "page_size"):
                    param.setdefault("schema", {}).setdefault("minimum", 1)
            responses = operation.setdefault("responses", {})
            for status in sorted(error_statuses(path, method, operation)):
                responses.setdefault(
                    str(status),
                    {
                        "description": STATUS_TITLES.get(status, "Error"),
                        "content": {media: {"schema": ref}},
                    },
                )
    return result
