"""Domain errors of the management plane (mapped to problem+json by mlapi.exceptions)."""

from __future__ import annotations

from mlapi.exceptions import DomainError


class InvalidRequest(DomainError):
    """A request that is well-formed but not acceptable (400 validation_error)."""

    status = 400
    code = "validation_error"
    title = "Validation failed"


class Conflict(DomainError):
    """The object's state forbids it: the last owner, an existing member (409 conflict)."""

    status = 409
    code = "conflict"
    title = "Conflict"


class NotFound(DomainError):
    """Unknown, used or expired invitation; any object of another organization (404)."""

    status = 404
    code = "not_found"
    title = "Not found"


class Forbidden(DomainError):
    """The member's role does not allow it; a key used outside its restrictions (403)."""

    status = 403
    code = "permission_denied"
    title = "Permission denied"


def invalid(field: str, message: str) -> InvalidRequest:
    """A 400 naming the field at fault."""
    return InvalidRequest(message, errors=[{"field": field, "message": message}])
