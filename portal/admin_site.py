"""The admin site: Django's, with its login limited exactly like the portal's and the API's."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from keys.ratelimits import TooManyAttempts, check_login_allowed, note_failed_login
from portal.views.account import too_many_attempts


class AdminSite(admin.AdminSite):
    """`/admin/`, refusing an IP + username after 10 failed logins in 15 minutes (429).

    The counter is the one `/api/v1/auth/token` and `/portal/login/` use, so failures at any of
    the three count towards all of them; the refusal is the portal's 429 page with Retry-After.
    """

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if request.method != "POST":
            return super().login(request, extra_context)
        username = (request.POST.get("username") or "").strip()
        try:
            check_login_allowed(request, username)
        except TooManyAttempts as exc:
            return too_many_attempts(request, exc)
        response = super().login(request, extra_context)
        # Django's LoginView redirects after a login and renders the form again otherwise.
        if not 300 <= response.status_code < 400:
            note_failed_login(request, username)
        return response
