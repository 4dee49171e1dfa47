"""Public account endpoints (signup, JWT token/refresh/logout, plans) and `GET /api/v1/me`."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken

from keys import limits, ratelimits, serializers, services
from keys.models import Plan
from keys.views import ManagementAPIView
from mlapi.pagination import PageNumberPagination

BEARER_CHALLENGE = 'Bearer realm="mlapi"'


class PublicAPIView(APIView):
    """No authentication; a 401 still carries a Bearer challenge (DRF would make it a 403)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request) -> str:
        return BEARER_CHALLENGE


def _token_failure(exc: TokenError) -> exceptions.AuthenticationFailed:
    if isinstance(exc, ExpiredTokenError):
        return exceptions.AuthenticationFailed("The refresh token has expired.", "token_expired")
    return exceptions.AuthenticationFailed("Invalid or revoked refresh token.")


class SignupView(PublicAPIView):
    """`POST /api/v1/auth/signup` (20 per hour per client IP)."""

    @extend_schema(request=serializers.SignupInput, responses={201: dict})
    def post(self, request):
        ratelimits.check_signup_rate(request)
        data = serializers.SignupInput(data=request.data)
        data.is_valid(raise_exception=True)
        subscription = services.signup_subscriber(
            username=data.validated_data["username"],
            email=data.validated_data["email"],
            password=data.validated_data["password"],
            plan_name=data.validated_data.get("plan"),
        )
        body = {
            "id": subscription.user_id,
            "username": subscription.user.username,
            "email": subscription.user.email,
            "plan": subscription.plan.name,
            "status": subscription.status,
        }
        return Response(body, status=status.HTTP_201_CREATED)


class TokenView(PublicAPIView):
    """`POST /api/v1/auth/token`: a JWT pair; 10 failures per 15 min per IP + username -> 429."""

    @extend_schema(request=serializers.TokenPairInput, responses={200: dict})
    def post(self, request):
        data = serializers.TokenPairInput(data=request.data)
        data.is_valid(raise_exception=True)
        username = data.validated_data["username"]
        ratelimits.check_login_allowed(request, username)
        user = authenticate(
            request._request, username=username, password=data.validated_data["password"]
        )
        if user is None or not user.is_active:
            ratelimits.note_failed_login(request, username)
            raise exceptions.AuthenticationFailed("No active account with these credentials.")
        refresh = RefreshToken.for_user(user)
        return Response({"access": str(refresh.access_token), "refresh": str(refresh)})


class TokenRefreshView(PublicAPIView):
    """`POST /api/v1/auth/token/refresh`: rotates the refresh token and blacklists the old one."""

    @extend_schema(request=serializers.RefreshInput, responses={200: dict})
    def post(self, request):
        serializers.RefreshInput(data=request.data).is_valid(raise_exception=True)
        data = TokenRefreshSerializer(data=request.data)
        try:
            data.is_valid(raise_exception=True)
        except TokenError as exc:
            raise _token_failure(exc) from None
        except exceptions.AuthenticationFailed:
            raise exceptions.AuthenticationFailed("Invalid or revoked refresh token.") from None
        return Response(data.validated_data)


class LogoutView(PublicAPIView):
    """`POST /api/v1/auth/logout {refresh}`: blacklists the refresh token (204)."""

    @extend_schema(request=serializers.RefreshInput, responses={204: None})
    def post(self, request):
        data = serializers.RefreshInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            RefreshToken(data.validated_data["refresh"]).blacklist()
        except TokenError as exc:
            raise _token_failure(exc) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class PlansView(PublicAPIView):
    """`GET /api/v1/plans`: the public plans (paginated)."""

    pagination_class = PageNumberPagination  # also tells the OpenAPI document it is paginated

    @extend_schema(responses=serializers.PlanOutput(many=True))
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(Plan.objects.filter(is_public=True), request, self)
        return paginator.get_paginated_response(serializers.PlanOutput(page, many=True).data)


class MeView(ManagementAPIView):
    """`GET /api/v1/me`: profile, subscription and the live quota state."""

    @extend_schema(responses={200: dict})
    def get(self, request):
        user = request.user
        body = {
            "id": user.pk,
            "username": user.username,
            "email": user.email,
            "date_joined": user.date_joined,
            "subscription": None,
        }
        subscription = user_subscription(user)
        if subscription is not None:
            body["subscription"] = subscription_body(subscription)
        return Response(body)


def subscription_body(subscription) -> dict:
    """A subscription as `/api/v1/me` and `/api/v1/orgs/{slug}` show it (live quota state)."""
    quota = limits.quota_status(subscription=subscription)
    return {
        "plan": subscription.plan.name,
        "status": subscription.status,
        "requested_plan": (
            subscription.requested_plan.name if subscription.requested_plan else None
        ),
        "limits": {
            "rate": subscription.plan.rate,
            "burst": subscription.plan.burst,
            "max_instances": subscription.plan.max_instances,
            "max_job_rows": subscription.plan.max_job_rows,
        },
        "quota": serializers.QuotaOutput(quota).data,
    }


def user_subscription(user):
    from keys.models import Subscription

    return (
        Subscription.objects.personal_for(user)
        .select_related("plan", "requested_plan", "organization")
        .first()
    )
