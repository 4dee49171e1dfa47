"""`GET /api/v1/orgs/{slug}/audit[?action=&since=]` (owner, admin): newest first, paginated."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema

from audit.models import AuditEntry
from keys import roles
from keys.org_access import OrgAPIView
from keys.org_serializers import AuditEntryOutput, AuditQuery


def audit_entries(*, organization_id: int, action: str | None = None, since=None):
    """The organization's entries, newest first; `action` matches exactly or as `key.` prefix."""
    entries = AuditEntry.objects.for_organization(organization_id)
    if action:
        entries = (
            entries.filter(action__startswith=action)
            if action.endswith(".")
            else entries.filter(action=action)
        )
    if since is not None:
        entries = entries.filter(time__gte=since)
    return entries.order_by("-time", "-id")


class OrgAuditView(OrgAPIView):
    """The audit log of one organization."""

    permission = roles.AUDIT_READ

    @extend_schema(
        operation_id="api_v1_org_audit_list",
        parameters=[AuditQuery],
        responses=AuditEntryOutput(many=True),
    )
    def get(self, request, slug: str):
        # A plain dict: DRF treats an empty value in a QueryDict as absent (`?since=` would be
        # silently ignored); here it is the 400 the schema promises.
        query = AuditQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        entries = audit_entries(organization_id=self.organization.pk, **query.validated_data)
        page = self.paginate_queryset(entries)
        return self.get_paginated_response(AuditEntryOutput(page, many=True).data)
