"""DRF permissions: the data plane needs an active subscription; management refuses API keys."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from keys.principal import Principal


class ActiveSubscription(BasePermission):
    """The caller's subscription is active (pending and suspended ones get 403)."""

    def has_permission(self, request, view) -> bool:
        if request.user is None or not getattr(request.user, "is_authenticated", False):
            raise exceptions.NotAuthenticated()
        principal = request.auth
        if not isinstance(principal, Principal) or not principal.is_active:
            raise exceptions.PermissionDenied(
                "This subscription is not active (pending approval or suspended).",
                code="subscription_inactive",
            )
        return True


class ManagementPlane(BasePermission):
    """JWT or session only: an API key cannot manage keys or the account (403)."""

    def has_permission(self, request, view) -> bool:
        if request.user is None or not getattr(request.user, "is_authenticated", False):
            raise exceptions.NotAuthenticated()
        if isinstance(request.auth, Principal) and request.auth.key_id is not None:
            raise exceptions.PermissionDenied(
                "API keys cannot be used on the management plane; use a JWT or the portal.",
                code="permission_denied",
            )
        return True
