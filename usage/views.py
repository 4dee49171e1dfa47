"""The usage API: `GET /api/v1/usage` (management plane: JWT or session)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from keys.models import Subscription
from keys.org_access import membership_for
from keys.permissions import ManagementPlane
from mlapi.pagination import PageNumberPagination
from usage.selectors import daily_usage, subscriber_knows_model, subscriber_owns_key
from usage.serializers import UsageDaySerializer, UsageQuerySerializer


class UsageView(APIView):
    """Per-day usage of the caller's subscription, one item per day, zero days included."""

    permission_classes = [IsAuthenticated, ManagementPlane]
    pagination_class = PageNumberPagination  # also tells the OpenAPI document it is paginated

    @extend_schema(parameters=[UsageQuerySerializer], responses=UsageDaySerializer(many=True))
    def get(self, request: Request) -> Response:
        # A plain dict: DRF would read `?end=` (empty) from a QueryDict as "not given".
        query = UsageQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        params = query.validated_data
        subscription = self.get_subscription(request)
        model, key_id = params.get("model"), params.get("key")
        if model is not None and not subscriber_knows_model(subscription=subscription, model=model):
            raise NotFound(f"Unknown model {model!r}.")
        if key_id is not None and not subscriber_owns_key(subscription=subscription, key_id=key_id):
            raise NotFound("Unknown key.")
        items = daily_usage(
            subscription=subscription,
            start=params["start"],
            end=params["end"],
            model=model,
            key_id=key_id,
        )
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(items, request, view=self)
        return paginator.get_paginated_response(UsageDaySerializer(page, many=True).data)

    def get_subscription(self, request: Request):
        """The caller's personal organization's subscription (§6)."""
        subscription = (
            Subscription.objects.personal_for(request.user).select_related("plan").first()
        )
        if subscription is None:
            raise NotFound("You have no subscription.")
        return subscription


class OrgUsageView(UsageView):
    """`GET /api/v1/orgs/{slug}/usage`: the same, for an organization the caller belongs to."""

    @extend_schema(
        parameters=[UsageQuerySerializer],
        responses=UsageDaySerializer(many=True),
        operation_id="api_v1_org_usage_list",
    )
    def get(self, request: Request, slug: str) -> Response:
        return super().get(request)

    def get_subscription(self, request: Request):
        membership = membership_for(request.user, self.kwargs["slug"])
        if membership is None:  # not a member: exactly like an unknown organization
            raise NotFound("No such organization.")
        return membership.organization.subscription
