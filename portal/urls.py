"""Portal routes, all under /portal/."""

from django.contrib.auth import views as auth_views
from django.urls import path

from portal.views import account, jobs, keys, orgs, pages, usage

app_name = "portal"

urlpatterns = [
    path("", pages.landing, name="landing"),
    path("signup/", account.signup, name="signup"),
    path("login/", account.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password-reset/", account.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(
            template_name="registration/password_reset_done.html"
        ),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        account.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="registration/password_reset_complete.html"
        ),
        name="password_reset_complete",
    ),
    path("dashboard/", pages.dashboard, name="dashboard"),
    path("keys/", keys.keys, name="keys"),
    path("keys/<int:key_id>/revoke/", keys.key_revoke, name="key_revoke"),
    path("keys/<int:key_id>/rotate/", keys.key_rotate, name="key_rotate"),
    path("usage/", usage.usage, name="usage"),
    path("usage/export.csv", usage.usage_export, name="usage_export"),
    path("jobs/", jobs.jobs, name="jobs"),
    path("jobs/<uuid:job_id>/status", jobs.job_status, name="job_status"),
    path("jobs/<uuid:job_id>/cancel/", jobs.job_cancel, name="job_cancel"),
    path("jobs/<uuid:job_id>/results.csv", jobs.job_results, name="job_results"),
    path("docs/", pages.docs, name="docs"),
    path("plan/", pages.plan, name="plan"),
    path("orgs/", orgs.organizations, name="organizations"),
    path("orgs/switch/", orgs.switch, name="org_switch"),
    path("orgs/<str:slug>/members/", orgs.members, name="members"),
    path("orgs/<str:slug>/members/<int:user_id>/role/", orgs.member_role, name="member_role"),
    path("orgs/<str:slug>/members/<int:user_id>/remove/", orgs.member_remove, name="member_remove"),
    path(
        "orgs/<str:slug>/invitations/<int:invitation_id>/revoke/",
        orgs.invitation_revoke,
        name="invitation_revoke",
    ),
    path("orgs/<str:slug>/audit/", orgs.audit, name="audit"),
    path("invitations/accept", orgs.invitation_accept, name="invitation_accept"),
]
