"""Account, plans, key and organization routes, mounted at /api/v1/."""

from django.urls import path

from keys import account_views, audit_views, key_views, org_views

ORG = "orgs/<str:slug>"

urlpatterns = [
    path("plans", account_views.PlansView.as_view(), name="plans"),
    path("auth/signup", account_views.SignupView.as_view(), name="auth-signup"),
    path("auth/token", account_views.TokenView.as_view(), name="auth-token"),
    path("auth/token/refresh", account_views.TokenRefreshView.as_view(), name="auth-refresh"),
    path("auth/logout", account_views.LogoutView.as_view(), name="auth-logout"),
    path("me", account_views.MeView.as_view(), name="me"),
    path("keys", key_views.KeyListView.as_view(), name="keys"),
    path("keys/<int:pk>", key_views.KeyDetailView.as_view(), name="key-detail"),
    path("keys/<int:pk>/rotate", key_views.KeyRotateView.as_view(), name="key-rotate"),
    path("orgs", org_views.OrgListView.as_view(), name="orgs"),
    path(ORG, org_views.OrgDetailView.as_view(), name="org-detail"),
    path(f"{ORG}/members", org_views.MemberListView.as_view(), name="org-members"),
    path(
        f"{ORG}/members/<int:user_id>",
        org_views.MemberDetailView.as_view(),
        name="org-member-detail",
    ),
    path(f"{ORG}/invitations", org_views.InvitationListView.as_view(), name="org-invitations"),
    path(
        f"{ORG}/invitations/<int:pk>",
        org_views.InvitationDetailView.as_view(),
        name="org-invitation-detail",
    ),
    path("invitations/accept", org_views.AcceptInvitationView.as_view(), name="invitation-accept"),
    path(f"{ORG}/keys", key_views.OrgKeyListView.as_view(), name="org-keys"),
    path(f"{ORG}/keys/<int:pk>", key_views.OrgKeyDetailView.as_view(), name="org-key-detail"),
    path(
        f"{ORG}/keys/<int:pk>/rotate", key_views.OrgKeyRotateView.as_view(), name="org-key-rotate"
    ),
    path(f"{ORG}/audit", audit_views.OrgAuditView.as_view(), name="org-audit"),
]
