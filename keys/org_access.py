"""`OrgAPIView`: the base of every `/api/v1/orgs/{slug}/...` view.

The caller's membership is read fresh on every request (never cached), so a removed member or a
changed role takes effect at once. Non-members get 404, exactly like an unknown organization;
members whose role lacks a permission get 403 `permission_denied`.
"""

from __future__ import annotations

from functools import cached_property

from django.http import Http404

from keys import roles
from keys.clientip import client_ip
from keys.models import Membership
from keys.views import ManagementAPIView
from mlapi.exceptions import Forbidden


def membership_for(user, slug: str) -> Membership | None:
    """`user`'s membership of the organization `slug`, with its subscription and plan loaded."""
    if not getattr(user, "is_authenticated", False) or user.pk is None:
        return None
    return (
        Membership.objects.select_related(
            "organization__subscription__plan", "organization__subscription__requested_plan"
        )
        .filter(organization__slug=slug, user_id=user.pk)
        .first()
    )


class OrgAPIView(ManagementAPIView):
    """JWT or session; `self.membership`, `self.organization`, `self.subscription` of `{slug}`.

    `permission` (a `keys.roles` name) is required for every method; views needing more call
    `self.require(...)`.
    """

    permission: str = roles.READ

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        self.require(self.permission)

    @cached_property
    def membership(self) -> Membership:
        membership = membership_for(self.request.user, self.kwargs["slug"])
        if membership is None:
            raise Http404("No such organization.")
        return membership

    @property
    def organization(self):
        return self.membership.organization

    @property
    def subscription(self):
        return self.membership.organization.subscription

    @property
    def role(self) -> str:
        return self.membership.role

    def require(self, permission: str) -> None:
        if not roles.allows(self.role, permission):
            raise Forbidden(f"Your role ({self.role}) does not allow this.")

    @property
    def audit(self) -> dict:
        """`actor` and `ip` for the services' audit entries."""
        return {"actor": self.request.user, "ip": client_ip(self.request)}
