"""Sign up, log in (rate-limited like the API) and the password reset flow."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse_lazy
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from django_ratelimit.core import is_ratelimited

from keys.ratelimits import (
    TooManyAttempts,
    check_login_allowed,
    check_signup_rate,
    client_ip,
    note_failed_login,
)
from keys.services import signup_subscriber
from mlapi.exceptions import DomainError, ratelimited_view
from portal.forms import LoginForm, SignupForm
from portal.views.common import INVALID_FORM_STATUS, add_service_error, render_form

RESET_REQUEST_RATE = "5/h"
AUTH_BACKEND = "django.contrib.auth.backends.ModelBackend"


def too_many_attempts(request: HttpRequest, exc: TooManyAttempts) -> HttpResponse:
    """The 429 page, with the Retry-After the limit asked for."""
    response = ratelimited_view(request, exc)
    for name, value in exc.headers.items():
        response[name] = value
    return response


def _client_ip_key(group: str, request: HttpRequest) -> str:
    return client_ip(request)


@sensitive_post_parameters("password1", "password2")
def signup(request: HttpRequest) -> HttpResponse:
    """Create an account and its subscription, then log the new subscriber in."""
    if request.user.is_authenticated:
        return redirect("portal:dashboard")
    if request.method == "POST":
        try:  # the API's limit and counter: 20 per hour per client IP, API and portal together
            check_signup_rate(request)
        except TooManyAttempts as exc:
            return too_many_attempts(request, exc)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        plan = form.cleaned_data.get("plan")
        try:
            subscription = signup_subscriber(
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
                plan_name=plan.name if plan else None,
            )
        except DomainError as exc:
            add_service_error(form, exc)
        else:
            login(request, subscription.user, backend=AUTH_BACKEND)
            messages.success(request, f"Welcome, {subscription.user.username}! Create a key next.")
            return redirect("portal:dashboard")
    return render_form(request, "registration/signup.html", {"form": form})


@method_decorator(sensitive_post_parameters("password"), name="dispatch")
class LoginView(auth_views.LoginView):
    """Django's login, refusing an IP + username after 10 failures in 15 minutes (429)."""

    template_name = "registration/login.html"
    form_class = LoginForm
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:  # the API's counter too: failures at /api/v1/auth/token count here, and back
            check_login_allowed(request, self._username())
        except TooManyAttempts as exc:
            return too_many_attempts(request, exc)
        return super().post(request, *args, **kwargs)

    def _username(self) -> str:
        return (self.request.POST.get("username") or "").strip()

    def form_invalid(self, form: LoginForm) -> HttpResponse:
        note_failed_login(self.request, self._username())
        response = super().form_invalid(form)
        response.status_code = INVALID_FORM_STATUS
        return response


class PasswordResetView(auth_views.PasswordResetView):
    """Ask for a reset link by email (console backend unless SMTP is configured); 5/h per IP."""

    template_name = "registration/password_reset_form.html"
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password_reset_done")

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if is_ratelimited(
            request,
            group="portal-password-reset",
            key="ip",
            rate=RESET_REQUEST_RATE,
            method="POST",
            increment=True,
        ):
            return ratelimited_view(request, None)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form) -> HttpResponse:
        response = super().form_invalid(form)
        response.status_code = INVALID_FORM_STATUS
        return response


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Set a new password from the emailed link."""

    template_name = "registration/password_reset_confirm.html"
    success_url = reverse_lazy("portal:password_reset_complete")

    def form_invalid(self, form) -> HttpResponse:
        response = super().form_invalid(form)
        response.status_code = INVALID_FORM_STATUS
        return response
