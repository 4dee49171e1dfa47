"""Portal accounts: landing, sign up, log in/out (rate-limited like the API), no-subscription."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from keys.models import Plan, Subscription
from tests.factories import TEST_PASSWORD, UserFactory, seeded_plan

pytestmark = pytest.mark.django_db

GOOD_PASSWORD = "Spring-meadow-47-lantern"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """django-ratelimit counts live in the cache; every test starts from zero."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def plans(db) -> dict[str, Plan]:
    return {name: seeded_plan(name) for name in ("free", "pro", "enterprise")}


def signup_data(**overrides) -> dict:
    data = {
        "username": "ada",
        "email": "ada@example.com",
        "password1": GOOD_PASSWORD,
        "password2": GOOD_PASSWORD,
    }
    return data | overrides


def error_codes(response, field: str) -> list[str]:
    return [e.code for e in response.context["form"].errors.as_data()[field]]


def test_root_redirects_to_the_portal(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/portal/"


def test_landing_lists_public_plans_with_their_limits_and_hides_private_ones(client, plans):
    Plan.objects.create(
        name="secret-deal",
        rate=1,
        burst=1,
        quota=5,
        quota_period="day",
        max_instances=1,
        max_job_rows=1,
        is_public=False,
    )
    response = client.get("/portal/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "free" in html and "pro" in html and "1,000 / day" in html
    assert "secret-deal" not in html
    assert 'href="/portal/signup/"' in html


def test_signup_creates_an_active_free_subscription_and_logs_in(client, plans):
    response = client.post("/portal/signup/", signup_data())
    assert response.status_code == 302
    assert response["Location"] == "/portal/dashboard/"
    subscription = Subscription.objects.get(user__username="ada")
    assert subscription.plan.name == "free" and subscription.status == "active"
    assert client.get("/portal/dashboard/").status_code == 200


def test_signup_on_a_plan_that_needs_approval_starts_pending(client, plans):
    client.post("/portal/signup/", signup_data(plan="enterprise"))
    subscription = Subscription.objects.get(user__username="ada")
    assert subscription.status == "pending"
    dashboard = client.get("/portal/dashboard/").content.decode()
    assert "waiting for an operator" in dashboard


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"username": ""}, "username", "required"),
        ({"username": "has space"}, "username", "invalid"),
        ({"email": "not-an-email"}, "email", "invalid"),
        ({"email": ""}, "email", "required"),
        ({"password2": "Something-else-99"}, "password2", "password_mismatch"),
        ({"password1": "short", "password2": "short"}, "password1", "password_too_short"),
        (
            {"password1": "12345678901", "password2": "12345678901"},
            "password1",
            "password_entirely_numeric",
        ),
        (
            {"password1": "ada@example.com1", "password2": "ada@example.com1"},
            "password1",
            "password_too_similar",
        ),
        ({"plan": "no-such-plan"}, "plan", "invalid_choice"),
    ],
)
def test_signup_refuses_bad_input_with_400_and_the_field_error(
    client, plans, overrides, field, code
):
    response = client.post("/portal/signup/", signup_data(**overrides))
    assert response.status_code == 400
    assert code in error_codes(response, field)
    assert not Subscription.objects.exists()
    assert 'aria-invalid="true"' in response.content.decode()


def test_signup_refuses_a_private_plan(client, plans):
    plans["enterprise"].is_public = False
    plans["enterprise"].save()
    response = client.post("/portal/signup/", signup_data(plan="enterprise"))
    assert response.status_code == 400
    assert "invalid_choice" in error_codes(response, "plan")


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"username": "ADA"}, "username", "username_taken"),
        ({"username": "other", "email": "ADA@example.com"}, "email", "email_taken"),
    ],
)
def test_signup_refuses_taken_usernames_and_emails_case_insensitively(
    client, plans, overrides, field, code
):
    UserFactory(username="ada", email="ada@example.com")
    response = client.post("/portal/signup/", signup_data(**overrides))
    assert response.status_code == 400
    assert code in error_codes(response, field)


def test_signup_is_limited_to_20_per_hour_per_ip(client, plans):
    for n in range(20):
        response = client.post("/portal/signup/", signup_data(username="", email=f"x{n}@e.com"))
        assert response.status_code == 400
    response = client.post("/portal/signup/", signup_data())
    assert response.status_code == 429
    assert response["Retry-After"]
    assert not Subscription.objects.exists()
    other_ip = client.post("/portal/signup/", signup_data(), REMOTE_ADDR="10.9.8.7")
    assert other_ip.status_code == 302


def test_signup_page_is_csrf_protected(plans):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/portal/signup/", signup_data()).status_code == 403
    page = strict.get("/portal/signup/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]
    response = strict.post("/portal/signup/", signup_data(csrfmiddlewaretoken=token))
    assert response.status_code == 302


def test_login_with_the_right_password_goes_to_the_dashboard(client, make_subscriber):
    subscription = make_subscriber()
    response = client.post(
        "/portal/login/", {"username": subscription.user.username, "password": TEST_PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == "/portal/dashboard/"


def test_login_keeps_the_next_page(client, make_subscriber):
    subscription = make_subscriber()
    page = client.get("/portal/keys/")
    assert page.status_code == 302 and page["Location"] == "/portal/login/?next=/portal/keys/"
    response = client.post(
        "/portal/login/?next=/portal/keys/",
        {
            "username": subscription.user.username,
            "password": TEST_PASSWORD,
            "next": "/portal/keys/",
        },
    )
    assert response["Location"] == "/portal/keys/"


@pytest.mark.parametrize(
    ("data", "field", "code"),
    [
        ({"username": "nobody", "password": "wrong-password"}, "__all__", "invalid_login"),
        ({"username": "", "password": "x"}, "username", "required"),
        ({"username": "x", "password": ""}, "password", "required"),
    ],
)
def test_login_refuses_bad_input_with_400(client, data, field, code):
    response = client.post("/portal/login/", data)
    assert response.status_code == 400
    assert code in error_codes(response, field)


def test_login_is_refused_after_10_failures_per_ip_and_username(client, make_subscriber):
    user = make_subscriber().user
    for _ in range(10):
        bad = client.post("/portal/login/", {"username": user.username, "password": "nope-nope"})
        assert bad.status_code == 400
    blocked = client.post("/portal/login/", {"username": user.username, "password": TEST_PASSWORD})
    assert blocked.status_code == 429
    assert blocked["Retry-After"]
    assert "_auth_user_id" not in client.session
    # Another username from the same IP, and the same username from another IP, still work.
    other = UserFactory()
    assert (
        client.post(
            "/portal/login/", {"username": other.username, "password": TEST_PASSWORD}
        ).status_code
        == 302
    )
    client.logout()
    assert (
        client.post(
            "/portal/login/",
            {"username": user.username, "password": TEST_PASSWORD},
            REMOTE_ADDR="10.1.2.3",
        ).status_code
        == 302
    )


def test_failed_api_token_requests_count_towards_the_portal_login_limit(client, make_subscriber):
    user = make_subscriber().user
    for _ in range(10):
        response = client.post(
            "/api/v1/auth/token",
            {"username": user.username, "password": "nope-nope"},
            content_type="application/json",
        )
        assert response.status_code == 401
    blocked = client.post("/portal/login/", {"username": user.username, "password": TEST_PASSWORD})
    assert blocked.status_code == 429


def test_api_signups_count_towards_the_portal_signup_limit(client, plans):
    for _ in range(20):
        client.post("/api/v1/auth/signup", {"username": ""}, content_type="application/json")
    assert client.post("/portal/signup/", signup_data()).status_code == 429


def test_successful_logins_do_not_count_towards_the_limit(client, make_subscriber):
    user = make_subscriber().user
    for _ in range(12):
        response = client.post(
            "/portal/login/", {"username": user.username, "password": TEST_PASSWORD}
        )
        assert response.status_code == 302
        client.logout()


def test_logout_takes_a_post_and_ends_the_session(client, make_subscriber):
    client.force_login(make_subscriber().user)
    assert client.get("/portal/logout/").status_code == 405
    response = client.post("/portal/logout/")
    assert response.status_code == 302 and response["Location"] == "/portal/"
    assert client.get("/portal/dashboard/").status_code == 302


def test_signed_in_users_skip_signup_and_login(client, make_subscriber):
    client.force_login(make_subscriber().user)
    assert client.get("/portal/signup/")["Location"] == "/portal/dashboard/"
    assert client.get("/portal/login/")["Location"] == "/portal/dashboard/"


def test_an_account_without_subscription_gets_an_explanation_not_a_crash(client):
    staff = get_user_model().objects.create_user("op", "op@example.com", "x", is_staff=True)
    client.force_login(staff)
    response = client.get("/portal/dashboard/")
    assert response.status_code == 403
    assert "not subscribed" in response.content.decode()


def test_the_admin_lists_accounts_with_their_plan_and_status(admin_client, make_subscriber):
    subscription = make_subscriber(plan="free", status="pending")
    response = admin_client.get("/admin/portal/user/")
    assert response.status_code == 200
    html = response.content.decode()
    assert subscription.user.username in html and "Pending approval" in html
    assert admin_client.get(f"/admin/portal/user/{subscription.user.pk}/change/").status_code == 200
