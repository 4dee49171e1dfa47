"""POST /api/v1/auth/signup: validators, duplicates, plans, approval, per-IP limit."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from keys.models import Subscription
from tests.factories import PlanFactory, UserFactory, seeded_plan

pytestmark = pytest.mark.django_db
URL = "/api/v1/auth/signup"
GOOD = {"username": "alice", "email": "alice@example.com", "password": "tangerine-Sky-4471"}


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _plans(db):
    for name in ("free", "pro", "enterprise"):
        seeded_plan(name)


def signup(body, ip="10.0.0.1"):
    return APIClient().post(URL, body, format="json", REMOTE_ADDR=ip)


def assert_validation_error(response, field: str):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "validation_error"
    assert field in {e["field"] for e in body["errors"]}


def test_signup_creates_an_active_free_subscription_by_default():
    response = signup(GOOD)
    assert response.status_code == 201
    assert response.json()["plan"] == "free" and response.json()["status"] == "active"
    subscription = Subscription.objects.get(user__username="alice")
    assert subscription.plan.name == "free" and subscription.is_active
    assert subscription.user.check_password(GOOD["password"])


def test_signup_on_another_public_plan():
    response = signup({**GOOD, "plan": "pro"})
    assert response.status_code == 201 and response.json()["plan"] == "pro"


def test_signup_on_a_plan_requiring_approval_is_pending():
    response = signup({**GOOD, "plan": "enterprise"})
    assert response.status_code == 201 and response.json()["status"] == "pending"


@pytest.mark.parametrize(
    "password",
    ["short1", "password123", "12345678901234", "alice1234", "aaaaaaa"],
)
def test_weak_passwords_are_400_validation_error(password):
    assert_validation_error(signup({**GOOD, "password": password}), "password")


def test_a_password_like_the_username_is_refused():
    body = {**GOOD, "username": "tangerinesky4471", "password": "tangerinesky4471"}
    assert_validation_error(signup(body), "password")


@pytest.mark.parametrize(
    ("field", "value"),
    [("username", "ALICE"), ("username", "alice"), ("email", "Alice@Example.com")],
)
def test_duplicate_usernames_and_emails_are_400(field, value):
    UserFactory(username="alice", email="alice@example.com")
    body = {**GOOD, "username": "someone", "email": "someone@example.com", field: value}
    assert_validation_error(signup(body), field)


@pytest.mark.parametrize("plan", ["platinum", "secret"])
def test_unknown_or_private_plans_are_400(plan):
    PlanFactory(name="secret", is_public=False)
    assert_validation_error(signup({**GOOD, "plan": plan}), "plan")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@example.com", "password": "tangerine-Sky-4471"}, "username"),
        ({**GOOD, "email": "not-an-email"}, "email"),
        ({**GOOD, "username": "has space"}, "username"),
        ({**GOOD, "username": "x" * 151}, "username"),
        ({**GOOD, "password": ""}, "password"),
        ({**GOOD, "plan": "Not A Slug!"}, "plan"),
    ],
)
def test_malformed_signups_are_400_with_the_field(body, field):
    assert_validation_error(signup(body), field)


def test_unparsable_json_is_400_invalid_json():
    response = APIClient().post(URL, "{nope", content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_json"


def test_more_than_20_signups_per_hour_from_one_ip_are_429():
    for i in range(20):
        body = {**GOOD, "username": f"user{i}", "email": f"user{i}@example.com"}
        assert signup(body).status_code == 201
    response = signup({**GOOD, "username": "user20", "email": "user20@example.com"})
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited" and response["Retry-After"]
    other_ip = signup({**GOOD, "username": "user21", "email": "u21@example.com"}, ip="10.0.0.2")
    assert other_ip.status_code == 201


def test_forwarded_for_is_ignored_unless_a_proxy_is_trusted(settings):
    from django.test import RequestFactory

    from keys.ratelimits import client_ip

    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert client_ip(request) == "10.0.0.9"
    settings.MLAPI_TRUSTED_PROXY_HOPS = 1
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR="6.6.6.6, 1.2.3.4"
    )
    assert client_ip(request) == "1.2.3.4"
