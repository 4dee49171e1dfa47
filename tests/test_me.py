"""GET /api/v1/me: profile, subscription and the live quota state; management-plane rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from keys import limits, services
from keys.principal import Principal
from tests.factories import ApiKeyFactory, UserFactory

pytestmark = pytest.mark.django_db
ME = "/api/v1/me"


def test_me_shows_profile_subscription_and_live_quota(jwt_client):
    response = jwt_client.get(ME)
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"id", "username", "email", "subscription"}
    quota = body["subscription"]["quota"]
    assert set(quota) >= {"limit", "used", "remaining", "period", "resets_at"}
    assert quota["used"] == 0 and quota["remaining"] == quota["limit"]


def test_me_quota_follows_consumption_and_extensions(subscriber, jwt_client):
    principal = Principal.for_subscription(subscriber)
    limits.admit(principal=principal, units=7)
    services.grant_quota_extension(subscription=subscriber, units=3)
    quota = jwt_client.get(ME).json()["subscription"]["quota"]
    plan = subscriber.plan
    assert quota["limit"] == plan.quota + 3
    assert quota["used"] == 7 and quota["remaining"] == plan.quota + 3 - 7
    assert quota["period"] == plan.quota_period
    _, end = limits.period_bounds(plan.quota_period, datetime.now(UTC))
    assert datetime.fromisoformat(quota["resets_at"].replace("Z", "+00:00")) == end


def test_me_works_with_a_session_and_requires_csrf_for_writes(subscriber):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(subscriber.user)
    assert client.get(ME).status_code == 200
    response = client.post("/api/v1/keys", {"name": "x"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"


def test_me_for_a_user_without_subscription_says_so():
    user = UserFactory()
    client = APIClient()
    client.force_authenticate(user)
    assert client.get(ME).json()["subscription"] is None


def test_an_api_key_on_me_is_403_permission_denied(api_client):
    response = api_client.get(ME)
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"


def test_me_without_credentials_is_401_not_authenticated():
    response = APIClient().get(ME)
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"]


def test_management_requests_are_not_recorded_as_data_plane_traffic(jwt_client):
    response = jwt_client.get(ME)
    assert not hasattr(response.wsgi_request, "mlapi_meter")
    assert "RateLimit" not in response


def test_pending_subscription_shows_its_requested_plan(make_subscriber):
    from tests.factories import seeded_plan

    subscription = make_subscriber()
    services.request_plan_change(subscription=subscription, plan=seeded_plan("enterprise"))
    client = APIClient()
    client.force_authenticate(subscription.user)
    body = client.get(ME).json()["subscription"]
    assert body["requested_plan"] == "enterprise" and body["status"] == "active"
    services.approve_subscription(subscription=subscription)
    assert client.get(ME).json()["subscription"]["plan"] == "enterprise"


def test_plans_are_public_and_paginated():
    from tests.factories import PlanFactory, seeded_plan

    seeded_plan("free")
    PlanFactory(name="hidden", is_public=False)
    response = APIClient().get("/api/v1/plans")
    assert response.status_code == 200
    body = response.json()
    assert {"count", "next", "previous", "results"} <= set(body)
    names = {p["name"] for p in body["results"]}
    assert "free" in names and "hidden" not in names


def test_an_api_key_of_another_kind_of_user_cannot_use_keys_either():
    key = ApiKeyFactory()
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key.plaintext)
    assert client.get("/api/v1/keys").status_code == 403


def test_an_api_key_on_the_usage_endpoint_is_403_like_every_management_view(api_client):
    response = api_client.get("/api/v1/usage")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"


def test_an_expired_jwt_on_default_authenticated_views_is_token_expired(subscriber):
    from datetime import timedelta

    from django.utils import timezone
    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken.for_user(subscriber.user)
    token.set_exp(from_time=timezone.now() - timedelta(hours=1), lifetime=timedelta(minutes=15))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.get("/api/v1/usage")
    assert response.status_code == 401 and response.json()["code"] == "token_expired"
