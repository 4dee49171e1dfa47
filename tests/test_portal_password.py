"""Portal password reset: the emailed link, its errors, and its per-IP limit."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.core.cache import cache

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """django-ratelimit counts live in the cache; every test starts from zero."""
    cache.clear()
    yield
    cache.clear()


def error_codes(response, field: str) -> list[str]:
    return [e.code for e in response.context["form"].errors.as_data()[field]]


def test_password_reset_emails_a_link_that_sets_a_new_password(client, make_subscriber):
    user = make_subscriber().user
    response = client.post("/portal/password-reset/", {"email": user.email.upper()})
    assert response.status_code == 302 and response["Location"] == "/portal/password-reset/sent/"
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/portal/reset/\S+/)", mail.outbox[0].body)[1]
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200 and form_page.context["validlink"]
    new = "Autumn-river-92-compass"
    done = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": new, "new_password2": new}
    )
    assert done.status_code == 302 and done["Location"] == "/portal/reset/done/"
    user.refresh_from_db()
    assert user.check_password(new)
    assert client.get(link, follow=True).context["validlink"] is False


def test_password_reset_for_an_unknown_email_reveals_nothing(client):
    response = client.post("/portal/password-reset/", {"email": "nobody@example.com"})
    assert response.status_code == 302
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("data", "code"), [({"email": "nope"}, "invalid"), ({"email": ""}, "required")]
)
def test_password_reset_refuses_a_bad_email_with_400(client, data, code):
    response = client.post("/portal/password-reset/", data)
    assert response.status_code == 400
    assert code in error_codes(response, "email")


def test_password_reset_confirm_refuses_mismatched_passwords_with_400(client, make_subscriber):
    user = make_subscriber().user
    client.post("/portal/password-reset/", {"email": user.email})
    link = re.search(r"http://testserver(/portal/reset/\S+/)", mail.outbox[0].body)[1]
    url = client.get(link, follow=True).redirect_chain[-1][0]
    response = client.post(url, {"new_password1": "Aa-123456789x", "new_password2": "other-1"})
    assert response.status_code == 400
    assert "password_mismatch" in error_codes(response, "new_password2")


def test_password_reset_is_limited_per_ip(client):
    for _ in range(5):
        assert client.post("/portal/password-reset/", {"email": "a@b.co"}).status_code == 302
    assert client.post("/portal/password-reset/", {"email": "a@b.co"}).status_code == 429
